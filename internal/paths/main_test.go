package paths_test

import (
	"fmt"
	"os"
	"runtime"
	"testing"
)

// TestMain fails the package if goroutines outlive the tests (a channel
// watcher, a reconnect attempt, a timer callback not stopped by Close).
func TestMain(m *testing.M) {
	before := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 {
		if leaked := waitGoroutines(before); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutine leak:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// waitGoroutines yields until at most n goroutines run, else returns their
// stacks.
func waitGoroutines(n int) string {
	const rounds = 100000
	for range rounds {
		if runtime.NumGoroutine() <= n {
			return ""
		}
		runtime.Gosched()
	}
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}
