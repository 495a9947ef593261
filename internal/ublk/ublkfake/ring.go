package ublkfake

import (
	"context"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/srp-mpathd/srp-mpathd/internal/ublk"
	"github.com/srp-mpathd/srp-mpathd/internal/ublk/uapi"
)

// charDev is an open /dev/ublkcN.
type charDev struct {
	k      *Kernel
	proc   *Process
	dev    *device
	closed bool
}

// Close releases the char device. A server that still serves the disk
// has gone away (≥6.7 detects this at once).
func (c *charDev) Close() error {
	k := c.k
	k.mu.Lock()
	defer k.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if c.dev.char == c {
		c.dev.char = nil
		if c.dev.accepting && c.dev.serverPID == c.proc.pid {
			k.serverGone(c.dev)
		}
	}
	k.reap(c.dev)
	k.broadcast()
	return nil
}

// OpenQueue maps queue cfg.ID: the depth must match the device's (the
// kernel checks the mmap length), and a queue is mapped once per server.
func (c *charDev) OpenQueue(cfg ublk.QueueConfig) (ublk.QueueRing, error) {
	k := c.k
	k.mu.Lock()
	defer k.mu.Unlock()
	if c.proc.dead || c.closed {
		return nil, ErrKilled
	}
	d := c.dev
	if int(cfg.ID) >= len(d.queues) || cfg.Depth != int(d.info.QueueDepth) || len(cfg.Buffers) != cfg.Depth {
		return nil, fmt.Errorf("ublkfake: mmap queue %d depth %d: %w", cfg.ID, cfg.Depth, unix.EINVAL)
	}
	q := d.queues[cfg.ID]
	if q.ring != nil {
		return nil, fmt.Errorf("ublkfake: queue %d already mapped: %w", cfg.ID, unix.EINVAL)
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, err
	}
	n := int(cfg.Entries)
	r := &queueRing{k: k, proc: c.proc, q: q, notify: efd, entries: n,
		sq:    make([]sqEntry, 0, n),
		cq:    make([]cqEntry, 2*n+int(d.info.QueueDepth)),
		pfds:  make([]unix.PollFd, 0, n+1),
		polls: make([]pollEntry, 0, n),
		one:   [8]byte{1},
	}
	q.ring = r
	q.bufs = cfg.Buffers
	return r, nil
}

// sqKind is what an SQE asks for.
type sqKind uint8

const (
	sqIO         sqKind = iota // FETCH / COMMIT_AND_FETCH
	sqPollAdd                  // IORING_OP_POLL_ADD
	sqPollRemove               // IORING_OP_POLL_REMOVE
)

type sqEntry struct {
	kind   sqKind
	fd     int
	op     uint32
	cmd    uapi.IOCmd
	ud     uint64
	target uint64 // POLL_REMOVE: the poll's user_data
}

type cqEntry struct {
	ud  uint64
	res int32
}

// pollEntry is an armed POLL_ADD. Like the kernel's, it holds the file: the
// fake polls a duplicate of the fd, closed when the poll completes or is
// removed, so closing the caller's fd does not end the poll.
type pollEntry struct {
	fd   int // the fd as armed (for PollFDs)
	held int // the duplicate polled
	ud   uint64
}

// queueRing models one queue's io_uring: SQEs are executed at Submit on the
// calling thread (as ublk's I/O commands run inline at issue), CQEs are
// posted by the "kernel" from any goroutine, and POLL_ADD is served with
// poll(2) on the real files while Submit waits; POLL_REMOVE cancels an
// armed poll by user_data.
type queueRing struct {
	k       *Kernel
	proc    *Process
	q       *fqueue
	notify  int // eventfd the kernel side writes when it posts a CQE
	entries int
	closed  bool

	sq     []sqEntry // queue thread only
	cq     []cqEntry // under k.mu
	cqHead int
	cqLen  int
	polls  []pollEntry // armed POLL_ADDs, under k.mu
	pfds   []unix.PollFd
	one    [8]byte
	sink   [8]byte
}

func (r *queueRing) PrepIO(op uint32, cmd uapi.IOCmd, ud uint64) bool {
	if len(r.sq) == r.entries {
		return false
	}
	r.sq = append(r.sq, sqEntry{kind: sqIO, op: op, cmd: cmd, ud: ud})
	return true
}

func (r *queueRing) PrepPollAdd(fd int, ud uint64) bool {
	if len(r.sq) == r.entries {
		return false
	}
	r.sq = append(r.sq, sqEntry{kind: sqPollAdd, fd: fd, ud: ud})
	return true
}

func (r *queueRing) PrepPollRemove(target, ud uint64) bool {
	if len(r.sq) == r.entries {
		return false
	}
	r.sq = append(r.sq, sqEntry{kind: sqPollRemove, target: target, ud: ud})
	return true
}

// post appends a CQE and wakes the ring's waiter. k.mu held.
func (r *queueRing) post(ud uint64, res int32) {
	if r.cqLen == len(r.cq) {
		r.k.violate("queue %d: CQ overflow", r.q.id)
		return
	}
	r.cq[(r.cqHead+r.cqLen)%len(r.cq)] = cqEntry{ud: ud, res: res}
	r.cqLen++
	r.wake()
}

func (r *queueRing) wake() { _, _ = unix.Write(r.notify, r.one[:]) }

func (r *queueRing) Peek() (uint64, int32, bool) {
	r.k.mu.Lock()
	defer r.k.mu.Unlock()
	if r.cqLen == 0 {
		return 0, 0, false
	}
	c := r.cq[r.cqHead]
	r.cqHead = (r.cqHead + 1) % len(r.cq)
	r.cqLen--
	return c.ud, c.res, true
}

func (r *queueRing) Desc(tag uint16) uapi.IODesc { return r.q.descs[tag] }

// Submit executes the queued SQEs and, with wait, sleeps in poll(2) until
// a CQE is posted or an armed fd becomes readable.
func (r *queueRing) Submit(wait bool) error {
	return r.submit(wait, -1)
}

// SubmitTimeout is Submit(true) bounded by d (rounded up to milliseconds).
func (r *queueRing) SubmitTimeout(d time.Duration) error {
	return r.submit(true, max(d, 0))
}

// submit runs the SQEs and waits while wait is set and the CQ is empty, at
// most d when d >= 0.
func (r *queueRing) submit(wait bool, d time.Duration) error {
	k := r.k
	var end time.Time
	if d >= 0 {
		end = time.Now().Add(d)
	}
	k.mu.Lock()
	if r.proc.dead || r.closed {
		k.mu.Unlock()
		return ErrKilled
	}
	tid := unix.Gettid()
	for i := range r.sq {
		e := &r.sq[i]
		switch e.kind {
		case sqPollAdd:
			r.pollAdd(e)
		case sqPollRemove:
			r.pollRemove(e)
		default:
			k.ioCmd(r, tid, e)
		}
	}
	r.sq = r.sq[:0]
	for wait && r.cqLen == 0 {
		timeout := -1
		if d >= 0 {
			left := time.Until(end)
			if left <= 0 {
				break
			}
			ms := left / time.Millisecond
			if left%time.Millisecond != 0 {
				ms++ // never wake before the bound
			}
			timeout = int(min(ms, maxPollMillis))
		}
		r.pfds = append(r.pfds[:0], unix.PollFd{Fd: int32(r.notify), Events: unix.POLLIN})
		for _, p := range r.polls {
			r.pfds = append(r.pfds, unix.PollFd{Fd: int32(p.held), Events: unix.POLLIN})
		}
		k.mu.Unlock()
		_, err := unix.Poll(r.pfds, timeout)
		k.mu.Lock()
		if err != nil && err != unix.EINTR {
			k.mu.Unlock()
			return err
		}
		if r.proc.dead || r.closed {
			k.mu.Unlock()
			return ErrKilled
		}
		if r.pfds[0].Revents != 0 {
			_, _ = unix.Read(r.notify, r.sink[:])
		}
		// Fire readable polls (one-shot) in arming order; pfds[i+1] is
		// polls[i]. Polls armed meanwhile are not in pfds: keep them.
		n := len(r.pfds) - 1
		kept := r.polls[:0]
		for i, p := range r.polls {
			if i < n && r.pfds[i+1].Revents != 0 {
				_ = unix.Close(p.held)
				r.post(p.ud, int32(r.pfds[i+1].Revents))
			} else {
				kept = append(kept, p)
			}
		}
		if len(kept) != len(r.polls) {
			k.broadcast()
		}
		r.polls = kept
	}
	k.mu.Unlock()
	return nil
}

// WaitPolls waits until cond holds for the fds armed with POLL_ADD on queue
// q of device id (as the server armed them, the queue's own eventfd
// included; empty while the queue has no ring). Tests use it to see a
// server's poll set change.
func (k *Kernel) WaitPolls(ctx context.Context, id uint32, q uint16, cond func(fds []int) bool) error {
	var fds []int
	return k.waitFor(ctx, func() bool {
		fds = fds[:0]
		if d, ok := k.devs[id]; ok && int(q) < len(d.queues) && d.queues[q].ring != nil {
			for _, p := range d.queues[q].ring.polls {
				fds = append(fds, p.fd)
			}
		}
		return cond(fds)
	})
}

// maxPollMillis bounds one poll(2) timeout (an int32 of milliseconds).
const maxPollMillis = 1 << 30

// pollAdd arms a poll, holding the file as io_uring does: an fd that is not
// open fails at once with -EBADF. k.mu held.
func (r *queueRing) pollAdd(e *sqEntry) {
	held, err := unix.FcntlInt(uintptr(e.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		r.post(e.ud, -int32(errnoOf(err)))
		return
	}
	r.polls = append(r.polls, pollEntry{fd: e.fd, held: held, ud: e.ud})
	r.k.broadcast()
}

// pollRemove cancels the armed poll with user_data e.target: the poll
// completes with -ECANCELED and lets its file go, the remove with 0;
// -ENOENT when no such poll is armed (it completed already). k.mu held.
func (r *queueRing) pollRemove(e *sqEntry) {
	i := slices.IndexFunc(r.polls, func(p pollEntry) bool { return p.ud == e.target })
	if i < 0 {
		r.post(e.ud, -int32(unix.ENOENT))
		return
	}
	_ = unix.Close(r.polls[i].held)
	r.polls = slices.Delete(r.polls, i, i+1)
	r.post(e.target, -int32(unix.ECANCELED))
	r.post(e.ud, 0)
	r.k.broadcast()
}

func errnoOf(err error) unix.Errno {
	if en, ok := err.(unix.Errno); ok {
		return en
	}
	return unix.EIO
}

// ioCmd executes FETCH_REQ / COMMIT_AND_FETCH_REQ (ublk_ch_uring_cmd).
// k.mu held.
func (k *Kernel) ioCmd(r *queueRing, tid int, e *sqEntry) {
	q := r.q
	d := q.dev
	op, ok := uapi.IOOpOf(e.op)
	switch {
	case !ok || (uapi.IsIoctlEncoded(e.op) && k.cfg.Kernel61) || (!uapi.IsIoctlEncoded(e.op) && k.cfg.NoLegacyOpcodes):
		r.post(e.ud, -int32(unix.EINVAL))
		return
	case e.cmd.QueueID != q.id || int(e.cmd.Tag) >= len(q.tags):
		k.violate("queue %d: command for q %d tag %d", q.id, e.cmd.QueueID, e.cmd.Tag)
		r.post(e.ud, -int32(unix.EINVAL))
		return
	case q.tid != 0 && q.tid != tid:
		// Rule 1 (§1.6): one thread per queue issues every command.
		k.violate("queue %d: %v from thread %d, queue daemon is %d", q.id, op, tid, q.tid)
		r.post(e.ud, -int32(unix.EINVAL))
		return
	}
	tag := int(e.cmd.Tag)
	t := &q.tags[tag]
	if e.cmd.Addr != bufAddr(q.bufs[tag]) {
		k.violate("queue %d tag %d: buffer address %#x is not the tag's buffer", q.id, tag, e.cmd.Addr)
		r.post(e.ud, -int32(unix.EINVAL))
		return
	}
	switch op {
	case uapi.IOFetchReq:
		if q.ready() || t.state != tagIdle {
			k.violate("queue %d tag %d: FETCH on a fetched tag", q.id, tag)
			r.post(e.ud, -int32(unix.EBUSY))
			return
		}
		if q.fetched == 0 {
			q.tid = tid
		}
		t.state, t.ud = tagArmed, e.ud
		q.fetched++
		if q.ready() {
			k.broadcast()
		}
	case uapi.IOCommitAndFetchReq:
		if t.state != tagOwned {
			k.violate("queue %d tag %d: COMMIT_AND_FETCH for a tag the server does not own (%d)", q.id, tag, t.state)
			r.post(e.ud, -int32(unix.EINVAL))
			return
		}
		k.commit(q, tag, e.cmd.Result)
		t.state, t.ud = tagArmed, e.ud
		if d.stopped {
			t.state = tagDead
			r.post(e.ud, uapi.IOResAbort)
		}
		k.broadcast()
	default:
		r.post(e.ud, -int32(unix.EINVAL))
		return
	}
	k.dispatch(q)
}

// Close releases the ring (and with it the queue's mapping).
func (r *queueRing) Close() error {
	k := r.k
	k.mu.Lock()
	defer k.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	d := r.q.dev
	if r.q.ring == r {
		r.q.ring = nil
		if d.accepting && d.serverPID == r.proc.pid {
			k.serverGone(d)
		}
	}
	k.reap(d)
	k.broadcast()
	// The ring's end cancels its polls and lets their files go.
	for _, p := range r.polls {
		_ = unix.Close(p.held)
	}
	r.polls = r.polls[:0]
	return unix.Close(r.notify)
}

// BlockRequest is a block-layer request sent through a fake device.
type BlockRequest struct {
	Op    uapi.Op
	Flags uapi.IOFlag
	Off   int64
	// Data is read into or written from; for other ops Len gives the size.
	Data  []byte
	Len   int
	Queue int

	res      int32
	progress int
	done     chan struct{}
}

// NewBlockRequest returns a reusable request.
func NewBlockRequest(op uapi.Op, off int64, data []byte) *BlockRequest {
	return &BlockRequest{Op: op, Off: off, Data: data, done: make(chan struct{}, 1)}
}

func (r *BlockRequest) length() int {
	if r.Op == uapi.OpRead || r.Op == uapi.OpWrite {
		return len(r.Data)
	}
	return r.Len
}

func (r *BlockRequest) finish(res int32) {
	r.res = res
	r.done <- struct{}{}
}

// Wait waits for the request's completion: bytes, 0, or -errno.
func (r *BlockRequest) Wait(ctx context.Context) (int32, error) {
	select {
	case <-r.done:
		return r.res, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// Submit queues r on device id's queue r.Queue (modulo the queue count).
// It fails with ErrNoDisk when the device has no disk; on a quiesced
// device the request waits for recovery.
func (k *Kernel) Submit(id uint32, r *BlockRequest) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	d, ok := k.devs[id]
	if !ok {
		return ErrNoDisk
	}
	return k.submitLocked(d, r)
}

func (k *Kernel) submitLocked(d *device, r *BlockRequest) error {
	if !d.disk {
		return ErrNoDisk
	}
	r.progress = 0
	if d.state == uapi.StateFailIO {
		r.finish(-int32(unix.EIO))
		return nil
	}
	q := d.queues[r.Queue%len(d.queues)]
	q.pending = append(q.pending, r)
	k.dispatch(q)
	return nil
}

// OpenDisk holds device id's disk open, as md or a mount would, until
// release is called. DEL_DEV waits for it; DEL_DEV_ASYNC does not.
func (k *Kernel) OpenDisk(id uint32) (release func(), err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	d, ok := k.devs[id]
	if !ok || !d.disk {
		return nil, ErrNoDisk
	}
	d.openers++
	var once bool
	return func() {
		k.mu.Lock()
		defer k.mu.Unlock()
		if once {
			return
		}
		once = true
		d.openers--
		k.reap(d)
		k.broadcast()
	}, nil
}

// Do submits r and waits for its result.
func (k *Kernel) Do(ctx context.Context, id uint32, r *BlockRequest) (int32, error) {
	if err := k.Submit(id, r); err != nil {
		return 0, err
	}
	return r.Wait(ctx)
}
