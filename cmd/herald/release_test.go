package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"text/template"

	"github.com/goccy/go-yaml"
	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/webhook"
)

// goreleaser is what the test reads of .goreleaser.yaml.
type goreleaser struct {
	Version int `yaml:"version"`
	Builds  []struct {
		ID      string   `yaml:"id"`
		Main    string   `yaml:"main"`
		Binary  string   `yaml:"binary"`
		Env     []string `yaml:"env"`
		GOOS    []string `yaml:"goos"`
		GOARCH  []string `yaml:"goarch"`
		Flags   []string `yaml:"flags"`
		Ldflags []string `yaml:"ldflags"`
	} `yaml:"builds"`
	Checksum struct {
		NameTemplate string `yaml:"name_template"`
	} `yaml:"checksum"`
}

// GoReleaser is not installable here, so the release configuration is
// checked by building herald as it would, with its flags and its -ldflags
// rendered for a release, and asking the binary its version.
func TestReleaseBuildStampsTheVersion(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../.goreleaser.yaml")
	require.NoError(t, err)
	var cfg goreleaser
	require.NoError(t, yaml.Unmarshal(data, &cfg))
	require.Equal(t, 2, cfg.Version)
	require.Len(t, cfg.Builds, 1)
	b := cfg.Builds[0]
	require.Equal(t, "./cmd/herald", b.Main)
	require.Equal(t, "herald", b.Binary)
	require.ElementsMatch(t, []string{"linux", "darwin"}, b.GOOS)
	require.ElementsMatch(t, []string{"amd64", "arm64"}, b.GOARCH)
	require.NotEmpty(t, cfg.Checksum.NameTemplate, "checksums")
	require.Len(t, b.Ldflags, 1)

	release := map[string]string{"Version": "1.2.3", "Commit": "0123456789abcdef0123456789abcdef01234567", "Date": "2026-01-02T03:04:05Z"}
	var ldflags strings.Builder
	require.NoError(t, template.Must(template.New("ldflags").Option("missingkey=error").Parse(b.Ldflags[0])).Execute(&ldflags, release))
	bin := filepath.Join(t.TempDir(), "herald")
	args := slices.Concat([]string{"build"}, b.Flags, []string{"-ldflags", ldflags.String(), "-o", bin, "../../" + b.Main})
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), b.Env...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go %s:\n%s", strings.Join(args, " "), out)

	out, err = exec.Command(bin, "version").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Regexp(t, `^herald 1\.2\.3 \(commit 0123456789abcdef0123456789abcdef01234567, built 2026-01-02T03:04:05Z, go[0-9.]+ \w+/\w+\)\n$`, string(out))
}

// Without stamps, the version falls back to what the toolchain recorded
// and then to the source's own; this test binary has neither stamp nor
// module version.
func TestVersionWithoutStamps(t *testing.T) {
	t.Parallel()
	b := currentBuild()
	require.Equal(t, webhook.Version, b.Version)
	require.Contains(t, b.String(), "herald "+webhook.Version+" (")
	b = buildInfo{Version: "1.2.3", Commit: "abc", Modified: true}
	require.Contains(t, b.String(), "herald 1.2.3 (commit abc with local changes, go")
}
