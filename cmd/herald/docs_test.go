package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// usageCommand is a command line of the usage's "Commands:" section: two
// spaces, then the command's words up to its first argument or flag
// (upper case, "[", "-" or "...").
var usageCommand = regexp.MustCompile(`^  ([a-z]+(?: [a-z]+)*)`)

// TestEveryCommandIsDocumented: each command `herald help` lists appears in
// docs/operations.md as "`herald COMMAND", so that the reference an
// operator reads covers what the binary does.
func TestEveryCommandIsDocumented(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/operations.md")
	require.NoError(t, err)
	_, section, ok := strings.Cut(usage, "\nCommands:\n")
	require.True(t, ok)
	section, _, _ = strings.Cut(section, "\n\n")
	var commands, missing []string
	for _, line := range strings.Split(section, "\n") {
		m := usageCommand.FindStringSubmatch(line)
		if m == nil {
			continue // a continuation line
		}
		commands = append(commands, m[1])
		if !strings.Contains(string(doc), "`herald "+m[1]) {
			missing = append(missing, "herald "+m[1])
		}
	}
	require.Contains(t, commands, "messages show", "the usage is parsed")
	require.Contains(t, commands, "dead purge")
	require.Empty(t, missing, "commands of `herald help` missing from docs/operations.md")
}
