package paths

import (
	"errors"
	"syscall"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/ublk"
)

// UblkHandler serves a Device through ublk: it implements ublk.Handler and
// ublk.QueueHooks on the device's queues. OnQueueStart binds the ublk
// queue's tag buffers (registered with every path's RDMA device), its
// Complete and its Wake to the paths Queue of the same index; Start, Poll
// and PollFDs forward to that Queue on the queue thread.
//
// It also implements ublk's optional poll interfaces, so a queue thread
// sleeps armed on exactly the completion fds of its current channels (those
// made by a reconnect included; PollGen changes with the channel set, and
// ublk removes the polls of channels that left), acknowledges a fired
// completion channel (PollReady), and wakes by itself when the queue's timed
// work falls due (PollTimeout: Queue.NextDeadline by the device's clock).
type UblkHandler struct {
	d *Device
}

var (
	_ ublk.Handler     = (*UblkHandler)(nil)
	_ ublk.QueueHooks  = (*UblkHandler)(nil)
	_ ublk.PollFDSet   = (*UblkHandler)(nil)
	_ ublk.PollReadier = (*UblkHandler)(nil)
	_ ublk.PollTimer   = (*UblkHandler)(nil)
)

// NewUblkHandler returns the ublk handler of d. d's queue count and depth
// must match the ublk device's.
func NewUblkHandler(d *Device) *UblkHandler { return &UblkHandler{d: d} }

// OnQueueStart binds queue q's buffers to the device (queue thread).
func (h *UblkHandler) OnQueueStart(q *ublk.Queue) error {
	i := int(q.ID())
	if i >= h.d.NumQueues() || q.Depth() != h.d.qcfg[i].Depth {
		return errors.Join(ErrBadConfig, errors.New("paths: ublk queue geometry differs from the device's"))
	}
	bufs := q.Buffers()
	tagSize := 0
	if len(bufs) > 0 {
		tagSize = len(bufs[0])
	}
	complete := func(tag uint16, n int, err error) {
		if err != nil {
			q.Complete(tag, -int32(Errno(err)))
			return
		}
		q.Complete(tag, int32(n))
	}
	if err := h.d.BindQueue(i, QueueConfig{Mem: q.BufferMemory(), TagSize: tagSize, Complete: complete, Waker: q}); err != nil {
		return err
	}
	uq := newUblkQueue(h.d.Queue(i))
	for _, ch := range uq.chans {
		if ch != nil {
			_ = ch.ArmNotify()
		}
	}
	q.SetHandlerData(uq)
	return nil
}

// OnQueueStop deregisters the queue's buffers (queue thread, after the last
// request).
func (h *UblkHandler) OnQueueStop(q *ublk.Queue) {
	_ = h.d.UnbindQueue(int(q.ID()))
}

// Start maps a ublk request to an IO and starts it.
func (h *UblkHandler) Start(q *ublk.Queue, r *ublk.Request) {
	uq := q.HandlerData().(*ublkQueue)
	io, ok := ioFromRequest(r)
	if !ok {
		q.Complete(r.Tag, -int32(syscall.EOPNOTSUPP))
		return
	}
	uq.q.Start(io)
}

// Poll drains the queue's channels.
func (h *UblkHandler) Poll(q *ublk.Queue) int {
	uq := q.HandlerData().(*ublkQueue)
	n := uq.q.Poll()
	uq.q.ArmNotify()
	return n + uq.q.Poll()
}

// PollFDs are the completion fds of the queue's current channels.
func (h *UblkHandler) PollFDs(q *ublk.Queue) []int {
	if uq, ok := q.HandlerData().(*ublkQueue); ok {
		uq.sync()
		return uq.pollFDs()
	}
	return nil
}

// PollGen changes whenever the queue's current channels change (a path
// added, removed, or reconnected with new channels).
func (h *UblkHandler) PollGen(q *ublk.Queue) uint64 {
	if uq, ok := q.HandlerData().(*ublkQueue); ok {
		uq.sync()
		return uq.gen
	}
	return 0
}

// PollReady acknowledges the completion channel behind fd.
func (h *UblkHandler) PollReady(q *ublk.Queue, fd int) {
	if uq, ok := q.HandlerData().(*ublkQueue); ok {
		uq.ackNotify(fd)
	}
}

// PollTimeout bounds the queue thread's sleep by the queue's next deadline.
func (h *UblkHandler) PollTimeout(q *ublk.Queue) (time.Duration, bool) {
	if uq, ok := q.HandlerData().(*ublkQueue); ok {
		return uq.timeout()
	}
	return 0, false
}

// ioFromRequest maps a ublk request; false for an operation paths does not
// serve.
func ioFromRequest(r *ublk.Request) (IO, bool) {
	io := IO{Off: r.Off, Len: r.Len, Tag: r.Tag}
	switch r.Op {
	case ublk.OpRead:
		io.Op = OpRead
	case ublk.OpWrite:
		io.Op = OpWrite
	case ublk.OpFlush:
		io.Op = OpFlush
	case ublk.OpDiscard:
		io.Op = OpDiscard
	case ublk.OpWriteZeroes:
		io.Op = OpWriteZeroes
	default:
		return io, false
	}
	if r.Flags&ublk.FlagFUA != 0 {
		io.Flags |= FlagFUA
	}
	if r.Flags&ublk.FlagFailFastAny != 0 {
		io.Flags |= FlagFailFast
	}
	if r.Flags&ublk.FlagNoUnmap != 0 {
		io.Flags |= FlagNoUnmap
	}
	return io, true
}

// Errno is the one translation of an I/O outcome to an errno for ublk (the
// kernel turns it into the blk_status_t that scsi_result_to_blk_status
// would have produced: EIO, ENOLINK → BLK_STS_TRANSPORT, EREMOTEIO →
// BLK_STS_TARGET, ENODATA → BLK_STS_MEDIUM, EILSEQ → BLK_STS_PROTECTION,
// ENOSPC, EBADE → BLK_STS_RESV_CONFLICT).
func Errno(err error) syscall.Errno {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrNoPath):
		return syscall.ENOLINK
	case errors.Is(err, ErrTarget):
		return syscall.EREMOTEIO
	case errors.Is(err, ErrMedium):
		return syscall.ENODATA
	case errors.Is(err, ErrProtection):
		return syscall.EILSEQ
	case errors.Is(err, ErrNoSpace):
		return syscall.ENOSPC
	case errors.Is(err, ErrReservation):
		return syscall.EBADE
	case errors.Is(err, ErrInvalid):
		return syscall.EINVAL
	}
	return syscall.EIO
}
