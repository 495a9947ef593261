package ublk

import (
	"context"
	"sync"

	"golang.org/x/sys/unix"
)

// Backend is a blocking block store, served through NewBackendHandler's
// per-queue worker pool. It must not keep p after returning. ctx is
// cancelled when the queue stops.
type Backend interface {
	ReadAt(ctx context.Context, p []byte, off int64) error
	WriteAt(ctx context.Context, p []byte, off int64, fua bool) error
	Flush(ctx context.Context) error
}

// Discarder is implemented by backends that support DISCARD.
type Discarder interface {
	Discard(ctx context.Context, off, n int64) error
}

// ZeroWriter is implemented by backends that support WRITE_ZEROES.
type ZeroWriter interface {
	WriteZeroes(ctx context.Context, off, n int64, unmap bool) error
}

// Geometry is what a backend tells the device about itself.
type Geometry struct {
	Size              int64
	LogicalBlockSize  int
	PhysicalBlockSize int
	VolatileCache     bool // FLUSH and FUA matter
}

// Sized is implemented by backends that know their geometry; Serve takes
// the device's size and block sizes from it.
type Sized interface {
	Geometry() Geometry
}

// DefaultWorkers is the per-queue worker count of NewBackendHandler.
const DefaultWorkers = 4

// BackendHandler adapts a blocking Backend to the Handler seam: Start hands
// the request to a bounded per-queue worker pool, and workers finish with
// CompleteRemote. It costs a goroutine handoff per I/O (research §5): use
// it for tests, memory/file targets and slow paths, not for the SRP engine.
type BackendHandler struct {
	b       Backend
	workers int
}

// NewBackendHandler returns a Handler serving b with workers goroutines
// per queue (DefaultWorkers if workers <= 0).
func NewBackendHandler(b Backend, workers int) *BackendHandler {
	if workers <= 0 {
		workers = DefaultWorkers
	}
	return &BackendHandler{b: b, workers: workers}
}

type backendQueue struct {
	ctx    context.Context
	cancel context.CancelFunc
	reqs   chan *Request
	wg     sync.WaitGroup
}

// OnQueueStart starts the queue's workers.
func (h *BackendHandler) OnQueueStart(q *Queue) error {
	ctx, cancel := context.WithCancel(context.Background())
	bq := &backendQueue{ctx: ctx, cancel: cancel, reqs: make(chan *Request, q.Depth())}
	for range h.workers {
		bq.wg.Add(1)
		go func() {
			defer bq.wg.Done()
			for r := range bq.reqs {
				q.CompleteRemote(r.Tag, h.serve(bq.ctx, r))
			}
		}()
	}
	q.SetHandlerData(bq)
	return nil
}

// OnQueueStop cancels outstanding backend calls and waits for the workers.
func (h *BackendHandler) OnQueueStop(q *Queue) {
	bq := q.HandlerData().(*backendQueue)
	bq.cancel()
	close(bq.reqs)
	bq.wg.Wait()
}

// Start queues r for a worker. The channel holds Depth requests, one per
// tag, so the send never blocks.
func (h *BackendHandler) Start(q *Queue, r *Request) {
	q.HandlerData().(*backendQueue).reqs <- r
}

// Poll does nothing: workers complete through CompleteRemote.
func (h *BackendHandler) Poll(*Queue) int { return 0 }

// PollFDs returns none.
func (h *BackendHandler) PollFDs(*Queue) []int { return nil }

func (h *BackendHandler) serve(ctx context.Context, r *Request) int32 {
	var err error
	switch r.Op {
	case OpRead:
		err = h.b.ReadAt(ctx, r.Buf, r.Off)
	case OpWrite:
		err = h.b.WriteAt(ctx, r.Buf, r.Off, r.Flags&FlagFUA != 0)
	case OpFlush:
		return ErrnoFor(h.b.Flush(ctx))
	case OpDiscard:
		d, ok := h.b.(Discarder)
		if !ok {
			return -int32(unix.EOPNOTSUPP)
		}
		return ErrnoFor(d.Discard(ctx, r.Off, int64(r.Len)))
	case OpWriteZeroes:
		z, ok := h.b.(ZeroWriter)
		if !ok {
			return -int32(unix.EOPNOTSUPP)
		}
		return ErrnoFor(z.WriteZeroes(ctx, r.Off, int64(r.Len), r.Flags&FlagNoUnmap == 0))
	default:
		return -int32(unix.EOPNOTSUPP)
	}
	if err != nil {
		return ErrnoFor(err)
	}
	return int32(r.Len)
}

// NullHandler completes every request at once on the queue thread: reads
// return zeroes, writes are dropped. It is the zero-cost handler of
// benchmarks and the allocation test.
type NullHandler struct{}

// Start completes r inline.
func (NullHandler) Start(q *Queue, r *Request) {
	switch r.Op {
	case OpRead:
		clear(r.Buf)
		q.Complete(r.Tag, int32(r.Len))
	case OpWrite:
		q.Complete(r.Tag, int32(r.Len))
	default:
		q.Complete(r.Tag, 0)
	}
}

// Poll does nothing.
func (NullHandler) Poll(*Queue) int { return 0 }

// PollFDs returns none.
func (NullHandler) PollFDs(*Queue) []int { return nil }
