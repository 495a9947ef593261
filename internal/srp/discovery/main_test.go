package discovery

import (
	"testing"

	"github.com/srp-mpathd/srp-mpathd/internal/leakcheck"
)

// TestMain fails the package if an engine, trap receiver or MAD port leaves
// a goroutine or file descriptor behind.
func TestMain(m *testing.M) { leakcheck.Main(m) }
