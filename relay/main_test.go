package relay_test

import (
	"os"
	"testing"

	"github.com/herald-relay/herald/internal/heraldtest"
)

// TestMain runs the package's tests, or, started by a test with
// HERALD_CHILD_RELAY_DB set, a relay in a child process for it to kill.
func TestMain(m *testing.M) {
	if os.Getenv("HERALD_CHILD_RELAY_DB") != "" {
		childRelay()
		return
	}
	heraldtest.Main(m)
}
