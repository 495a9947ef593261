package ublk_test

import (
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/srp-mpathd/srp-mpathd/internal/ublk"
	"github.com/srp-mpathd/srp-mpathd/internal/ublk/uapi"
	"github.com/srp-mpathd/srp-mpathd/internal/ublk/ublkfake"
)

// fdHandler models the SRP engine: Start posts work to a "device" (another
// goroutine), whose completions appear in a list and make an eventfd
// readable; the queue thread sleeps on that fd (PollFDs) and finishes the
// requests in Poll with q.Complete on its own thread.
type fdHandler struct {
	efd   int
	mu    sync.Mutex
	done  []uint16
	work  chan *ublk.Request
	polls atomic.Int64
}

func (h *fdHandler) PollFDs(*ublk.Queue) []int { return []int{h.efd} }

func (h *fdHandler) Start(q *ublk.Queue, r *ublk.Request) { h.work <- r }

func (h *fdHandler) Poll(q *ublk.Queue) int {
	h.polls.Add(1)
	var sink [8]byte
	_, _ = unix.Read(h.efd, sink[:])
	h.mu.Lock()
	done := h.done
	h.done = nil
	h.mu.Unlock()
	for _, tag := range done {
		q.Complete(tag, 4096)
	}
	return len(done)
}

func (h *fdHandler) device() {
	one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
	for r := range h.work {
		for i := range r.Buf {
			r.Buf[i] = byte(r.Tag)
		}
		h.mu.Lock()
		h.done = append(h.done, r.Tag)
		h.mu.Unlock()
		_, _ = unix.Write(h.efd, one)
	}
}

func TestHandlerPollFDs(t *testing.T) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)
	h := &fdHandler{efd: efd, work: make(chan *ublk.Request, 16)}
	go h.device()
	defer close(h.work)
	k := ublkfake.New(ublkfake.Config{})
	spec := ublk.DeviceSpec{ID: testID, Queues: 1, Depth: 4, MaxIO: 4096, Size: testSize, Handler: h}
	d, err := ublk.Create(testCtx(t), newControl(t, k.Process(pidA)), spec)
	if err != nil {
		t.Fatal(err)
	}
	reqs := make([]*ublkfake.BlockRequest, 8)
	for i := range reqs {
		reqs[i] = ublkfake.NewBlockRequest(uapi.OpRead, int64(i)*4096, make([]byte, 4096))
		if err := k.Submit(testID, reqs[i]); err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range reqs {
		if res, err := r.Wait(testCtx(t)); err != nil || res != 4096 {
			t.Fatalf("request %d: %d %v", i, res, err)
		}
	}
	if err := d.Stop(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if d.Queues()[0].Served() != 9 { // 8 + the partition scan
		t.Errorf("served %d", d.Queues()[0].Served())
	}
	noViolations(t, k)
}

// parkHandler parks every request until the "control plane" releases them
// and wakes the queue (paths' no-path queueing).
type parkHandler struct {
	release atomic.Bool
	parked  []uint16 // queue thread only
	started chan struct{}
}

func (h *parkHandler) PollFDs(*ublk.Queue) []int { return nil }

func (h *parkHandler) Start(q *ublk.Queue, r *ublk.Request) {
	h.parked = append(h.parked, r.Tag)
	h.started <- struct{}{}
}

func (h *parkHandler) Poll(q *ublk.Queue) int {
	if !h.release.Load() {
		return 0
	}
	n := len(h.parked)
	for _, tag := range h.parked {
		q.Complete(tag, 0)
	}
	h.parked = h.parked[:0]
	return n
}

func TestQueueWake(t *testing.T) {
	k := ublkfake.New(ublkfake.Config{NoPartitionScan: true})
	h := &parkHandler{started: make(chan struct{}, 4)}
	spec := ublk.DeviceSpec{ID: testID, Queues: 1, Depth: 4, MaxIO: 4096, Size: testSize, Handler: h}
	d, err := ublk.Create(testCtx(t), newControl(t, k.Process(pidA)), spec)
	if err != nil {
		t.Fatal(err)
	}
	r := ublkfake.NewBlockRequest(uapi.OpFlush, 0, nil)
	if err := k.Submit(testID, r); err != nil {
		t.Fatal(err)
	}
	<-h.started
	h.release.Store(true)
	d.Queues()[0].Wake()
	if res, err := r.Wait(testCtx(t)); err != nil || res != 0 {
		t.Fatalf("released flush: %d %v", res, err)
	}
	if err := d.Stop(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	d.Queues()[0].Wake() // after the queue ended: harmless
	noViolations(t, k)
}
