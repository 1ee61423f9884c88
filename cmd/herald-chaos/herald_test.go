package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestShowArgsLeavesOutSecrets(t *testing.T) {
	t.Parallel()
	got := showArgs([]string{"endpoints", "update", "a", "--secret", chaosSecret, "--header", "X-Token=abc", "--topic", "t"})
	require.Equal(t, "endpoints update a --secret REDACTED --header REDACTED --topic t", got)
}
