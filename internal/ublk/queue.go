package ublk

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/srp-mpathd/srp-mpathd/internal/ublk/uapi"
)

// user_data of a queue ring's SQEs: tag (or poll slot) in bits 0–15, kind
// in bits 16–23, and for handler polls the poll epoch in bits 24–55, so the
// completion of a poll from a set that was since replaced is recognised.
// Handler-owned SQEs never reach this ring's dispatcher.
const (
	udKindShift  = 16
	udEpochShift = 24
	udTagMask    = 0xffff
	udKindMask   = 0xff
	udEpochMask  = 0xffffffff
)

// Poll fd bookkeeping.
const (
	// maxPollFDs: a poll slot is 16 bits of user_data.
	maxPollFDs = udTagMask + 1
	// pollFDHeadroom is how many fds a PollFDSet handler may list later
	// without the ring having to flush mid-change.
	pollFDHeadroom = 32
	// pollEntriesPerFD: a change of the set takes a POLL_REMOVE and a
	// POLL_ADD per fd, and each removed poll posts its own CQE besides the
	// remove's (the CQ is twice the SQ).
	pollEntriesPerFD = 2
)

type udKind uint8

const (
	kindIO     udKind = 1 // FETCH / COMMIT_AND_FETCH of a tag
	kindPoll   udKind = 2 // POLL_ADD of handler fd number tag
	kindRemote udKind = 3 // POLL_ADD of the remote-completion eventfd
	kindUnpoll udKind = 4 // POLL_REMOVE of a handler fd's poll
)

func (k udKind) String() string {
	switch k {
	case kindIO:
		return "io"
	case kindPoll:
		return "poll"
	case kindRemote:
		return "remote"
	case kindUnpoll:
		return "unpoll"
	}
	return fmt.Sprintf("udKind(%d)", uint8(k))
}

func userData(k udKind, tag uint16) uint64 { return uint64(tag) | uint64(k)<<udKindShift }

// pollUserData is the user_data of handler poll slot in epoch.
func pollUserData(epoch uint32, slot uint16) uint64 {
	return userData(kindPoll, slot) | uint64(epoch)<<udEpochShift
}

// tagState is where a tag is in its FETCH → serve → COMMIT_AND_FETCH cycle.
type tagState uint8

const (
	tagIdle  tagState = iota // not yet fetched
	tagArmed                 // FETCH or COMMIT_AND_FETCH in flight: the kernel owns it
	tagOwned                 // a request is being served by the handler
	tagDead                  // aborted: the device is stopping
)

func (s tagState) String() string {
	switch s {
	case tagIdle:
		return "idle"
	case tagArmed:
		return "armed"
	case tagOwned:
		return "owned"
	case tagDead:
		return "dead"
	}
	return fmt.Sprintf("tagState(%d)", uint8(s))
}

// remoteCompletion is a completion reported from another goroutine.
type remoteCompletion struct {
	tag uint16
	res int32
}

// Queue is one ublk hardware queue served by one locked OS thread.
// Methods other than CompleteRemote, ID, Depth, Buffers and Device must be
// called on that thread (from Handler callbacks).
type Queue struct {
	dev     *Device
	id      uint16
	depth   int
	handler Handler

	ring      QueueRing
	bufMem    []byte
	freeBufs  func() error
	bufs      [][]byte
	reqs      []Request
	state     []tagState
	pollFDs   []int  // handler fds armed (or to be armed) in pollEpoch, by slot
	pollArmed []bool // slot has a POLL_ADD in flight
	pollEpoch uint32 // changes with every new set of handler polls
	pollGen   uint64 // the PollGen the set was taken at
	pollSet   PollFDSet
	timer     PollTimer
	readier   PollReadier
	fetchOp   uint32
	commitOp  uint32
	live      int // tags not dead
	owned     int // tags held by the handler
	misuse    int // Complete calls for tags the handler did not own
	handlerV  any
	efd       int
	efdOne    [8]byte // the value written to wake the queue (read-only)
	efdSink   [8]byte // where the queue reads the eventfd into
	remoteMu  sync.Mutex
	remote    []remoteCompletion
	spare     []remoteCompletion
	detach    atomic.Bool
	abandon   atomic.Bool
	served    atomic.Uint64
	threadTID int
	hooked    bool
	affinity  *unix.CPUSet
}

// ID is the queue's index.
func (q *Queue) ID() uint16 { return q.id }

// Depth is the number of tags.
func (q *Queue) Depth() int { return q.depth }

// Device is the queue's device.
func (q *Queue) Device() *Device { return q.dev }

// Buffers returns the per-tag buffers: Buffers()[tag] has MaxIO bytes,
// off-heap and page aligned, stable from OnQueueStart to OnQueueStop (the
// window in which a handler may register them as RDMA memory).
func (q *Queue) Buffers() [][]byte { return q.bufs }

// BufferMemory returns the single mapping that holds all tag buffers, for
// registering them with one memory region.
func (q *Queue) BufferMemory() []byte { return q.bufMem }

// SetHandlerData stores the handler's per-queue state (in OnQueueStart).
func (q *Queue) SetHandlerData(v any) { q.handlerV = v }

// HandlerData returns what SetHandlerData stored.
func (q *Queue) HandlerData() any { return q.handlerV }

// Served is the number of requests completed so far (any goroutine).
func (q *Queue) Served() uint64 { return q.served.Load() }

// Complete finishes tag's request with res (bytes, 0, or -errno) and
// re-arms the tag with COMMIT_AND_FETCH. Queue thread only.
func (q *Queue) Complete(tag uint16, res int32) {
	if int(tag) >= q.depth || q.state[tag] != tagOwned {
		q.misuse++
		return
	}
	q.state[tag] = tagArmed
	q.owned--
	q.served.Add(1)
	cmd := uapi.IOCmd{QueueID: q.id, Tag: tag, Result: res, Addr: bufAddr(q.bufs[tag])}
	for !q.ring.PrepIO(q.commitOp, cmd, userData(kindIO, tag)) {
		// The SQ is full: flush it without waiting and retry.
		if err := q.ring.Submit(false); err != nil {
			return
		}
	}
}

// CompleteRemote is Complete from any goroutine: the completion is queued
// under a mutex and the queue thread is woken through an eventfd when the
// list goes from empty to non-empty. It is the slow path (research §5).
func (q *Queue) CompleteRemote(tag uint16, res int32) {
	q.remoteMu.Lock()
	wake := len(q.remote) == 0
	q.remote = append(q.remote, remoteCompletion{tag: tag, res: res})
	if wake {
		q.wakeLocked()
	}
	q.remoteMu.Unlock()
}

// Wake makes the queue thread run one more loop iteration (Handler.Poll
// included) soon. Any goroutine may call it, also before the queue runs or
// after it ended: the control plane uses it after publishing a new path
// table, so parked requests are looked at again.
func (q *Queue) Wake() {
	q.remoteMu.Lock()
	q.wakeLocked()
	q.remoteMu.Unlock()
}

// wakeLocked writes the eventfd. remoteMu is held, which keeps the fd from
// being closed (and its number reused) underneath the write.
func (q *Queue) wakeLocked() {
	if q.efd < 0 {
		return
	}
	// EAGAIN means the counter is saturated, so the queue is awake anyway.
	_, _ = unix.Write(q.efd, q.efdOne[:])
}

// requestDetach makes the queue leave the loop once the handler owns no
// request, without STOP_DEV: the device stays for a successor (recovery).
func (q *Queue) requestDetach() {
	q.detach.Store(true)
	q.Wake()
}

// requestAbandon makes the queue leave the loop now, even with requests
// the handler owns: closing the char device hands them back to the kernel.
func (q *Queue) requestAbandon() {
	q.abandon.Store(true)
	q.Wake()
}

func (q *Queue) drainRemote() {
	q.remoteMu.Lock()
	if len(q.remote) == 0 {
		q.remoteMu.Unlock()
		return
	}
	list := q.remote
	q.remote = q.spare[:0]
	q.remoteMu.Unlock()
	for _, c := range list {
		q.Complete(c.tag, c.res)
	}
	q.spare = list[:0]
}

// setup runs on the queue thread: buffers, ring, hooks, FETCH for every tag.
func (q *Queue) setup() error {
	d := q.dev
	var err error
	if d.spec.QueueMemory != nil {
		q.bufMem = d.spec.QueueMemory[q.id][:q.depth*d.maxIO]
	} else if q.bufMem, q.freeBufs, err = allocOffHeap(q.depth * d.maxIO); err != nil {
		return err
	}
	if d.spec.LockMemory {
		// Best effort: a server must not wait on reclaim of its own buffers.
		if err := unix.Mlock(q.bufMem); err != nil {
			d.log.Warn("ublk: mlock of queue buffers failed", "queue", q.id, "bytes", len(q.bufMem), "err", err)
		}
	}
	q.bufs = make([][]byte, q.depth)
	for t := range q.bufs {
		q.bufs[t] = q.bufMem[t*d.maxIO : (t+1)*d.maxIO : (t+1)*d.maxIO]
	}
	q.reqs = make([]Request, q.depth)
	q.state = make([]tagState, q.depth)
	q.remote = make([]remoteCompletion, 0, q.depth)
	q.spare = make([]remoteCompletion, 0, q.depth)
	q.efdOne[0] = 1
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return &OpError{Op: fmt.Sprintf("queue %d eventfd", q.id), DevID: d.id, Err: err}
	}
	q.remoteMu.Lock()
	q.efd = efd
	q.remoteMu.Unlock()
	if h, ok := q.handler.(QueueHooks); ok {
		if err := h.OnQueueStart(q); err != nil {
			return &OpError{Op: fmt.Sprintf("queue %d start hook", q.id), DevID: d.id, Err: err}
		}
		q.hooked = true
	}
	q.timer, _ = q.handler.(PollTimer)
	q.readier, _ = q.handler.(PollReadier)
	pollRoom := 0
	if q.pollSet, _ = q.handler.(PollFDSet); q.pollSet != nil {
		// The generation first: a change after it is seen next iteration.
		q.pollGen = q.pollSet.PollGen(q)
		pollRoom = pollFDHeadroom
	}
	q.pollFDs = make([]int, 0, pollRoom)
	q.pollArmed = make([]bool, 0, pollRoom)
	q.adoptPollFDs(q.handler.PollFDs(q))
	entries := uint32(q.depth + 1 + pollEntriesPerFD*max(len(q.pollFDs), pollRoom))
	q.ring, err = d.char.OpenQueue(QueueConfig{ID: q.id, Depth: q.depth, Entries: entries, Buffers: q.bufs})
	if err != nil {
		return &OpError{Op: fmt.Sprintf("open queue %d", q.id), DevID: d.id, Err: err}
	}
	for t := range q.depth {
		cmd := uapi.IOCmd{QueueID: q.id, Tag: uint16(t), Addr: bufAddr(q.bufs[t])}
		for !q.ring.PrepIO(q.fetchOp, cmd, userData(kindIO, uint16(t))) {
			if err := q.ring.Submit(false); err != nil {
				return &OpError{Op: fmt.Sprintf("queue %d FETCH", q.id), DevID: d.id, Err: err}
			}
		}
		q.state[t] = tagArmed
	}
	q.live = q.depth
	q.armPolls()
	q.armPoll(q.efd, userData(kindRemote, 0))
	if err := q.ring.Submit(false); err != nil {
		return &OpError{Op: fmt.Sprintf("queue %d FETCH", q.id), DevID: d.id, Err: err}
	}
	return nil
}

// armPoll queues a POLL_ADD, flushing a full SQ; false if the ring failed.
func (q *Queue) armPoll(fd int, ud uint64) bool {
	for !q.ring.PrepPollAdd(fd, ud) {
		if err := q.ring.Submit(false); err != nil {
			return false
		}
	}
	return true
}

// adoptPollFDs takes the handler's fds as the current set: non-negative,
// without duplicates, at most maxPollFDs. It allocates only when the set
// outgrows every earlier one.
func (q *Queue) adoptPollFDs(fds []int) {
	q.pollFDs = q.pollFDs[:0]
	for _, fd := range fds {
		if fd < 0 || slices.Contains(q.pollFDs, fd) {
			continue
		}
		if len(q.pollFDs) == maxPollFDs {
			q.dev.log.Warn("ublk: handler lists too many poll fds; the rest are not watched", "queue", q.id, "max", maxPollFDs)
			break
		}
		q.pollFDs = append(q.pollFDs, fd)
	}
	q.pollArmed = slices.Grow(q.pollArmed[:0], len(q.pollFDs))[:len(q.pollFDs)]
	clear(q.pollArmed)
}

// armPolls arms every fd of the current set.
func (q *Queue) armPolls() {
	for i, fd := range q.pollFDs {
		q.pollArmed[i] = q.armPoll(fd, pollUserData(q.pollEpoch, uint16(i)))
	}
}

// refreshPollFDs re-arms the handler's polls when its set changed: every
// armed poll of the old set is removed (it holds its file, and an fd
// number may now name another file, so none is kept), then the new set is
// armed in a new epoch. Completions of the old epoch are ignored.
func (q *Queue) refreshPollFDs() {
	gen := q.pollSet.PollGen(q)
	if gen == q.pollGen {
		return
	}
	q.pollGen = gen
	for i, armed := range q.pollArmed {
		if !armed {
			continue
		}
		for !q.ring.PrepPollRemove(pollUserData(q.pollEpoch, uint16(i)), userData(kindUnpoll, 0)) {
			if err := q.ring.Submit(false); err != nil {
				return // the loop's Submit reports the ring's failure
			}
		}
	}
	q.pollEpoch++
	q.adoptPollFDs(q.handler.PollFDs(q))
	q.armPolls()
}

// sleep submits and waits for a completion, no longer than the handler's
// timed work allows.
func (q *Queue) sleep() error {
	if q.timer != nil {
		if d, ok := q.timer.PollTimeout(q); ok {
			return q.ring.SubmitTimeout(max(d, MinPollTimeout))
		}
	}
	return q.ring.Submit(true)
}

// loop serves the queue until every tag is aborted (STOP_DEV), the ring
// fails, or a detach finds the handler idle. It does not allocate.
func (q *Queue) loop() error {
	for q.live > 0 {
		// Checked every iteration, also when CQEs are always ready (pitfall 12).
		if (q.detach.Load() && q.owned == 0) || q.abandon.Load() {
			return nil
		}
		q.drainRemote()
		q.handler.Poll(q)
		if q.pollSet != nil {
			q.refreshPollFDs()
		}
		if err := q.sleep(); err != nil {
			return &OpError{Op: "queue ring", DevID: q.dev.id, Err: err}
		}
		for {
			ud, res, ok := q.ring.Peek()
			if !ok {
				break
			}
			q.dispatch(ud, res)
		}
	}
	return nil
}

func (q *Queue) dispatch(ud uint64, res int32) {
	tag := uint16(ud & udTagMask)
	switch udKind(ud >> udKindShift & udKindMask) {
	case kindIO:
		if int(tag) >= q.depth || q.state[tag] != tagArmed {
			q.misuse++
			return
		}
		switch res {
		case uapi.IOResOK:
			q.state[tag] = tagOwned
			q.owned++
			q.start(tag)
		default:
			// ABORT (-ENODEV) on stop; any other error means the kernel
			// refused the command, and the tag cannot be used again either.
			if res != uapi.IOResAbort {
				q.dev.noteQueueError(q.id, tag, res)
			}
			q.state[tag] = tagDead
			q.live--
		}
	case kindPoll:
		if uint32(ud>>udEpochShift&udEpochMask) != q.pollEpoch || int(tag) >= len(q.pollFDs) {
			// A poll of a replaced set: its -ECANCELED, or one that fired
			// before its removal. Its fd is no longer watched.
			return
		}
		fd := q.pollFDs[tag]
		if res < 0 {
			// EBADF (closed before it was armed) or the like: re-arming
			// would fail again at once. The fd stays unwatched until the
			// handler's set changes.
			q.pollArmed[tag] = false
			q.dev.log.Warn("ublk: handler poll fd failed; not watched until the set changes",
				"queue", q.id, "fd", fd, "err", unix.Errno(-res))
			return
		}
		if q.readier != nil {
			q.readier.PollReady(q, fd)
		}
		q.pollArmed[tag] = q.armPoll(fd, ud)
	case kindUnpoll:
		// 0, or -ENOENT/-EALREADY when the poll completed first: either
		// way the removed poll's own completion carries an old epoch.
	case kindRemote:
		_, _ = unix.Read(q.efd, q.efdSink[:])
		q.armPoll(q.efd, ud)
	}
}

// start turns tag's descriptor into its Request and hands it to the handler.
func (q *Queue) start(tag uint16) {
	desc := q.ring.Desc(tag)
	r := &q.reqs[tag]
	*r = Request{
		Op: desc.Op(), Flags: desc.Flags(),
		Off: int64(desc.StartSector) << uapi.SectorShift, Len: int(desc.NrSectors) << uapi.SectorShift,
		Queue: q.id, Tag: tag,
	}
	switch r.Op {
	case OpRead, OpWrite:
		if r.Len > len(q.bufs[tag]) {
			q.Complete(tag, -int32(unix.EINVAL))
			return
		}
		r.Buf = q.bufs[tag][:r.Len]
	case OpFlush, OpDiscard, OpWriteZeroes:
		r.Buf = q.bufs[tag][:0]
	default:
		q.Complete(tag, -int32(unix.EOPNOTSUPP))
		return
	}
	q.handler.Start(q, r)
}

// run is the queue goroutine: locked to its OS thread for the device's life.
// It never unlocks: when it returns, the runtime ends the thread, which the
// kernel takes as the daemon's exit (research §1.6 rule 2).
func (q *Queue) run(ready chan<- error) {
	runtime.LockOSThread()
	q.threadTID = unix.Gettid()
	// Best effort: the server of a block device must not recurse into
	// reclaim that writes to that device (pitfall 15). Needs CAP_SYS_RESOURCE.
	if err := unix.Prctl(unix.PR_SET_IO_FLUSHER, 1, 0, 0, 0); err != nil {
		q.dev.log.Debug("ublk: PR_SET_IO_FLUSHER refused", "queue", q.id, "err", err)
	}
	if q.affinity != nil && q.affinity.Count() > 0 {
		if err := unix.SchedSetaffinity(0, q.affinity); err != nil {
			q.dev.log.Warn("ublk: pinning the queue thread failed", "queue", q.id, "err", err)
		}
	}
	err := q.setup()
	ready <- err
	if err == nil {
		err = q.loop()
	}
	q.dev.queueDone(q, errors.Join(err, q.teardown()))
}

// teardown runs on the queue thread after the loop: hook, ring, buffers.
func (q *Queue) teardown() error {
	var errs []error
	if q.hooked {
		q.handler.(QueueHooks).OnQueueStop(q)
	}
	if q.ring != nil {
		errs = append(errs, q.ring.Close())
	}
	q.remoteMu.Lock()
	if q.efd >= 0 {
		errs = append(errs, unix.Close(q.efd))
		q.efd = -1
	}
	q.remoteMu.Unlock()
	if q.freeBufs != nil {
		errs = append(errs, q.freeBufs())
	}
	q.freeBufs, q.bufMem, q.bufs = nil, nil, nil
	return errors.Join(errs...)
}
