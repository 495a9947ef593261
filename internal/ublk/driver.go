package ublk

import (
	"context"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/ublk/uapi"
)

// Driver is the seam below Control and Device: the kernel's ublk_drv
// (Linux) or a model of its rules (package ublkfake). One Driver stands for
// one process: its PID is what START_DEV records as the device's server.
type Driver interface {
	// OpenControl opens /dev/ublk-control.
	OpenControl() (ControlConn, error)
	// OpenCharDev opens /dev/ublkc<id> (exclusive), retrying while the node
	// is missing or busy until ctx ends (pitfall 13).
	OpenCharDev(ctx context.Context, id uint32) (CharDev, error)
	// PID is this process's id as the driver sees it.
	PID() int32
	// PIDAlive reports whether a process with that id exists.
	PIDAlive(pid int32) bool
	// PageSize is the page size descriptor mmaps and buffers round to.
	PageSize() int
}

// ControlConn issues control commands.
type ControlConn interface {
	// Cmd issues one command with opcode op (either encoding) and waits for
	// its completion. payload is the command's addr/len buffer: Control
	// passes off-heap memory that stays valid until Cmd returns. The result
	// is the CQE's res: >= 0 on success, -errno when the driver refused.
	// err reports a failure of the transport itself; when ctx ends before
	// the completion, Cmd returns an error wrapping both ctx.Err() and
	// ErrCommandAbandoned, and the connection must not be used again.
	Cmd(ctx context.Context, op uint32, hdr uapi.CtrlCmd, payload []byte) (res int32, err error)
	Close() error
}

// CharDev is an open /dev/ublkcN, shared by the device's queues.
type CharDev interface {
	// OpenQueue sets up queue cfg.ID: its ring and descriptor mapping.
	// It is called on the queue's own locked thread.
	OpenQueue(cfg QueueConfig) (QueueRing, error)
	Close() error
}

// QueueConfig describes one queue to OpenQueue.
type QueueConfig struct {
	ID    uint16
	Depth int
	// Entries is the ring size the runner needs (tags plus poll fds).
	Entries uint32
	// Buffers are the per-tag buffers whose addresses FETCH and COMMIT pass.
	// The kernel copies through the addresses; the fake copies through these
	// slices and checks that the addresses match.
	Buffers [][]byte
}

// QueueRing is one queue's command ring. All methods are called from the
// queue's locked thread and must not allocate.
type QueueRing interface {
	// PrepIO queues an I/O command; false means the SQ is full (Submit first).
	PrepIO(op uint32, cmd uapi.IOCmd, userData uint64) bool
	// PrepPollAdd queues a one-shot POLLIN poll of fd.
	PrepPollAdd(fd int, userData uint64) bool
	// PrepPollRemove queues the removal of the armed poll whose user_data
	// is target (IORING_OP_POLL_REMOVE). Its own completion carries
	// userData: 0, or -ENOENT/-EALREADY when the poll completed first; a
	// removed poll completes with -ECANCELED.
	PrepPollRemove(target, userData uint64) bool
	// Submit submits what is queued and, when wait is set, sleeps until at
	// least one completion is ready (GETEVENTS: it also runs ublk task_work).
	Submit(wait bool) error
	// SubmitTimeout is Submit(true) that sleeps at most d: running out of
	// time is not an error.
	SubmitTimeout(d time.Duration) error
	// Peek consumes the next completion.
	Peek() (userData uint64, res int32, ok bool)
	// Desc returns the descriptor of tag's current request.
	Desc(tag uint16) uapi.IODesc
	// Close unmaps the descriptors and closes the ring.
	Close() error
}
