package paths

import (
	"context"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/ublk"
	"github.com/srp-mpathd/srp-mpathd/internal/ublk/uapi"
	"github.com/srp-mpathd/srp-mpathd/internal/ublk/ublkfake"
)

// TestUblkHandler serves a paths Device through ublk's queue runner on the
// ublkfake driver model: requests reach the queue, complete through
// q.Complete with byte counts or errnos, failfast I/O fails at once without
// a path, and queued I/O completes when the path returns.
func TestUblkHandler(t *testing.T) {
	const (
		id     = 3
		size   = 4 << 20
		depth  = 8
		queues = 2
	)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	pol := DefaultPolicy()
	pol.ReconnectJitter = 0
	d, err := New(Config{Name: "ublk", BlockSize: 512, Blocks: size / 512, Policy: pol,
		Queues: []QueueConfig{{Depth: depth}, {Depth: depth}}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	r := &fakeRig{t: t, dev: d, chans: map[string][]*fakeChan{}, fails: map[string]int{}}
	r.addPath("a", 0)

	k := ublkfake.New(ublkfake.Config{})
	ctl, err := ublk.NewControl(k.Process(100), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	dev, err := ublk.Create(ctx, ctl, ublk.DeviceSpec{ID: id, Queues: queues, Depth: depth, MaxIO: 64 << 10, Size: size,
		LogicalBlockSize: 512, Discard: true, Handler: NewUblkHandler(d), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	do := func(req *ublkfake.BlockRequest) int32 {
		t.Helper()
		res, err := k.Do(ctx, id, req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := do(ublkfake.NewBlockRequest(uapi.OpRead, 4096, make([]byte, 4096))); res != 4096 {
		t.Fatalf("read res %d", res)
	}
	w := ublkfake.NewBlockRequest(uapi.OpWrite, 8192, make([]byte, 8192))
	w.Queue = 1
	if res := do(w); res != 8192 {
		t.Fatalf("write res %d", res)
	}
	for _, op := range []uapi.Op{uapi.OpFlush, uapi.OpDiscard, uapi.OpWriteZeroes} {
		req := ublkfake.NewBlockRequest(op, 0, nil)
		req.Len = 4096
		if res := do(req); res != 0 {
			t.Fatalf("%v res %d", op, res)
		}
	}
	if res := do(ublkfake.NewBlockRequest(uapi.OpZoneOpen, 0, nil)); res != -int32(syscall.EOPNOTSUPP) {
		t.Fatalf("zone op res %d", res)
	}

	if err := d.FailPath("a", "test"); err != nil {
		t.Fatal(err)
	}
	ff := ublkfake.NewBlockRequest(uapi.OpRead, 0, make([]byte, 512))
	ff.Flags = uapi.IOFailFastTransport
	if res := do(ff); res != -int32(syscall.ENOLINK) {
		t.Fatalf("failfast without a path: res %d", res)
	}
	// Queued without a path; the reinstated path takes it (the table
	// change wakes the queue thread).
	queued := ublkfake.NewBlockRequest(uapi.OpRead, 0, make([]byte, 512))
	if err := k.Submit(id, queued); err != nil {
		t.Fatal(err)
	}
	if err := d.ReinstatePath("a"); err != nil {
		t.Fatal(err)
	}
	if res, err := queued.Wait(ctx); err != nil || res != 512 {
		t.Fatalf("queued read after reinstate: %d %v", res, err)
	}
	if err := dev.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if v := k.Violations(); len(v) > 0 {
		t.Fatalf("driver rule violations: %v", v)
	}
}
