package ublk_test

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/srp-mpathd/srp-mpathd/internal/ublk"
	"github.com/srp-mpathd/srp-mpathd/internal/ublk/uapi"
	"github.com/srp-mpathd/srp-mpathd/internal/ublk/ublkfake"
)

// setHandler is a handler whose poll fds the test changes while the queue
// runs (as paths' channels come and go with reconnects). It reports every
// PollReady on ready.
type setHandler struct {
	ublk.NullHandler
	gen   atomic.Uint64
	mu    sync.Mutex
	fds   []int
	out   []int // queue thread: PollFDs' result, reused
	ready chan int
	polls atomic.Int64 // loop iterations (one Poll each)
}

var (
	_ ublk.PollFDSet   = (*setHandler)(nil)
	_ ublk.PollReadier = (*setHandler)(nil)
)

func (h *setHandler) set(fds ...int) {
	h.mu.Lock()
	h.fds = append(h.fds[:0], fds...)
	h.mu.Unlock()
	h.gen.Add(1)
}

func (h *setHandler) PollGen(*ublk.Queue) uint64 { return h.gen.Load() }

func (h *setHandler) Poll(*ublk.Queue) int {
	h.polls.Add(1)
	return 0
}

func (h *setHandler) PollFDs(*ublk.Queue) []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.out = append(h.out[:0], h.fds...)
	return h.out
}

// PollReady drains the fd (an eventfd or a pipe) and reports it.
func (h *setHandler) PollReady(_ *ublk.Queue, fd int) {
	var sink [8]byte
	_, _ = unix.Read(fd, sink[:])
	h.ready <- fd
}

func newEventfd(t *testing.T) int {
	t.Helper()
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Close(fd) })
	return fd
}

func signal(t *testing.T, fd int) {
	t.Helper()
	if _, err := unix.Write(fd, []byte{1, 0, 0, 0, 0, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
}

// TestPollFDSetChanges: fds a handler lists after the queue started are
// armed and served; fds it drops get POLL_REMOVE, never wake the handler
// again, and their files are let go (a pipe's read end, closed by its
// owner, is really gone: the writer sees EPIPE).
func TestPollFDSetChanges(t *testing.T) {
	ctx := testCtx(t)
	var pipe [2]int
	if err := unix.Pipe2(pipe[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	pipeR, pipeW := pipe[0], pipe[1]
	defer unix.Close(pipeW)
	evB := newEventfd(t)
	h := &setHandler{ready: make(chan int, 16)}
	h.set(pipeR)
	k := ublkfake.New(ublkfake.Config{NoPartitionScan: true})
	spec := ublk.DeviceSpec{ID: testID, Queues: 1, Depth: 4, MaxIO: 4096, Size: testSize, Handler: h, Logger: logger(t)}
	d, err := ublk.Create(ctx, newControl(t, k.Process(pidA)), spec)
	if err != nil {
		t.Fatal(err)
	}
	q := d.Queues()[0]
	waitPolls := func(what string, cond func([]int) bool) {
		t.Helper()
		if err := k.WaitPolls(ctx, testID, 0, cond); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	wantReady := func(fd int) {
		t.Helper()
		select {
		case got := <-h.ready:
			if got != fd {
				t.Fatalf("PollReady(%d), want %d", got, fd)
			}
		case <-ctx.Done():
			t.Fatalf("fd %d never woke the queue", fd)
		}
	}

	waitPolls("the start set", func(fds []int) bool { return slices.Contains(fds, pipeR) })
	if _, err := unix.Write(pipeW, []byte{1}); err != nil {
		t.Fatal(err)
	}
	wantReady(pipeR)

	// Added after start.
	h.set(pipeR, evB)
	q.Wake()
	waitPolls("the grown set", func(fds []int) bool { return slices.Contains(fds, pipeR) && slices.Contains(fds, evB) })
	signal(t, evB)
	wantReady(evB)

	// Dropped: removed from the ring.
	h.set(evB)
	q.Wake()
	waitPolls("the shrunk set", func(fds []int) bool { return !slices.Contains(fds, pipeR) && slices.Contains(fds, evB) })
	// A readable dropped fd wakes nobody: had it stayed armed, its wake
	// would come before evB's.
	if _, err := unix.Write(pipeW, []byte{1}); err != nil {
		t.Fatal(err)
	}
	signal(t, evB)
	wantReady(evB)
	// The ring holds the read end no more.
	if err := unix.Close(pipeR); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Write(pipeW, []byte{1}); !errors.Is(err, unix.EPIPE) {
		t.Fatalf("write after the read end was dropped and closed: %v, want EPIPE", err)
	}

	if err := d.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case fd := <-h.ready:
		t.Fatalf("unexpected PollReady(%d)", fd)
	default:
	}
	noViolations(t, k)
}

// TestPollFDBad: an fd that cannot be polled (not open: POLL_ADD fails with
// EBADF) is not re-armed in a loop, which would spin the queue thread; the
// set's next change tries it again.
func TestPollFDBad(t *testing.T) {
	const badFD = 1 << 30 // never open
	ctx := testCtx(t)
	good := newEventfd(t)
	h := &setHandler{ready: make(chan int, 16)}
	h.set(badFD)
	k := ublkfake.New(ublkfake.Config{NoPartitionScan: true})
	spec := ublk.DeviceSpec{ID: testID, Queues: 1, Depth: 4, MaxIO: 4096, Size: testSize, Handler: h, Logger: logger(t)}
	d, err := ublk.Create(ctx, newControl(t, k.Process(pidA)), spec)
	if err != nil {
		t.Fatal(err)
	}
	h.set(badFD, good)
	d.Queues()[0].Wake()
	if err := k.WaitPolls(ctx, testID, 0, func(fds []int) bool { return slices.Contains(fds, good) }); err != nil {
		t.Fatal(err)
	}
	before := h.polls.Load()
	signal(t, good)
	select {
	case fd := <-h.ready:
		if fd != good {
			t.Fatalf("PollReady(%d)", fd)
		}
	case <-ctx.Done():
		t.Fatal("good fd never woke the queue")
	}
	if n := h.polls.Load() - before; n > 3 {
		t.Errorf("%d loop iterations for one wake-up", n)
	}
	if err := d.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	noViolations(t, k)
}

// timerHandler has one piece of timed work: it is due at a deadline the
// test sets, and nothing but the queue's bounded sleep wakes it.
type timerHandler struct {
	ublk.NullHandler
	due    atomic.Int64 // unix ns; 0: none
	polls  atomic.Int64
	fired  chan time.Time
	armedN atomic.Int64 // polls while due was set
}

var _ ublk.PollTimer = (*timerHandler)(nil)

func (h *timerHandler) Poll(*ublk.Queue) int {
	h.polls.Add(1)
	due := h.due.Load()
	if due == 0 {
		return 0
	}
	h.armedN.Add(1)
	if now := time.Now(); now.UnixNano() >= due {
		h.due.Store(0)
		h.fired <- now
	}
	return 0
}

func (h *timerHandler) PollTimeout(*ublk.Queue) (time.Duration, bool) {
	due := h.due.Load()
	if due == 0 {
		return 0, false
	}
	return time.Until(time.Unix(0, due)), true
}

// TestPollTimeoutWakesIdleQueue: with timed work pending and nothing else
// happening, the queue thread wakes when it falls due (not before, and
// without spinning until then). Without the bound it would sleep forever.
func TestPollTimeoutWakesIdleQueue(t *testing.T) {
	ctx := testCtx(t)
	h := &timerHandler{fired: make(chan time.Time, 1)}
	k := ublkfake.New(ublkfake.Config{NoPartitionScan: true})
	spec := ublk.DeviceSpec{ID: testID, Queues: 1, Depth: 4, MaxIO: 4096, Size: testSize, Handler: h, Logger: logger(t)}
	d, err := ublk.Create(ctx, newControl(t, k.Process(pidA)), spec)
	if err != nil {
		t.Fatal(err)
	}
	const after = 50 * time.Millisecond
	for range 2 { // twice: the bound is taken afresh each time
		due := time.Now().Add(after)
		h.armedN.Store(0)
		h.due.Store(due.UnixNano())
		d.Queues()[0].Wake()
		select {
		case at := <-h.fired:
			if at.Before(due) {
				t.Fatalf("fired %v early", due.Sub(at))
			}
		case <-ctx.Done():
			t.Fatal("the idle queue never woke for its timed work")
		}
		// The Wake, the timeout, and at most a few early returns (EINTR,
		// the fake's millisecond rounding) — not a spin.
		if n := h.armedN.Load(); n > 5 {
			t.Errorf("%d loop iterations while waiting %v", n, after)
		}
	}
	if err := d.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	noViolations(t, k)
}

// overdueHandler always has overdue timed work (a bound ≤ 0) and reports
// each loop iteration on tick.
type overdueHandler struct {
	ublk.NullHandler
	polls atomic.Int64
	tick  chan struct{}
}

func (h *overdueHandler) Poll(*ublk.Queue) int {
	h.polls.Add(1)
	select {
	case h.tick <- struct{}{}:
	default:
	}
	return 0
}

func (h *overdueHandler) PollTimeout(*ublk.Queue) (time.Duration, bool) { return -time.Second, true }

// TestPollTimeoutFloor: a handler whose timed work stays due does not make
// the queue thread spin: it sleeps MinPollTimeout per iteration.
func TestPollTimeoutFloor(t *testing.T) {
	ctx := testCtx(t)
	h := &overdueHandler{tick: make(chan struct{}, 1)}
	k := ublkfake.New(ublkfake.Config{NoPartitionScan: true})
	spec := ublk.DeviceSpec{ID: testID, Queues: 1, Depth: 4, MaxIO: 4096, Size: testSize, Handler: h, Logger: logger(t)}
	d, err := ublk.Create(ctx, newControl(t, k.Process(pidA)), spec)
	if err != nil {
		t.Fatal(err)
	}
	const window = 20 * ublk.MinPollTimeout
	<-h.tick
	start, base := time.Now(), h.polls.Load()
	for time.Since(start) < window {
		select {
		case <-h.tick:
		case <-ctx.Done():
			t.Fatal("the queue stopped iterating")
		}
	}
	el := time.Since(start)
	if n, most := h.polls.Load()-base, int64(el/ublk.MinPollTimeout)+2; n > most {
		t.Errorf("%d loop iterations in %v, want at most %d", n, el, most)
	}
	if err := d.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	noViolations(t, k)
}

// churnHandler completes at once (NullHandler), bounds every sleep, and,
// with churn, changes its poll set with every request (far more often than
// paths does: a POLL_REMOVE and a POLL_ADD per I/O).
type churnHandler struct {
	ublk.NullHandler
	churn bool
	gen   uint64
	fds   [2][1]int
}

func (h *churnHandler) Start(q *ublk.Queue, r *ublk.Request) {
	if h.churn {
		h.gen++
	}
	h.NullHandler.Start(q, r)
}
func (h *churnHandler) PollGen(*ublk.Queue) uint64 { return h.gen }
func (h *churnHandler) PollFDs(*ublk.Queue) []int  { return h.fds[h.gen%2][:] }
func (h *churnHandler) PollTimeout(*ublk.Queue) (time.Duration, bool) {
	return time.Hour, true
}
func (h *churnHandler) PollReady(*ublk.Queue, int) {}

// TestZeroAllocsPollSet extends TestZeroAllocsPerIO to the optional poll
// interfaces: a bounded sleep, PollGen each iteration, and a re-arm per
// I/O allocate nothing.
func TestZeroAllocsPollSet(t *testing.T) {
	for _, churn := range []bool{false, true} {
		name := "steady"
		if churn {
			name = "rearm-every-io"
		}
		t.Run(name, func(t *testing.T) {
			h := &churnHandler{churn: churn}
			h.fds[0][0], h.fds[1][0] = newEventfd(t), newEventfd(t)
			k := ublkfake.New(ublkfake.Config{NoPartitionScan: true})
			spec := ublk.DeviceSpec{ID: testID, Queues: 1, Depth: 4, MaxIO: 4096, Size: testSize, Handler: h}
			d, err := ublk.Create(testCtx(t), newControl(t, k.Process(pidA)), spec)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := d.Stop(testCtx(t)); err != nil {
					t.Error(err)
				}
			}()
			r := ublkfake.NewBlockRequest(uapi.OpRead, 0, make([]byte, 4096))
			ctx := testCtx(t)
			allocs := testing.AllocsPerRun(500, func() {
				if res, err := k.Do(ctx, testID, r); err != nil || res != 4096 {
					t.Fatalf("res %d err %v", res, err)
				}
			})
			if allocs != 0 {
				t.Errorf("%v allocations per I/O", allocs)
			}
		})
	}
}
