package paths_test

import (
	"testing"

	"github.com/srp-mpathd/srp-mpathd/internal/leakcheck"
)

// TestMain fails the package if goroutines or file descriptors outlive the
// tests (a channel watcher, a reconnect attempt, a timer callback not
// stopped by Close).
func TestMain(m *testing.M) { leakcheck.Main(m) }
