package paths

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/clock"
	"github.com/srp-mpathd/srp-mpathd/internal/fsm"
	"github.com/srp-mpathd/srp-mpathd/internal/srp"

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

// fdChan is a fakeChan with a completion fd (a pipe's read end), as a verbs
// completion channel: it becomes readable when an answer is ready and stays
// so until AckNotify consumes it. Commands are held until answer.
type fdChan struct {
	*fakeChan
	r, w      *os.File
	fd        int
	mu        sync.Mutex
	pending   int // bytes in the pipe
	closed    bool
	acks      atomic.Int64
	submitted chan struct{}
}

func newFDChan(t *testing.T) *fdChan {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &fdChan{fakeChan: newFakeChan(), r: r, w: w, submitted: make(chan struct{}, 16)}
	c.hold = true
	rc, err := r.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	// Control keeps the fd non-blocking (Fd would not).
	if err := rc.Control(func(fd uintptr) { c.fd = int(fd) }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func (c *fdChan) NotifyFD() int { return c.fd }

func (c *fdChan) Submit(cmd *srp.Command) error {
	err := c.fakeChan.Submit(cmd)
	if err == nil {
		c.submitted <- struct{}{}
	}
	return err
}

// signal makes the fd readable, as a completion event does.
func (c *fdChan) signal() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		_, _ = c.w.Write([]byte{1})
		c.pending++
	}
}

// answer releases the held commands and signals their completion.
func (c *fdChan) answer() {
	c.release()
	c.signal()
}

// Abort answers through the CQ too.
func (c *fdChan) Abort(id uint64) error {
	err := c.fakeChan.Abort(id)
	c.signal()
	return err
}

// AckNotify consumes the events (never blocks: it reads what is there).
func (c *fdChan) AckNotify() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return srp.ErrChannelFailed
	}
	if c.pending > 0 {
		buf := make([]byte, c.pending)
		_, _ = io.ReadFull(c.r, buf)
		c.pending = 0
	}
	c.acks.Add(1)
	return nil
}

func (c *fdChan) Close() error {
	err := c.fakeChan.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		err = errors.Join(err, c.r.Close(), c.w.Close())
	}
	return err
}

// fdRig runs a paths Device with fdChan paths under ublk on the fake
// driver.
type fdRig struct {
	t     *testing.T
	ctx   context.Context
	d     *Device
	k     *ublkfake.Kernel
	dev   *ublk.Device
	conns chan *fdChan // every channel made, in order
	once  sync.Once
}

const fdRigID = 4

func newFDRig(t *testing.T, pol Policy, clk clock.Clock) *fdRig {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	const size, depth = 4 << 20, 4
	d, err := New(Config{Name: "ublk", BlockSize: 512, Blocks: size / 512, Policy: pol, Clock: clk,
		Queues: []QueueConfig{{Depth: depth}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	k := ublkfake.New(ublkfake.Config{NoPartitionScan: true})
	ctl, err := ublk.NewControl(k.Process(100), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ctl.Close() })
	dev, err := ublk.Create(ctx, ctl, ublk.DeviceSpec{ID: fdRigID, Queues: 1, Depth: depth, MaxIO: 64 << 10, Size: size,
		LogicalBlockSize: 512, Handler: NewUblkHandler(d), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	r := &fdRig{t: t, ctx: ctx, d: d, k: k, dev: dev, conns: make(chan *fdChan, 16)}
	t.Cleanup(func() {
		// After a failure a request may still be held: do not wait forever.
		r.once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = dev.Stop(ctx)
		})
	})
	return r
}

func (r *fdRig) addPath(id string) *fdChan {
	r.t.Helper()
	spec := PathSpec{ID: id, Target: "t-" + id, Connect: func(context.Context, int) (Channel, error) {
		c := newFDChan(r.t)
		r.conns <- c
		return c, nil
	}}
	if err := r.d.AddPath(r.ctx, spec); err != nil {
		r.t.Fatal(err)
	}
	return r.nextChan()
}

// nextChan waits for the next channel a connect makes.
func (r *fdRig) nextChan() *fdChan {
	r.t.Helper()
	select {
	case c := <-r.conns:
		return c
	case <-r.ctx.Done():
		r.t.Fatal("no channel was made")
		return nil
	}
}

// read submits a read and waits until channel c holds it.
func (r *fdRig) read(c *fdChan) *ublkfake.BlockRequest {
	r.t.Helper()
	req := ublkfake.NewBlockRequest(uapi.OpRead, 0, make([]byte, 4096))
	if err := r.k.Submit(fdRigID, req); err != nil {
		r.t.Fatal(err)
	}
	select {
	case <-c.submitted:
	case <-r.ctx.Done():
		r.t.Fatal("the read never reached the channel")
	}
	return req
}

func (r *fdRig) wait(req *ublkfake.BlockRequest, want int32, what string) {
	r.t.Helper()
	res, err := req.Wait(r.ctx)
	if err != nil {
		r.t.Fatalf("%s: %v (the queue thread was not woken)", what, err)
	}
	if res != want {
		r.t.Fatalf("%s: res %d, want %d", what, res, want)
	}
}

func (r *fdRig) stop() {
	r.t.Helper()
	var err error
	r.once.Do(func() { err = r.dev.Stop(r.ctx) })
	if err != nil {
		r.t.Fatal(err)
	}
	if v := r.k.Violations(); len(v) > 0 {
		r.t.Fatalf("driver rule violations: %v", v)
	}
}

// TestUblkHandlerFollowsChannels: the ublk queue thread sleeps armed on the
// completion fds of the channels it has now, those of paths added after it
// started and of reconnects included, and no longer on those of channels
// that left. Nothing else wakes it here: heartbeats are off and the I/O
// timeout is an hour, so a completion whose fd is not watched hangs.
func TestUblkHandlerFollowsChannels(t *testing.T) {
	pol := DefaultPolicy()
	pol.ReconnectJitter = 0
	pol.HeartbeatInterval = 0
	pol.IOTimeout = time.Hour
	pol.Path.ReconnectDelay = fsm.Timeout(time.Millisecond)
	r := newFDRig(t, pol, clock.Real{})
	armed := func(what string, cond func(fds []int) bool) {
		t.Helper()
		if err := r.k.WaitPolls(r.ctx, fdRigID, 0, cond); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}

	// No path when the queue started: a's channel comes later.
	a := r.addPath("a")
	armed("a's fd", func(fds []int) bool { return slices.Contains(fds, a.fd) })
	req := r.read(a)
	a.answer()
	r.wait(req, 4096, "read on a path added after start")
	if a.acks.Load() == 0 {
		t.Error("a's completion channel was never acknowledged")
	}

	// a goes away (its channel is closed), b comes: only b's fd is armed
	// besides the queue's own eventfd.
	if err := r.d.RemovePath("a"); err != nil {
		t.Fatal(err)
	}
	b := r.addPath("b")
	armed("only b's fd", func(fds []int) bool {
		return len(fds) == 2 && slices.Contains(fds, b.fd) && (a.fd == b.fd || !slices.Contains(fds, a.fd))
	})
	req = r.read(b)
	b.answer()
	r.wait(req, 4096, "read on b")

	// b's channel fails; the reconnect replaces it with a new one.
	b.fail(errors.New("test: QP error"))
	b2 := r.nextChan()
	armed("b's new fd", func(fds []int) bool { return len(fds) == 2 && slices.Contains(fds, b2.fd) })
	req = r.read(b2)
	b2.answer()
	r.wait(req, 4096, "read on b's new channel")
	r.stop()
}

// TestUblkHandlerDeadlineWakes: an I/O timeout is acted on when it falls
// due although nothing else wakes the queue thread (the device's clock is
// manual, so neither the heartbeat tick nor any timer runs): the queue
// bounds its sleep by Queue.NextDeadline, aborts the command and, with no
// retries left, fails it.
func TestUblkHandlerDeadlineWakes(t *testing.T) {
	pol := DefaultPolicy()
	pol.ReconnectJitter = 0
	pol.HeartbeatInterval = 0
	pol.IOTimeout = 50 * time.Millisecond
	pol.MaxRetries = 0
	clk := clock.NewManual(time.Unix(1_000_000, 0))
	r := newFDRig(t, pol, clk)
	a := r.addPath("a")
	req := r.read(a)
	// The clock moves past the deadline; only the queue's own bounded
	// sleep (IOTimeout of real time) can notice.
	clk.Advance(pol.IOTimeout)
	r.wait(req, -int32(syscall.EIO), "timed-out read")
	r.stop()
}
