package ublk

import (
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/ublk/uapi"
)

// Op is a request's operation.
type Op = uapi.Op

// Operations a Handler sees. Other descriptor ops (zoned) are failed with
// -EOPNOTSUPP by the queue before reaching the handler.
const (
	OpRead        = uapi.OpRead
	OpWrite       = uapi.OpWrite
	OpFlush       = uapi.OpFlush
	OpDiscard     = uapi.OpDiscard
	OpWriteZeroes = uapi.OpWriteZeroes
)

// IOFlags are a request's UBLK_IO_F_* flags.
type IOFlags = uapi.IOFlag

// Request flags a Handler acts on.
const (
	FlagFUA               = uapi.IOFUA
	FlagFailFastDev       = uapi.IOFailFastDev
	FlagFailFastTransport = uapi.IOFailFastTransport
	FlagFailFastDriver    = uapi.IOFailFastDriver
	FlagFailFastAny       = uapi.IOFailFastAny
	FlagNoUnmap           = uapi.IONoUnmap
	FlagMeta              = uapi.IOMeta
)

// Request is one block request, handed out on the queue thread and valid
// until it is completed. Requests are preallocated per tag and reused.
type Request struct {
	Op    Op
	Flags IOFlags
	Off   int64 // bytes: start_sector << 9
	Len   int   // bytes: nr_sectors << 9
	// Buf is the tag's buffer (off-heap, page aligned, stable for the
	// device's life), cut to Len for reads and writes and empty otherwise.
	// A read fills it; a write's data is in it.
	Buf   []byte
	Queue uint16
	Tag   uint16
}

// Handler serves requests. All methods except PollFDs' caller-side use run
// on the queue's locked OS thread and must not block: a blocking call stalls
// every request of the queue and, worse, the kernel's task_work for it.
type Handler interface {
	// Start begins serving r. The handler finishes it later (or at once) with
	// q.Complete(r.Tag, res) on this thread, or q.CompleteRemote from any
	// goroutine. res is the byte count for reads and writes, 0 for other
	// ops, or a negative errno.
	Start(q *Queue, r *Request)
	// Poll drains the handler's completion sources without blocking and
	// returns how many requests it completed. The queue calls it every loop
	// iteration and whenever one of PollFDs becomes readable.
	Poll(q *Queue) int
	// PollFDs lists fds the queue ring arms POLL_ADD on, so that the queue
	// thread sleeps in one io_uring_enter for ublk commands and these
	// sources. The handler drains them in Poll (or PollReady); a readable
	// fd left undrained re-fires at once. Called after OnQueueStart and,
	// for a PollFDSet, again whenever PollGen changes. The queue copies the
	// list (negative fds and duplicates are skipped), so the handler may
	// reuse the slice.
	PollFDs(q *Queue) []int
}

// PollFDSet is optionally implemented by a Handler whose PollFDs change
// over the queue's life (e.g. the completion fds of channels made by a
// reconnect). Each loop iteration, after Poll, the queue compares PollGen
// with the value it armed for; on a change it removes every armed poll
// (IORING_OP_POLL_REMOVE: an armed poll holds its file, so the poll of a
// closed fd would keep the file alive), calls PollFDs and arms the new set.
// Polls of a removed set that complete later are ignored.
type PollFDSet interface {
	// PollGen changes whenever PollFDs would return a different set (or the
	// same numbers for different files). Queue thread; cheap, no allocation.
	PollGen(q *Queue) uint64
}

// PollTimer is optionally implemented by a Handler with timed work (I/O
// timeouts, retry backoffs) that Poll must see on time although nothing
// else wakes the queue.
type PollTimer interface {
	// PollTimeout is how long the queue thread may sleep before Poll has
	// timed work; ok false means no bound. It is asked each loop
	// iteration right before the queue sleeps (after Poll), on the queue
	// thread, and must be cheap and not allocate. It is relative so that
	// the handler's own clock decides; the queue sleeps at least
	// MinPollTimeout.
	PollTimeout(q *Queue) (d time.Duration, ok bool)
}

// MinPollTimeout is the shortest sleep a PollTimer bound gives: a handler
// whose timed work stays due cannot make the queue thread spin.
const MinPollTimeout = time.Millisecond

// PollReadier is optionally implemented by a Handler that must consume a
// poll fd's readiness itself (a verbs completion channel needs
// ibv_get_cq_event/ack, which Poll's CQ polling does not do). PollReady runs
// on the queue thread for each armed fd whose poll fired, before the next
// Poll and before the fd is armed again.
type PollReadier interface {
	PollReady(q *Queue, fd int)
}

// QueueHooks is optionally implemented by a Handler to set up and tear down
// per-queue state (e.g. register the queue's buffers as RDMA memory, start
// a worker pool). Both run on the queue thread: OnQueueStart before the
// first FETCH, OnQueueStop after the last command, before the buffers are
// unmapped. An OnQueueStart error aborts the device's setup.
type QueueHooks interface {
	OnQueueStart(q *Queue) error
	OnQueueStop(q *Queue)
}
