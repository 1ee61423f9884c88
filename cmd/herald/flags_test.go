package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestGlobalFlagsAnywhere: operators put --config, --log-format and
// --log-level after the command too (`herald run --config herald.yaml`), as
// they do with kubectl and docker.
func TestGlobalFlagsAnywhere(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, "postgres://postgres@127.0.0.1:5432/x?sslmode=disable", "http://127.0.0.1:1/in")
	for _, args := range [][]string{
		{"--config", path, "config", "check"},
		{"config", "check", "--config", path},
		{"config", "check", "--config=" + path, "--log-level", "debug"},
		{"config", "--log-format=console", "check", "-config", path},
	} {
		var stdout, stderr bytes.Buffer
		code := Main(context.Background(), args, &stdout, &stderr)
		require.Equal(t, 0, code, "%q: %s", args, stderr.String())
		require.Contains(t, stdout.String(), path+": ok")
	}
	var stdout, stderr bytes.Buffer
	require.Equal(t, 2, Main(context.Background(), []string{"config", "check", "--config"}, &stdout, &stderr),
		"a global flag without its value is a usage error")
	require.Contains(t, stderr.String(), "config")
}

// TestMigrateSubcommandsRefuseFlagsTheyIgnore: `migrate up --to 3` used to
// migrate to the latest version, ignoring --to.
func TestMigrateSubcommandsRefuseFlagsTheyIgnore(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"migrate", "up", "--to", "3"}, "flag provided but not defined: -to"},
		{[]string{"migrate", "status", "--to", "3"}, "flag provided but not defined: -to"},
		{[]string{"migrate", "print", "--source", "x"}, "flag provided but not defined: -source"},
		{[]string{"migrate", "status", "extra"}, `unexpected arguments ["extra"]`},
	} {
		var stdout, stderr bytes.Buffer
		require.Equal(t, 2, Main(context.Background(), c.args, &stdout, &stderr), "%q", c.args)
		require.Contains(t, stderr.String(), c.want, "%q", c.args)
	}
}
