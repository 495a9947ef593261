package discovery

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
)

// TestMain fails the package if goroutines of this project outlive the
// tests: an engine's report receiver or event forwarder that Run did not
// wait for, a target session or a MAD Send left waiting.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := leakedGoroutines(); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutine leak:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// leakedGoroutines yields until no goroutine runs project code, else
// returns the stacks of those that do.
func leakedGoroutines() string {
	const rounds = 100000
	var leaked []string
	buf := make([]byte, 1<<20)
	for range rounds {
		leaked = leaked[:0]
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, "srp-mpathd/internal/") && !strings.Contains(g, "TestMain") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return ""
		}
		runtime.Gosched()
	}
	return strings.Join(leaked, "\n\n")
}
