package paths

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/clock"
	"github.com/srp-mpathd/srp-mpathd/internal/fsm"
	"github.com/srp-mpathd/srp-mpathd/internal/srp"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
)

// fakeChan is a Channel that answers in memory: by default every command
// completes GOOD at the next Poll. Knobs hold commands (a hung target),
// script CHECK CONDITIONs, refuse credits, or make aborts go unanswered.
type fakeChan struct {
	mu       sync.Mutex
	ready    []srp.Result // answered, returned by the next Poll
	held     []srp.Result // outstanding, unanswered
	hold     bool
	script   []srp.Result // templates for the next answers (status/sense)
	noCredit bool
	abortErr error // returned by Abort; nil answers the abort at once
	silentAb bool  // Abort succeeds but is never answered
	failed   chan struct{}
	err      error
	hbSeq    uint64
	hbAcked  uint64
	hbSilent bool
	closed   bool
	submits  int
}

func newFakeChan() *fakeChan {
	return &fakeChan{ready: make([]srp.Result, 0, 1024), held: make([]srp.Result, 0, 1024), failed: make(chan struct{})}
}

func (c *fakeChan) Submit(cmd *srp.Command) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return srp.ErrChannelFailed
	}
	if c.noCredit {
		return srp.ErrNoCredit
	}
	c.submits++
	r := srp.Result{ID: cmd.ID}
	if len(c.script) > 0 {
		r = c.script[0]
		r.ID = cmd.ID
		c.script = c.script[1:]
	}
	if c.hold {
		c.held = append(c.held, r)
	} else {
		c.ready = append(c.ready, r)
	}
	return nil
}

func (c *fakeChan) Poll(out []srp.Result) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := copy(out, c.ready)
	c.ready = c.ready[:copy(c.ready, c.ready[n:])]
	return n
}

func (c *fakeChan) Abort(id uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return srp.ErrChannelFailed
	}
	if c.abortErr != nil {
		return c.abortErr
	}
	for i, r := range c.held {
		if r.ID == id {
			if c.silentAb {
				return nil
			}
			c.held = append(c.held[:i], c.held[i+1:]...)
			c.ready = append(c.ready, srp.Result{ID: id, Aborted: true, Err: srp.ErrAborted})
			return nil
		}
	}
	return srp.ErrNotOutstanding
}

func (c *fakeChan) Outstanding() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ready) + len(c.held)
}

// release answers every held command.
func (c *fakeChan) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ready = append(c.ready, c.held...)
	c.held = c.held[:0]
	c.hold = false
}

func (c *fakeChan) ArmNotify() error       { return nil }
func (c *fakeChan) AckNotify() error       { return nil }
func (c *fakeChan) NotifyFD() int          { return -1 }
func (c *fakeChan) Ready() <-chan struct{} { return nil }
func (c *fakeChan) Failed() <-chan struct{} {
	return c.failed
}

func (c *fakeChan) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// fail fails the channel: outstanding commands are flushed.
func (c *fakeChan) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.err = err
	for _, r := range c.held {
		c.ready = append(c.ready, srp.Result{ID: r.ID, Err: srp.ErrFlushed})
	}
	c.held = c.held[:0]
	close(c.failed)
}

func (c *fakeChan) ForceError() error { c.fail(srp.ErrForced); return nil }

func (c *fakeChan) Heartbeat() (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, srp.ErrChannelFailed
	}
	c.hbSeq++
	if !c.hbSilent {
		c.hbAcked = c.hbSeq
	}
	return c.hbSeq, nil
}

func (c *fakeChan) HeartbeatAcked() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hbAcked
}

func (c *fakeChan) Close() error {
	c.fail(srp.ErrChannelClosed)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

// fakeRig is a Device with one queue over fake channels on a manual clock.
type fakeRig struct {
	t     testing.TB
	clk   *clock.Manual
	dev   *Device
	q     *Queue
	mu    sync.Mutex
	chans map[string][]*fakeChan // per path: every channel made, latest last
	fails map[string]int         // connects to fail
	gate  chan struct{}          // when set, each connect waits for a token
	done  map[uint16]outcome
	order []uint16
	wakes countWaker
}

type countWaker struct{ n atomicCounter }

func (w *countWaker) Wake() { w.n.add(1) }

type outcome struct {
	n   int
	err error
}

const fakeDepth = 32

func newFakeRig(t testing.TB, pol Policy) *fakeRig {
	t.Helper()
	r := &fakeRig{t: t, clk: clock.NewManual(time.Unix(1_000_000, 0)), chans: map[string][]*fakeChan{},
		fails: map[string]int{}, done: map[uint16]outcome{}}
	mem := make([]byte, fakeDepth*4096)
	d, err := New(Config{Name: "fake", BlockSize: 512, Blocks: 1 << 20, Policy: pol, Clock: r.clk,
		Queues: []QueueConfig{{Depth: fakeDepth, Mem: mem, TagSize: 4096, Complete: r.complete, Waker: &r.wakes}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	r.dev, r.q = d, d.Queue(0)
	return r
}

func (r *fakeRig) complete(tag uint16, n int, err error) {
	if _, dup := r.done[tag]; dup {
		r.t.Errorf("tag %d completed twice", tag)
	}
	r.done[tag] = outcome{n, err}
	r.order = append(r.order, tag)
}

func (r *fakeRig) addPath(id string, prio int) { r.addPathTarget(id, "t-"+id, prio) }

func (r *fakeRig) addPathTarget(id, target string, prio int) {
	r.t.Helper()
	spec := PathSpec{ID: id, Target: target, Priority: prio, Connect: func(ctx context.Context, q int) (Channel, error) {
		r.mu.Lock()
		gate := r.gate
		r.mu.Unlock()
		if gate != nil {
			select {
			case <-gate:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.fails[id] > 0 {
			r.fails[id]--
			return nil, errors.New("login refused")
		}
		c := newFakeChan()
		r.chans[id] = append(r.chans[id], c)
		return c, nil
	}}
	if err := r.dev.AddPath(context.Background(), spec); err != nil {
		r.t.Fatal(err)
	}
}

// ch returns the latest channel of a path.
func (r *fakeRig) ch(id string) *fakeChan {
	r.mu.Lock()
	defer r.mu.Unlock()
	cs := r.chans[id]
	return cs[len(cs)-1]
}

func (r *fakeRig) state(id string) fsm.State {
	for _, p := range r.dev.Snapshot().Paths {
		if p.ID == id {
			return p.State
		}
	}
	return fsm.Lost
}

// waitState yields until path id reaches st (watchers and reconnects run
// in goroutines).
func (r *fakeRig) waitState(id string, st fsm.State) {
	r.t.Helper()
	for range 100000 {
		if r.state(id) == st {
			return
		}
		runtime.Gosched()
	}
	r.t.Fatalf("path %s is %v, want %v", id, r.state(id), st)
}

// settle waits until the control plane has processed what the channels
// reported (watchers and the mailbox run in goroutines).
func (r *fakeRig) settle() {
	for range 1000 {
		_ = r.dev.Snapshot() // takes the control plane's lock
		runtime.Gosched()
	}
}

func (r *fakeRig) read(tag uint16, flags Flags) {
	delete(r.done, tag)
	r.q.Start(IO{Op: OpRead, Flags: flags, Off: int64(tag) * 4096, Len: 4096, Tag: tag})
}

func TestSelectorsSpread(t *testing.T) {
	for _, sel := range []Selector{SelectRoundRobin, SelectQueueLength, SelectServiceTime} {
		t.Run(sel.String(), func(t *testing.T) {
			pol := DefaultPolicy()
			pol.Grouping = GroupMultibus // selectors choose within a group
			pol.Selector = sel
			r := newFakeRig(t, pol)
			r.addPath("a", 0)
			r.addPath("b", 0)
			r.ch("a").hold = true
			r.ch("b").hold = true
			for tag := range uint16(16) {
				r.read(tag, 0)
			}
			a, b := r.ch("a").submits, r.ch("b").submits
			if a+b != 16 || a < 6 || b < 6 {
				t.Fatalf("%v spread 16 I/O as a=%d b=%d", sel, a, b)
			}
		})
	}
}

func TestServiceTimePrefersFastPath(t *testing.T) {
	pol := DefaultPolicy()
	pol.Grouping = GroupMultibus // selectors choose within a group
	r := newFakeRig(t, pol)
	r.addPath("slow", 0)
	r.addPath("fast", 0)
	// Teach the EWMAs: slow answers after 10 ms, fast at once.
	for i := range 20 {
		tag := uint16(i % fakeDepth)
		r.ch("slow").hold = true
		r.read(tag, 0)
		r.clk.Advance(10 * time.Millisecond)
		r.ch("slow").release()
		r.q.Poll()
	}
	r.ch("slow").submits, r.ch("fast").submits = 0, 0
	for tag := range uint16(16) {
		r.read(tag, 0)
		r.q.Poll()
	}
	if s, f := r.ch("slow").submits, r.ch("fast").submits; f <= s {
		t.Fatalf("service-time sent slow=%d fast=%d", s, f)
	}
}

func TestFailoverGroupingAndFailback(t *testing.T) {
	pol := DefaultPolicy()
	pol.Grouping = GroupFailover
	pol.Path.FlapCount = 0
	pol.Path.ReconnectDelay = fsm.Timeout(time.Second)
	pol.ReconnectJitter = 0
	r := newFakeRig(t, pol)
	r.addPath("primary", 10)
	r.addPath("secondary", 1)
	for tag := range uint16(4) {
		r.read(tag, 0)
	}
	r.q.Poll()
	if r.ch("primary").submits != 4 || r.ch("secondary").submits != 0 {
		t.Fatalf("failover sent primary=%d secondary=%d", r.ch("primary").submits, r.ch("secondary").submits)
	}
	r.ch("primary").fail(srp.ErrDisconnected)
	r.waitState("primary", fsm.Blocked)
	r.read(10, 0)
	r.q.Poll()
	if r.ch("secondary").submits != 1 {
		t.Fatal("I/O did not fail over")
	}
	r.clk.Advance(time.Second) // reconnect_delay: the attempt starts
	r.waitState("primary", fsm.Running)
	r.read(11, 0)
	r.q.Poll()
	if r.ch("primary").submits != 1 {
		t.Fatal("failback immediate did not return I/O to primary")
	}
}

func TestFailbackManualAndDelayed(t *testing.T) {
	for _, fb := range []Failback{FailbackManual, Failback(5 * time.Second)} {
		t.Run(fb.String(), func(t *testing.T) {
			pol := DefaultPolicy()
			pol.Grouping = GroupFailover
			pol.Failback = fb
			pol.Path.FlapCount = 0
			pol.Path.ReconnectDelay = fsm.Timeout(time.Second)
			pol.ReconnectJitter = 0
			r := newFakeRig(t, pol)
			r.addPath("primary", 10)
			r.addPath("secondary", 1)
			r.ch("primary").fail(srp.ErrDisconnected)
			r.waitState("primary", fsm.Blocked)
			r.clk.Advance(time.Second)
			r.waitState("primary", fsm.Running)
			r.read(1, 0)
			r.q.Poll()
			if r.ch("secondary").submits != 1 {
				t.Fatal("failback happened before its time")
			}
			if fb == FailbackManual {
				r.dev.Failback()
			} else {
				r.clk.Advance(5 * time.Second)
			}
			r.read(2, 0)
			r.q.Poll()
			if r.ch("primary").submits != 1 {
				t.Fatalf("no failback with %v", fb)
			}
		})
	}
}

func TestBlockReissuesInFlight(t *testing.T) {
	r := newFakeRig(t, DefaultPolicy())
	r.addPath("a", 0)
	r.addPath("b", 0)
	r.ch("a").hold = true
	r.ch("b").hold = true
	for tag := range uint16(fakeDepth) {
		r.read(tag, 0)
	}
	r.ch("b").release()
	r.ch("b").hold = false
	if err := r.dev.FailPath("a", "test"); err != nil {
		t.Fatal(err)
	}
	r.q.Poll()
	r.q.Poll()
	if len(r.done) != fakeDepth {
		t.Fatalf("%d of %d I/O done after blocking path a", len(r.done), fakeDepth)
	}
	for tag, o := range r.done {
		if o.err != nil || o.n != 4096 {
			t.Fatalf("tag %d: %+v", tag, o)
		}
	}
}

func TestNoPathRetry(t *testing.T) {
	cases := []struct {
		npr   NoPathRetry
		flags Flags
		// fail after this long without a path (-1: at once, 0: never).
		failAfter time.Duration
	}{
		{NoPathFail, 0, -1},
		{NoPathQueue, 0, 0},
		{NoPathQueue, FlagFailFast, -1},
		{NoPathRetry(3 * time.Second), 0, 3 * time.Second},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%v/flags=%d", c.npr, c.flags), func(t *testing.T) {
			pol := DefaultPolicy()
			pol.NoPathRetry = c.npr
			pol.Path.ReconnectDelay = fsm.Timeout(time.Hour)
			pol.Path.FastIOFailTmo = fsm.Off
			pol.Path.DevLossTmo = fsm.Off
			pol.ReconnectJitter = 0
			r := newFakeRig(t, pol)
			r.addPath("a", 0)
			if err := r.dev.FailPath("a", "test"); err != nil {
				t.Fatal(err)
			}
			r.read(1, c.flags)
			r.q.Poll()
			o, done := r.done[1]
			switch {
			case c.failAfter < 0:
				if !done || !errors.Is(o.err, ErrNoPath) {
					t.Fatalf("want ErrNoPath at once, got %v %+v", done, o)
				}
				return
			case done:
				t.Fatalf("failed at once: %+v", o)
			}
			at, ok := r.q.NextDeadline()
			if c.failAfter == 0 {
				r.clk.Advance(time.Minute)
				r.q.Poll()
				if _, done := r.done[1]; done {
					t.Fatal("queued I/O failed")
				}
				if err := r.dev.ReinstatePath("a"); err != nil {
					t.Fatal(err)
				}
				r.waitState("a", fsm.Running)
				r.q.Poll()
				r.q.Poll()
				if o := r.done[1]; o.err != nil || o.n != 4096 {
					t.Fatalf("after reinstate: %+v", o)
				}
				return
			}
			if !ok || at.Sub(r.clk.Now()) != c.failAfter {
				t.Fatalf("next deadline %v (%v), want in %v", at, ok, c.failAfter)
			}
			r.clk.Advance(c.failAfter - time.Millisecond)
			r.q.Poll()
			if _, done := r.done[1]; done {
				t.Fatal("failed early")
			}
			r.clk.Advance(time.Millisecond)
			r.q.Poll()
			if o := r.done[1]; !errors.Is(o.err, ErrNoPath) {
				t.Fatalf("want ErrNoPath after %v, got %+v", c.failAfter, o)
			}
		})
	}
}

// TestDevLossLosesDevice: with no_path_retry queue, I/O waits while both
// paths are down; when dev_loss_tmo removes the last one the waiting I/O
// and new I/O fail with ErrNoPath; a path added again ends that, and I/O
// queues and completes as before.
func TestDevLossLosesDevice(t *testing.T) {
	pol := DefaultPolicy()
	pol.NoPathRetry = NoPathQueue
	pol.Path.ReconnectDelay = fsm.Timeout(time.Hour)
	pol.Path.FastIOFailTmo = fsm.Timeout(5 * time.Second)
	pol.Path.DevLossTmo = fsm.Timeout(20 * time.Second)
	pol.ReconnectJitter = 0
	r := newFakeRig(t, pol)
	r.addPath("a", 0)
	r.addPath("b", 0)
	r.ch("a").fail(srp.ErrDisconnected)
	r.waitState("a", fsm.Blocked)
	r.clk.Advance(10 * time.Second) // b fails later: a is lost first
	r.ch("b").fail(srp.ErrDisconnected)
	r.waitState("b", fsm.Blocked)
	r.read(1, 0)
	r.q.Poll()
	if _, done := r.done[1]; done {
		t.Fatalf("I/O failed while paths wait for dev_loss_tmo: %+v", r.done[1])
	}
	r.clk.Advance(10 * time.Second) // a lost, b still blocked
	r.waitState("a", fsm.Lost)
	r.q.Poll()
	if _, done := r.done[1]; done || r.dev.Snapshot().Lost {
		t.Fatalf("one path left: done=%v lost=%v", done, r.dev.Snapshot().Lost)
	}
	r.clk.Advance(10 * time.Second) // b lost: the device is lost
	r.waitState("b", fsm.Lost)
	r.settle()
	if !r.dev.Snapshot().Lost {
		t.Fatal("Snapshot().Lost = false after the last path was lost")
	}
	r.q.Poll()
	if o, done := r.done[1]; !done || !errors.Is(o.err, ErrNoPath) {
		t.Fatalf("waiting I/O after the last path was lost: done=%v %+v, want ErrNoPath", done, o)
	}
	r.read(2, 0)
	r.q.Poll()
	if o, done := r.done[2]; !done || !errors.Is(o.err, ErrNoPath) {
		t.Fatalf("new I/O on a lost device: done=%v %+v, want ErrNoPath", done, o)
	}
	r.addPath("a", 0)
	if r.dev.Snapshot().Lost {
		t.Fatal("still lost after a path was added")
	}
	r.read(3, 0)
	r.q.Poll()
	r.q.Poll()
	if o := r.done[3]; o.err != nil || o.n != 4096 {
		t.Fatalf("I/O after the path returned: %+v", o)
	}
}

// CHECK CONDITIONs decide: UNIT ATTENTION retries on the same path, ABORTED
// COMMAND on another, MEDIUM ERROR fails.
func TestClassification(t *testing.T) {
	sense := func(key, asc, ascq byte) srp.Result {
		r := srp.Result{Status: 0x02, SenseLen: 18}
		r.Sense[0], r.Sense[2], r.Sense[7], r.Sense[12], r.Sense[13] = 0x70, key, 10, asc, ascq
		return r
	}
	t.Run("unit-attention", func(t *testing.T) {
		r := newFakeRig(t, DefaultPolicy())
		r.addPath("a", 0)
		r.ch("a").script = []srp.Result{sense(0x6, 0x29, 0)}
		r.read(1, 0)
		r.q.Poll()
		r.q.Poll()
		if o := r.done[1]; o.err != nil || r.ch("a").submits != 2 {
			t.Fatalf("%+v after %d submits", o, r.ch("a").submits)
		}
	})
	t.Run("aborted-command", func(t *testing.T) {
		r := newFakeRig(t, DefaultPolicy())
		r.addPath("a", 0)
		r.addPath("b", 0)
		r.ch("a").script = []srp.Result{sense(0xB, 0, 0)}
		r.ch("b").script = []srp.Result{sense(0xB, 0, 0)}
		r.read(1, 0)
		for range 4 {
			r.q.Poll()
		}
		a, b := r.ch("a").submits, r.ch("b").submits
		if o := r.done[1]; o.err != nil || a+b != 3 || a == 0 || b == 0 {
			t.Fatalf("%+v after a=%d b=%d", o, a, b)
		}
	})
	t.Run("medium-error", func(t *testing.T) {
		r := newFakeRig(t, DefaultPolicy())
		r.addPath("a", 0)
		r.ch("a").script = []srp.Result{sense(0x3, 0x11, 0)}
		r.read(1, 0)
		r.q.Poll()
		if o := r.done[1]; !errors.Is(o.err, ErrMedium) {
			t.Fatalf("%+v", o)
		}
	})
	t.Run("retries-exhausted", func(t *testing.T) {
		pol := DefaultPolicy()
		pol.MaxRetries = 2
		r := newFakeRig(t, pol)
		r.addPath("a", 0)
		for range 5 {
			r.ch("a").script = append(r.ch("a").script, sense(0xB, 0, 0))
		}
		r.read(1, 0)
		for range 5 {
			r.q.Poll()
		}
		if o := r.done[1]; !errors.Is(o.err, ErrIO) || r.ch("a").submits != 3 {
			t.Fatalf("%+v after %d submits", o, r.ch("a").submits)
		}
	})
}

// An attempt past the I/O timeout is aborted and retried elsewhere; an
// abort that goes unanswered fails the path, which flushes and reissues.
func TestDeadlineAbort(t *testing.T) {
	pol := DefaultPolicy()
	pol.IOTimeout = time.Second
	pol.AbortTimeout = 500 * time.Millisecond
	pol.HeartbeatInterval = 0
	r := newFakeRig(t, pol)
	r.addPath("a", 0)
	r.addPath("b", 0)
	r.ch("a").hold = true
	r.ch("b").hold = true
	r.read(1, 0)
	var first *fakeChan
	if r.ch("a").submits == 1 {
		first = r.ch("a")
	} else {
		first = r.ch("b")
	}
	other := r.ch("a")
	if first == other {
		other = r.ch("b")
	}
	other.hold = false
	at, ok := r.q.NextDeadline()
	if !ok || at.Sub(r.clk.Now()) != time.Second {
		t.Fatalf("deadline %v %v", at, ok)
	}
	r.clk.Advance(time.Second)
	r.q.Poll() // abort posted and answered
	r.q.Poll() // aborted result: retried on the other path
	r.q.Poll()
	if o, done := r.done[1]; !done || o.err != nil {
		t.Fatalf("after abort: %v %+v", done, o)
	}

	// Now an abort nobody answers.
	first.silentAb = true
	other.hold = true
	first.hold = true
	r.read(2, 0)
	r.clk.Advance(time.Second)
	r.q.Poll()
	r.clk.Advance(500 * time.Millisecond)
	r.q.Poll() // abort timed out: the path is reported
	r.settle()
	blocked := 0
	for _, p := range r.dev.Snapshot().Paths {
		if p.State == fsm.Blocked {
			blocked++
			if p.FSM.Reason.Kind != fsm.AbortFailed {
				t.Fatalf("reason %v", p.FSM.Reason)
			}
		}
	}
	if blocked != 1 {
		t.Fatalf("%d paths blocked after an unanswered abort", blocked)
	}
	r.ch("a").release()
	r.ch("b").release()
	r.q.Poll()
	r.q.Poll()
	if o, done := r.done[2]; !done || o.err != nil {
		t.Fatalf("after abort failure: %v %+v", done, o)
	}
}

// A heartbeat that is not acknowledged blocks the path.
func TestHeartbeatMiss(t *testing.T) {
	r := newFakeRig(t, DefaultPolicy())
	r.addPath("a", 0)
	r.addPath("b", 0)
	r.clk.Advance(DefaultHeartbeatInterval) // first heartbeat, acked at once
	r.ch("a").mu.Lock()
	r.ch("a").hbSilent = true
	r.ch("a").mu.Unlock()
	r.clk.Advance(DefaultHeartbeatInterval) // acked one seen; next posted
	r.clk.Advance(DefaultHeartbeatTimeout)
	if st := r.state("a"); st != fsm.Blocked {
		t.Fatalf("a %v after a missed heartbeat", st)
	}
	if st := r.state("b"); st != fsm.Running {
		t.Fatalf("b %v", st)
	}
	var ps PathStatus
	for _, p := range r.dev.Snapshot().Paths {
		if p.ID == "a" {
			ps = p
		}
	}
	if ps.HeartbeatMisses != 1 || ps.FSM.Reason.Kind != fsm.HeartbeatMiss {
		t.Fatalf("%+v", ps)
	}
}

// Reconnects start after their jitter, at most MaxReconnects at once and at
// most MaxReconnectsPerTarget per target, queued in order.
func TestReconnectLimits(t *testing.T) {
	for _, c := range []struct {
		name           string
		global, perTgt int
		targets        []string
		wantRunning    int
	}{
		{"global", 1, 1, []string{"t1", "t2", "t3"}, 1},
		{"per-target", 4, 1, []string{"t1", "t1", "t2"}, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			pol := DefaultPolicy()
			pol.Path.ReconnectDelay = fsm.Timeout(time.Second)
			pol.Path.FlapCount = 0
			pol.MaxReconnects = c.global
			pol.MaxReconnectsPerTarget = c.perTgt
			pol.ReconnectJitter = 100 * time.Millisecond
			pol.HeartbeatInterval = 0
			r := newFakeRig(t, pol)
			ids := []string{"a", "b", "c"}
			for i, id := range ids {
				r.addPathTarget(id, c.targets[i], 0)
			}
			r.mu.Lock()
			r.gate = make(chan struct{})
			r.mu.Unlock()
			for _, id := range ids {
				r.ch(id).fail(srp.ErrDisconnected)
				r.waitState(id, fsm.Blocked)
			}
			r.clk.Advance(time.Second) // reconnect_delay; the jitter follows
			if st := r.dev.Snapshot(); st.Reconnecting != 0 {
				t.Fatalf("%d attempts started before their jitter", st.Reconnecting)
			}
			r.clk.Advance(pol.ReconnectJitter)
			st := r.dev.Snapshot()
			if st.Reconnecting != c.wantRunning || st.ReconnectsQueued != len(ids)-c.wantRunning {
				t.Fatalf("running %d queued %d, want %d and %d", st.Reconnecting, st.ReconnectsQueued, c.wantRunning, len(ids)-c.wantRunning)
			}
			// Release one login at a time; the queue drains under the limits.
			for range ids {
				r.gate <- struct{}{}
				r.settle()
				if st := r.dev.Snapshot(); st.Reconnecting > c.wantRunning {
					t.Fatalf("%d attempts at once", st.Reconnecting)
				}
			}
			for _, id := range ids {
				r.waitState(id, fsm.Running)
			}
		})
	}
}

// The data path does not allocate per I/O.
func TestDataPathAllocs(t *testing.T) {
	pol := DefaultPolicy()
	pol.HeartbeatInterval = 0
	r := newFakeRig(t, pol)
	r.addPath("a", 0)
	r.addPath("b", 0)
	q := r.q
	q.cfg.Complete = func(uint16, int, error) {}
	for _, op := range []Op{OpRead, OpWrite, OpFlush, OpDiscard, OpWriteZeroes} {
		allocs := testing.AllocsPerRun(1000, func() {
			for tag := range uint16(8) {
				q.Start(IO{Op: op, Off: int64(tag) * 4096, Len: 4096, Tag: tag})
			}
			q.Poll()
		})
		if allocs != 0 {
			t.Errorf("%v: %.1f allocations per 8 I/O", op, allocs)
		}
	}
}

// A path that flapped is held down after its reconnect: it carries no I/O
// until the hold-down ends.
// TestFailWaiting: the I/O waiting for a path fails once the device is
// being removed, and so does new I/O with no usable path; I/O on a usable
// path still completes.
func TestFailWaiting(t *testing.T) {
	pol := DefaultPolicy()
	pol.NoPathRetry = NoPathQueue
	pol.Path.ReconnectDelay = fsm.Timeout(time.Hour)
	pol.ReconnectJitter = 0
	pol.HeartbeatInterval = 0
	r := newFakeRig(t, pol)
	r.addPath("a", 0)
	if err := r.dev.FailPath("a", "test"); err != nil {
		t.Fatal(err)
	}
	r.read(1, 0)
	r.q.Poll()
	if _, done := r.done[1]; done {
		t.Fatal("I/O failed before FailWaiting")
	}
	r.dev.FailWaiting()
	r.q.Poll()
	if o, done := r.done[1]; !done || !errors.Is(o.err, ErrNoPath) {
		t.Fatalf("waiting I/O after FailWaiting: done=%v %+v, want ErrNoPath", done, o)
	}
	r.read(2, 0)
	r.q.Poll()
	if o, done := r.done[2]; !done || !errors.Is(o.err, ErrNoPath) {
		t.Fatalf("new I/O after FailWaiting: done=%v %+v, want ErrNoPath", done, o)
	}
	if err := r.dev.ReinstatePath("a"); err != nil {
		t.Fatal(err)
	}
	r.waitState("a", fsm.Running)
	r.read(3, 0)
	r.q.Poll()
	r.q.Poll()
	if o := r.done[3]; o.err != nil || o.n != 4096 {
		t.Fatalf("I/O on a usable path after FailWaiting: %+v", o)
	}
}

// TestPortActiveReconnectsNow: PORT_ACTIVE on the path's port starts its
// reconnect at once instead of at reconnect_delay; an event for another
// port does not.
func TestPortActiveReconnectsNow(t *testing.T) {
	pol := DefaultPolicy()
	pol.Path.ReconnectDelay = fsm.Timeout(time.Hour)
	pol.ReconnectJitter = 0
	pol.HeartbeatInterval = 0
	r := newFakeRig(t, pol)
	r.addPath("a", 0)
	r.ch("a").fail(srp.ErrDisconnected)
	r.waitState("a", fsm.Blocked)
	r.dev.PortEvent("", 7, verbs.EventPortActive) // another port
	r.settle()
	if st := r.state("a"); st != fsm.Blocked {
		t.Fatalf("PORT_ACTIVE of another port: path is %v, want blocked", st)
	}
	r.dev.PortEvent("", 0, verbs.EventPortActive)
	r.waitState("a", fsm.Running)
}

// TestSettleHoldDown: with Settle (hold_down) every reconnected path is
// held down before it carries I/O while another path runs; with no other
// path the held one carries I/O at once (damping never makes an outage).
func TestSettleHoldDown(t *testing.T) {
	pol := DefaultPolicy()
	pol.Grouping = GroupMultibus
	pol.Path.ReconnectDelay = fsm.Timeout(time.Second)
	pol.Path.FlapCount = 0
	pol.Path.Settle = 5 * time.Second
	pol.ReconnectJitter = 0
	pol.HeartbeatInterval = 0
	r := newFakeRig(t, pol)
	r.addPath("a", 0)
	r.addPath("b", 0)
	r.ch("a").fail(srp.ErrDisconnected)
	r.waitState("a", fsm.Blocked)
	r.clk.Advance(time.Second)
	r.waitState("a", fsm.HeldDown)
	held := r.ch("a")
	for tag := range uint16(8) {
		r.read(tag, 0)
		r.q.Poll()
	}
	if held.submits != 0 {
		t.Fatalf("held-down path got %d I/O while b runs", held.submits)
	}
	// b fails: a, held down, is the only path with channels: it serves.
	r.ch("b").fail(srp.ErrDisconnected)
	r.waitState("b", fsm.Blocked)
	r.settle()
	for tag := range uint16(8) {
		r.read(8+tag, 0)
		r.q.Poll()
	}
	r.q.Poll()
	if held.submits == 0 {
		t.Fatal("the held-down path carries no I/O while it is the only one")
	}
	for tag := range uint16(8) {
		if o := r.done[8+tag]; o.err != nil || o.n != 4096 {
			t.Fatalf("tag %d on the held path: %+v", 8+tag, o)
		}
	}
	r.clk.Advance(5 * time.Second)
	r.waitState("a", fsm.Running)
}

func TestFlapHoldDown(t *testing.T) {
	pol := DefaultPolicy()
	pol.Path.ReconnectDelay = fsm.Timeout(time.Second)
	pol.Path.FlapCount = 2
	pol.Path.FlapWindow = time.Minute
	pol.Path.HoldDown = 10 * time.Second
	pol.ReconnectJitter = 0
	pol.HeartbeatInterval = 0
	r := newFakeRig(t, pol)
	r.addPath("a", 0)
	r.addPath("b", 0)
	for _, after := range []fsm.State{fsm.Running, fsm.HeldDown} {
		r.ch("a").fail(srp.ErrDisconnected)
		r.waitState("a", fsm.Blocked)
		r.clk.Advance(time.Second)
		r.waitState("a", after)
	}
	held := r.ch("a")
	for tag := range uint16(8) {
		r.read(tag, 0)
		r.q.Poll()
	}
	if held.submits != 0 {
		t.Fatalf("held-down path got %d I/O", held.submits)
	}
	r.clk.Advance(10 * time.Second)
	r.waitState("a", fsm.Running)
	for tag := range uint16(8) {
		r.read(tag, 0)
		r.q.Poll()
	}
	if held.submits == 0 {
		t.Fatal("path carries no I/O after its hold-down")
	}
}

// A queue thread that sleeps without a timeout (ublk's) is woken by the
// watchdog when its timed work (here a BUSY backoff) falls due.
func TestWatchdogWakesQueue(t *testing.T) {
	pol := DefaultPolicy()
	pol.RetryBackoff = 50 * time.Millisecond
	r := newFakeRig(t, pol)
	r.addPath("a", 0)
	r.ch("a").script = []srp.Result{{Status: 0x08}} // BUSY
	r.read(1, 0)
	r.q.Poll() // BUSY: parked for the backoff
	if _, done := r.done[1]; done {
		t.Fatal("BUSY completed the I/O")
	}
	before := r.wakes.n.load()
	r.clk.Advance(DefaultHeartbeatInterval)
	if r.wakes.n.load() == before {
		t.Fatal("watchdog did not wake the queue")
	}
	r.q.Poll()
	r.q.Poll()
	if o, done := r.done[1]; !done || o.err != nil {
		t.Fatalf("after backoff: %v %+v", done, o)
	}
	// Status and the transitions feed.
	if err := r.dev.FailPath("a", "maintenance"); err != nil {
		t.Fatal(err)
	}
	tr := r.dev.Transitions()
	if len(tr) == 0 || tr[len(tr)-1].To != fsm.FailFast || tr[len(tr)-1].Reason != "admin-fail: maintenance" {
		t.Fatalf("transitions %+v", tr)
	}
	st := r.dev.Snapshot()
	if len(st.Paths) != 1 || st.Paths[0].Usable || st.Paths[0].Completions != 1 || st.Paths[0].Retries != 1 {
		t.Fatalf("status %+v", st)
	}
}

// SetPolicy applies at runtime without dropping I/O in flight; an invalid
// policy changes nothing.
func TestSetPolicy(t *testing.T) {
	r := newFakeRig(t, DefaultPolicy())
	r.addPath("a", 0)
	r.addPath("b", 0)
	r.ch("a").hold = true
	r.ch("b").hold = true
	for tag := range uint16(8) {
		r.read(tag, 0)
	}
	bad := DefaultPolicy()
	bad.Path.FastIOFailTmo = fsm.Timeout(time.Hour)
	if err := r.dev.SetPolicy(bad); !errors.Is(err, ErrBadPolicy) {
		t.Fatalf("invalid policy: %v", err)
	}
	if r.dev.Policy().Path.FastIOFailTmo != fsm.DefaultFastIOFailTmo {
		t.Fatal("invalid policy half-applied")
	}
	p := DefaultPolicy()
	p.Selector = SelectRoundRobin
	p.NoPathRetry = NoPathFail
	p.HeartbeatInterval = time.Second
	if err := r.dev.SetPolicy(p); err != nil {
		t.Fatal(err)
	}
	r.ch("a").release()
	r.ch("b").release()
	r.q.Poll()
	if len(r.done) != 8 {
		t.Fatalf("%d of 8 I/O survived SetPolicy", len(r.done))
	}
	if got := r.dev.Snapshot().Policy; got.Selector != SelectRoundRobin || got.NoPathRetry != NoPathFail {
		t.Fatalf("policy %v", got)
	}
}

// BenchmarkDataPath measures the queue's own cost per I/O (Start, select,
// submit, Poll, classify, complete) over in-memory channels.
func BenchmarkDataPath(b *testing.B) {
	for _, sel := range []Selector{SelectServiceTime, SelectRoundRobin, SelectQueueLength} {
		b.Run(sel.String(), func(b *testing.B) {
			pol := DefaultPolicy()
			pol.Selector = sel
			pol.HeartbeatInterval = 0
			r := newFakeRig(b, pol)
			r.addPath("a", 0)
			r.addPath("b", 0)
			r.addPath("c", 0)
			q := r.q
			q.cfg.Complete = func(uint16, int, error) {}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				tag := uint16(i % fakeDepth)
				q.Start(IO{Op: OpRead, Off: int64(tag) * 4096, Len: 4096, Tag: tag})
				if tag == fakeDepth-1 {
					q.Poll()
				}
			}
			q.Poll()
			b.StopTimer()
			_ = r.dev.Close()
		})
	}
}

// RemovePath reissues the path's I/O, closes its channels and frees its id
// and slot; errors name the path.
func TestRemovePath(t *testing.T) {
	r := newFakeRig(t, DefaultPolicy())
	r.addPath("a", 0)
	r.addPath("b", 0)
	r.ch("a").hold = true
	r.ch("b").hold = true
	for tag := range uint16(8) {
		r.read(tag, 0)
	}
	gone := r.ch("a")
	r.ch("b").release()
	if err := r.dev.RemovePath("a"); err != nil {
		t.Fatal(err)
	}
	r.q.Poll()
	r.q.Poll()
	if len(r.done) != 8 {
		t.Fatalf("%d of 8 I/O done after removing a path", len(r.done))
	}
	closed := false
	for i := 0; i < 100000 && !closed; i++ {
		runtime.Gosched()
		gone.mu.Lock()
		closed = gone.closed
		gone.mu.Unlock()
	}
	if !closed {
		t.Error("removed path's channel not closed")
	}
	if n := len(r.dev.Snapshot().Paths); n != 1 {
		t.Fatalf("%d paths after remove", n)
	}
	var oe *OpError
	if err := r.dev.RemovePath("a"); !errors.As(err, &oe) || !errors.Is(err, ErrUnknownPath) || oe.Path != "a" {
		t.Fatalf("second remove: %v", err)
	}
	r.addPath("a", 0)
	if err := r.dev.AddPath(context.Background(), PathSpec{ID: "a", Connect: func(context.Context, int) (Channel, error) { return newFakeChan(), nil }}); !errors.Is(err, ErrPathExists) {
		t.Fatalf("duplicate id: %v", err)
	}
}
