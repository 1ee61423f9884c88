package webhook_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine running: the
// client owns connections and their readers, and Close must end them.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
