package daemon

import (
	"context"
	"fmt"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/paths"
)

// Geometry of a queue the daemon runs itself (no ublk device).
const (
	runnerDepth   = 16
	runnerTagSize = 64 << 10
)

// chanWaker is a paths.Waker backed by a channel with a buffer of one.
type chanWaker struct{ c chan struct{} }

func newChanWaker() *chanWaker { return &chanWaker{c: make(chan struct{}, 1)} }

// Wake never blocks: a pending wake-up already covers this one.
func (w *chanWaker) Wake() {
	select {
	case w.c <- struct{}{}:
	default:
	}
}

// queueRunner plays a ublk queue thread for a device served without ublk
// (the simulated fabric, or a kernel without ublk_drv). It owns one
// paths.Queue's tag memory; it must run even with no I/O, because polling
// the channels is also how heartbeat ACKs are observed. With a workload it
// submits I/O (the demo's stand-in for md).
//
// Everything but the counters belongs to the runner's goroutine.
type queueRunner struct {
	q      *paths.Queue
	mem    []byte
	depth  int
	waker  *chanWaker
	wl     *workload
	hist   *latencyHist
	starts []time.Time
	free   []uint16
	busy   atomic.Int64
}

// newQueueRunner makes a runner over mem (runnerDepth*runnerTagSize bytes).
func newQueueRunner(wl *workload, hist *latencyHist, mem []byte) *queueRunner {
	r := &queueRunner{
		mem: mem, depth: runnerDepth,
		waker: newChanWaker(), wl: wl, hist: hist, starts: make([]time.Time, runnerDepth),
	}
	for t := runnerDepth - 1; t >= 0; t-- {
		r.free = append(r.free, uint16(t))
	}
	return r
}

func (r *queueRunner) queueConfig() paths.QueueConfig {
	return paths.QueueConfig{Depth: r.depth, Mem: r.mem, TagSize: runnerTagSize, Complete: r.complete, Waker: r.waker}
}

func (r *queueRunner) buf(tag uint16) []byte {
	return r.mem[int(tag)*runnerTagSize : int(tag+1)*runnerTagSize]
}

// complete is the queue's CompletionFunc (runner goroutine).
func (r *queueRunner) complete(tag uint16, n int, err error) {
	now := time.Now()
	r.hist.observe(now.Sub(r.starts[tag]))
	r.free = append(r.free, tag)
	r.busy.Add(-1)
	if r.wl != nil {
		r.wl.completed(tag, r.buf(tag), n, err, now)
	}
}

func (r *queueRunner) submit() {
	if r.wl == nil {
		return
	}
	for len(r.free) > 0 {
		tag := r.free[len(r.free)-1]
		io, ok := r.wl.next(tag, r.buf(tag))
		if !ok {
			return
		}
		r.free = r.free[:len(r.free)-1]
		r.starts[tag] = time.Now()
		r.busy.Add(1)
		r.q.Start(io)
	}
}

// run serves the queue until ctx ends, then stops submitting and waits up
// to drain for the I/O in progress. It returns an error only if I/O was
// still in progress when the drain ran out.
func (r *queueRunner) run(ctx context.Context, drain time.Duration) error {
	var (
		chans    []paths.Channel
		cases    []reflect.SelectCase
		stopping bool
		until    time.Time
	)
	for {
		if !stopping && ctx.Err() != nil {
			stopping, until = true, time.Now().Add(drain)
		}
		if !stopping {
			r.submit()
		}
		if r.q.Poll() > 0 {
			continue
		}
		if stopping {
			if r.q.Busy() == 0 {
				return nil
			}
			if !time.Now().Before(until) {
				return fmt.Errorf("queue %d: %d I/O still in progress after %v", r.q.Index(), r.q.Busy(), drain)
			}
		}
		r.q.ArmNotify()
		if r.q.Poll() > 0 {
			continue
		}
		chans = r.q.Channels(chans[:0])
		cases = cases[:0]
		for _, ch := range chans {
			if rd := ch.Ready(); rd != nil {
				cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(rd)})
			}
		}
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(r.waker.c)})
		if !stopping {
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())})
		}
		at, ok := r.q.NextDeadline()
		if stopping && (!ok || until.Before(at)) {
			at, ok = until, true
		}
		if !ok {
			reflect.Select(cases)
			continue
		}
		tm := time.NewTimer(time.Until(at))
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(tm.C)})
		reflect.Select(cases)
		tm.Stop()
	}
}
