package labkit

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestPatternRoundTripAndMismatch(t *testing.T) {
	buf := make([]byte, 4096)
	fill(buf, 17, 3, 99)
	if err := check(buf, 17, 3, 99); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		block int64
		gen   uint32
		seed  uint64
	}{{"other block", 18, 3, 99}, {"older generation", 17, 2, 99}, {"other seed", 17, 3, 98}} {
		if err := check(buf, tc.block, tc.gen, tc.seed); !errors.Is(err, errVerify) {
			t.Errorf("%s: %v, want a verify error", tc.name, err)
		}
	}
	buf[4000] ^= 1
	if err := check(buf, 17, 3, 99); !errors.Is(err, errVerify) {
		t.Errorf("flipped bit: %v, want a verify error", err)
	}
}

// TestIOLoadOnFile runs a verified randrw load on a file (O_DIRECT) and
// checks the accounting: I/Os counted both ways, no errors, a gap no longer
// than the run, every I/O done after Stop.
func TestIOLoadOnFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dev")
	const size = 1 << 20
	if err := os.WriteFile(path, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	if f, err := os.OpenFile(path, os.O_RDWR|syscall.O_DIRECT, 0); err != nil {
		t.Skipf("O_DIRECT on %s: %v", filepath.Dir(path), err)
	} else {
		f.Close()
	}
	run, err := StartIOLoad(IOLoad{Path: path, Depth: 4, WritePercent: 50, Verify: true, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Flowing for 200 ms: hundreds of I/Os on any file system.
	from, err := run.WaitFlowing(ctx, time.Now(), 100*time.Millisecond, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	st, err := run.Stop(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Reads == 0 || st.Writes == 0 || st.Errors != 0 || st.VerifyErrors != 0 || st.FirstError != "" {
		t.Errorf("stats %v", st)
	}
	if from.Before(st.Start) || st.MaxGap <= 0 || st.MaxGap > st.End.Sub(st.Start) || st.MaxLatency <= 0 || st.IOPS() <= 0 {
		t.Errorf("flowing from %v; stats %v", from, st)
	}
	if run.OldestInFlight() != 0 {
		t.Errorf("I/O in flight after Stop: %v", run.OldestInFlight())
	}
	// A second Stop (a deferred cleanup) does not panic; it counts at
	// most the I/Os that were in flight at the first (depth 4) on top.
	again, err := run.Stop(ctx)
	if err != nil || again.IOs() < st.IOs() || again.IOs() > st.IOs()+4 {
		t.Errorf("second Stop: %v, %d I/Os, want %d..%d", err, again.IOs(), st.IOs(), st.IOs()+4)
	}
}

func TestIOLoadRejectsBadLoads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "small")
	if err := os.WriteFile(path, make([]byte, 8192), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, l := range []IOLoad{
		{Path: path, WritePercent: 101},
		{Path: path, BlockSize: 12},
		{Path: path, Depth: 16}, // 2 blocks of 4 KiB for 16 goroutines
		{Path: filepath.Join(t.TempDir(), "absent")},
	} {
		if r, err := StartIOLoad(l); err == nil {
			r.Stop(context.Background())
			t.Errorf("StartIOLoad(%+v) succeeded", l)
		}
	}
}
