package paths

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/fsm"
	"github.com/srp-mpathd/srp-mpathd/internal/srp"
	"github.com/srp-mpathd/srp-mpathd/internal/srp/scsi"
)

// tagState is where one tag's I/O is.
type tagState uint8

const (
	tagIdle tagState = iota
	// tagInflight: submitted on ch, its Result not seen yet.
	tagInflight
	// tagParked: waiting for a path, a credit or a retry backoff.
	tagParked
)

// Command ids: the tag in the low 16 bits, the tag's submission generation
// above it, so a Result for an older submission of the same tag (a late
// flush of a command already reissued) is recognised and ignored.
const (
	idTagBits = 16
	idTagMask = 1<<idTagBits - 1
)

// pollBatch is how many Results one Channel.Poll call hands out.
const pollBatch = 64

// ewmaShift: the latency EWMA moves 1/8 of the way to each sample (the
// weight TCP's SRTT uses).
const ewmaShift = 3

// never is a deadline that does not come.
var never = time.Unix(0, math.MaxInt64)

type tagSlot struct {
	io    IO
	cmd   srp.Command
	state tagState
	path  int8 // slot of the path the command is in flight on
	ch    Channel
	gen   uint32
	// start is when Start was called; submitted when the current attempt
	// was posted; deadline when it is aborted (or, once aborting, when
	// the abort counts as failed).
	start     time.Time
	submitted time.Time
	deadline  time.Time
	aborting  bool
	// abortReported: the abort timed out and the path was reported.
	abortReported bool
	retries       uint8
	// excl: paths this I/O failed on; avoided while others are usable.
	excl uint32
	// prefer is the path a retry-on-the-same-path wants (-1: none).
	prefer    int8
	parkUntil time.Time
	lastErr   error
	// inc and ctr identify the path the command is in flight on, in case
	// its slot gets another path meanwhile.
	inc uint64
	ctr *pathCounters
}

// pathLocal is a queue's own view of one path's load.
type pathLocal struct {
	inc      uint64
	inflight int
	ewmaNS   int64
}

// Queue is the data path of one ublk queue. Every method runs on that
// queue's thread; none blocks and none allocates per I/O.
type Queue struct {
	d   *Device
	idx int
	cfg QueueConfig

	tags   []tagSlot
	parked []uint16

	tab      *table
	chans    [MaxPaths]Channel
	local    [MaxPaths]pathLocal
	draining []Channel
	results  [pollBatch]srp.Result
	cand     [MaxPaths]uint8
	ext      [1]scsi.Extent
	rr       uint32

	// nextCheck is the earliest in-flight deadline (or never).
	nextCheck time.Time
	// wakeAt publishes NextDeadline (unix ns, 0: none) for the control
	// plane's watchdog, which wakes a queue thread that sleeps without a
	// timeout (ublk's) when its timed work falls due.
	wakeAt atomic.Int64

	ctr queueCounters
}

// queueCounters are per-queue counters readable from any goroutine.
type queueCounters struct {
	started, completed, failed, stale, misuse, parkedNow atomicCounter
}

func newQueue(d *Device, idx int, cfg QueueConfig) *Queue {
	q := &Queue{
		d: d, idx: idx, cfg: cfg,
		tags:      make([]tagSlot, cfg.Depth),
		parked:    make([]uint16, 0, cfg.Depth+1),
		draining:  make([]Channel, 0, 4*MaxPaths),
		nextCheck: never,
	}
	for i := range q.tags {
		q.tags[i].path = -1
		q.tags[i].prefer = -1
	}
	return q
}

// Index is the queue's number.
func (q *Queue) Index() int { return q.idx }

// Start begins serving io. The outcome arrives through the queue's
// CompletionFunc, possibly before Start returns (invalid requests, no path
// with failfast or no_path_retry fail). A tag out of range or still in
// progress is ignored and counted (DeviceStatus.Misuse): completing it
// would complete the request that owns the tag.
func (q *Queue) Start(io IO) {
	if int(io.Tag) >= len(q.tags) {
		q.ctr.misuse.add(1)
		return
	}
	s := &q.tags[io.Tag]
	if s.state != tagIdle {
		q.ctr.misuse.add(1)
		return
	}
	q.ctr.started.add(1)
	now := q.d.clk.Now()
	*s = tagSlot{io: io, start: now, path: -1, prefer: -1, gen: s.gen, cmd: s.cmd}
	if err := q.build(s); err != nil {
		q.complete(s, 0, err)
		return
	}
	q.refresh()
	q.dispatch(s, now)
}

// build fills the tag's command with the CDB and data direction; the
// path-specific parts are set by submit.
func (q *Queue) build(s *tagSlot) error {
	io := &s.io
	bs := int64(q.d.blockSize)
	cmd := &s.cmd
	cmd.Dir, cmd.Len, cmd.Local = srp.DataNone, 0, nil
	if io.Op == OpFlush {
		cmd.CDBLen = scsi.SyncCache(&cmd.CDB, 0, 0, false)
		return nil
	}
	if io.Off < 0 || io.Len <= 0 || io.Off%bs != 0 || int64(io.Len)%bs != 0 {
		return ErrInvalid
	}
	lba := uint64(io.Off / bs)
	blocks := uint64(int64(io.Len) / bs)
	if q.d.blocks != 0 && (lba >= q.d.blocks || blocks > q.d.blocks-lba) {
		return ErrInvalid
	}
	if blocks > math.MaxUint32 {
		return ErrInvalid
	}
	buf := q.tagBuf(io.Tag)
	switch io.Op {
	case OpRead, OpWrite:
		if io.Len > len(buf) {
			return ErrInvalid
		}
		write := io.Op == OpWrite
		cmd.CDBLen = scsi.RW(&cmd.CDB, write, lba, uint32(blocks), write && io.Flags&FlagFUA != 0)
		cmd.Dir, cmd.Len = srp.DataIn, uint32(io.Len)
		if write {
			cmd.Dir = srp.DataOut
			cmd.Local = buf[:io.Len]
		}
	case OpDiscard:
		q.ext[0] = scsi.Extent{LBA: lba, Blocks: uint32(blocks)}
		// The tag's buffer is unused by a discard: it carries the UNMAP
		// parameter list (cap(buf) suffices, so nothing is allocated).
		params := scsi.AppendUnmapParams(buf[:0], q.ext[:])
		cmd.CDBLen = scsi.Unmap(&cmd.CDB, uint16(len(params)), false)
		cmd.Dir, cmd.Len, cmd.Local = srp.DataOut, uint32(len(params)), params
	case OpWriteZeroes:
		if len(buf) < int(bs) {
			return ErrInvalid
		}
		// WRITE SAME with one zeroed block; UNMAP stays clear: only a
		// target reporting LBPRZ would read zeroes back from unmapped
		// blocks.
		clear(buf[:bs])
		cmd.CDBLen = scsi.WriteSame16(&cmd.CDB, lba, uint32(blocks), false)
		cmd.Dir, cmd.Len, cmd.Local = srp.DataOut, uint32(bs), buf[:bs]
	default:
		return ErrInvalid
	}
	return nil
}

func (q *Queue) tagBuf(tag uint16) []byte {
	ts := q.cfg.TagSize
	off := int(tag) * ts
	return q.cfg.Mem[off : off+ts : off+ts]
}

// refresh adopts the latest published table: channels that left it are
// kept for draining until their last Result was collected.
func (q *Queue) refresh() {
	t := q.d.tab.Load()
	if t == q.tab {
		return
	}
	q.tab = t
	for i := range MaxPaths {
		v := &t.paths[i]
		var ch Channel
		if v.present && q.idx < len(v.chans) {
			ch = v.chans[q.idx]
		}
		if old := q.chans[i]; old != nil && old != ch {
			q.draining = append(q.draining, old)
		}
		q.chans[i] = ch
		if v.present && q.local[i].inc != v.inc {
			q.local[i] = pathLocal{inc: v.inc}
		}
	}
}

// dispatch submits s on the best path, or parks it.
func (q *Queue) dispatch(s *tagSlot, now time.Time) {
	var tried uint32
	for range MaxPaths {
		slot := q.pick(s, tried)
		if slot < 0 {
			break
		}
		err := q.submit(s, slot, now)
		if err == nil {
			return
		}
		if err == srp.ErrBadCommand {
			q.complete(s, 0, ErrInvalid)
			return
		}
		// ErrNoCredit, ErrNoTag: the path is full; ErrChannelFailed: it
		// is failing (the control plane will block it). Try another.
		tried |= 1 << uint(slot)
	}
	q.park(s, now)
}

// usableSlot reports whether this queue may submit on slot now.
func (q *Queue) usableSlot(slot int) bool {
	return q.tab.paths[slot].usable && q.chans[slot] != nil
}

// pick chooses a path for s: the retry-same path if it asked for one, else
// the selector's choice among the active group's paths it did not fail on,
// then among other groups', then among any usable path. -1: none.
func (q *Queue) pick(s *tagSlot, tried uint32) int {
	if p := int(s.prefer); p >= 0 && tried&(1<<uint(p)) == 0 && q.usableSlot(p) {
		return p
	}
	avoid := tried | s.excl
	if n := q.candidates(q.tab.active, avoid, 0); n > 0 {
		return q.choose(n)
	}
	if n := q.candidates(q.tab.others, avoid, 0); n > 0 {
		return q.choose(n)
	}
	n := q.candidates(q.tab.active, tried, 0)
	n = q.candidates(q.tab.others, tried, n)
	if n > 0 {
		return q.choose(n)
	}
	return -1
}

func (q *Queue) candidates(slots []uint8, avoid uint32, n int) int {
	for _, sl := range slots {
		if avoid&(1<<sl) == 0 && q.chans[sl] != nil {
			q.cand[n] = sl
			n++
		}
	}
	return n
}

// choose applies the selector to q.cand[:n].
func (q *Queue) choose(n int) int {
	q.rr++
	if n == 1 {
		return int(q.cand[0])
	}
	start := int(q.rr % uint32(n))
	switch q.tab.policy.Selector {
	case SelectRoundRobin:
		return int(q.cand[start])
	case SelectQueueLength:
		best, bestLoad := -1, 0
		for i := range n {
			sl := int(q.cand[(start+i)%n])
			if l := q.local[sl].inflight; best < 0 || l < bestLoad {
				best, bestLoad = sl, l
			}
		}
		return best
	default: // SelectServiceTime
		best := -1
		var bestScore float64
		for i := range n {
			sl := int(q.cand[(start+i)%n])
			score := serviceTime(&q.local[sl])
			if best < 0 || score < bestScore {
				best, bestScore = sl, score
			}
		}
		return best
	}
}

// minServiceNS stands in for the latency of a path without samples yet, so
// that its load still counts.
const minServiceNS = 1000

// serviceTime is the expected time until a new I/O on the path completes:
// latency EWMA × (in-flight + 1).
func serviceTime(l *pathLocal) float64 {
	lat := max(l.ewmaNS, minServiceNS)
	return float64(lat) * float64(l.inflight+1)
}

// submit posts s on path slot.
func (q *Queue) submit(s *tagSlot, slot int, now time.Time) error {
	v := &q.tab.paths[slot]
	ch := q.chans[slot]
	tag := s.io.Tag
	s.gen++
	cmd := &s.cmd
	cmd.ID = uint64(s.gen)<<idTagBits | uint64(tag)
	cmd.LUN = v.lun
	mr := v.mrs[q.idx]
	cmd.Addr = mr.addr + uint64(tag)*uint64(q.cfg.TagSize)
	cmd.RKey, cmd.LKey = mr.rkey, mr.lkey
	if err := ch.Submit(cmd); err != nil {
		return err
	}
	s.state = tagInflight
	s.path = int8(slot)
	s.ch = ch
	s.inc, s.ctr = v.inc, v.ctr
	s.submitted = now
	s.aborting, s.abortReported = false, false
	s.deadline = now.Add(q.tab.policy.IOTimeout)
	if s.deadline.Before(q.nextCheck) {
		q.nextCheck = s.deadline
		q.wakeAt.Store(s.deadline.UnixNano())
	}
	q.local[slot].inflight++
	v.ctr.inflight.Add(1)
	return nil
}

// park keeps s until a path is usable (or a backoff ends), or fails it at
// once when it must not wait.
func (q *Queue) park(s *tagSlot, now time.Time) {
	if !q.tab.anyUsable() && !q.mayWait(s, now) {
		q.complete(s, 0, ErrNoPath)
		return
	}
	if s.state != tagParked {
		s.state = tagParked
		q.parked = append(q.parked, s.io.Tag)
		q.ctr.parkedNow.add(1)
	}
	q.publishDeadline()
}

// publishDeadline stores NextDeadline for the watchdog.
func (q *Queue) publishDeadline() {
	var ns int64
	if at, ok := q.NextDeadline(); ok {
		ns = at.UnixNano()
	}
	q.wakeAt.Store(ns)
}

// mayWait applies failfast and no_path_retry to an I/O with no usable path.
func (q *Queue) mayWait(s *tagSlot, now time.Time) bool {
	if s.io.Flags&FlagFailFast != 0 || q.tab.noWait {
		return false
	}
	npr := q.tab.policy.NoPathRetry
	switch {
	case npr == NoPathQueue:
		return true
	case npr < 0:
		return false
	}
	since := q.tab.noPathSince
	return since.IsZero() || now.Sub(since) < time.Duration(npr)
}

// Poll collects the results of every channel of this queue, completes or
// reissues their I/O, retries parked I/O, and aborts I/O past its
// deadline. It returns how many I/O completed.
func (q *Queue) Poll() int {
	done := q.ctr.completed.load() + q.ctr.failed.load()
	q.refresh()
	now := q.d.clk.Now()
	for sl := range MaxPaths {
		if ch := q.chans[sl]; ch != nil {
			q.pollChannel(ch, now)
		}
	}
	for i := 0; i < len(q.draining); {
		ch := q.draining[i]
		q.pollChannel(ch, now)
		if ch.Outstanding() == 0 {
			last := len(q.draining) - 1
			q.draining[i] = q.draining[last]
			q.draining[last] = nil
			q.draining = q.draining[:last]
			continue
		}
		i++
	}
	if len(q.parked) > 0 {
		q.retryParked(now)
	}
	if !now.Before(q.nextCheck) {
		q.checkDeadlines(now)
	}
	q.publishDeadline()
	return int(q.ctr.completed.load() + q.ctr.failed.load() - done)
}

func (q *Queue) pollChannel(ch Channel, now time.Time) {
	for {
		n := ch.Poll(q.results[:])
		for i := range n {
			q.result(&q.results[i], now)
		}
		if n < len(q.results) {
			return
		}
	}
}

// result handles one Result.
func (q *Queue) result(r *srp.Result, now time.Time) {
	tag := int(r.ID & idTagMask)
	if tag >= len(q.tags) {
		q.ctr.stale.add(1)
		return
	}
	s := &q.tags[tag]
	if s.state != tagInflight || s.gen != uint32(r.ID>>idTagBits) {
		q.ctr.stale.add(1)
		return
	}
	slot := int(s.path)
	ctr := s.ctr
	ctr.inflight.Add(-1)
	l := &q.local[slot]
	var scratch pathLocal
	if l.inc != s.inc {
		// The slot holds another path by now: the sample belongs to
		// nobody this queue still selects.
		l = &scratch
	}
	l.inflight--
	s.state, s.ch, s.path, s.ctr = tagIdle, nil, -1, nil
	if r.Err != nil {
		if r.Err == srp.ErrAborted {
			// Our abort after the I/O timeout: a retry, elsewhere.
			s.retries++
			s.lastErr = ErrIO
		}
		ctr.reissued.Add(1)
		s.excl |= 1 << uint(slot)
		s.prefer = -1
		q.retry(s, now)
		return
	}
	lat := now.Sub(s.submitted).Nanoseconds()
	if l.ewmaNS == 0 {
		l.ewmaNS = lat
	} else {
		l.ewmaNS += (lat - l.ewmaNS) >> ewmaShift
	}
	ctr.latencyNS.Store(l.ewmaNS)
	d := scsi.Classify(scsi.Status(r.Status), r.Sense[:min(r.SenseLen, len(r.Sense))])
	switch d.Action {
	case scsi.ActionOK:
		ctr.completions.Add(1)
		n := 0
		if s.io.Op == OpRead || s.io.Op == OpWrite {
			n = s.io.Len
			if r.Residual > 0 && r.Residual <= int64(n) {
				n -= int(r.Residual)
			}
		}
		q.complete(s, n, nil)
	case scsi.ActionRetrySamePath:
		ctr.retries.Add(1)
		s.retries++
		s.lastErr = classErr(d.Class)
		s.prefer = int8(slot)
		if d.Backoff {
			s.parkUntil = now.Add(q.tab.policy.RetryBackoff)
			if s.retries > uint8(q.tab.policy.MaxRetries) {
				q.complete(s, 0, s.lastErr)
				return
			}
			q.park(s, now)
			return
		}
		q.retry(s, now)
	case scsi.ActionRetryOtherPath:
		ctr.errors.Add(1)
		s.retries++
		s.lastErr = classErr(d.Class)
		s.excl |= 1 << uint(slot)
		s.prefer = -1
		q.retry(s, now)
	default:
		ctr.errors.Add(1)
		q.complete(s, 0, classErr(d.Class))
	}
}

// retry reissues s unless its retries are used up.
func (q *Queue) retry(s *tagSlot, now time.Time) {
	if s.retries > uint8(q.tab.policy.MaxRetries) {
		q.complete(s, 0, s.lastErr)
		return
	}
	q.dispatch(s, now)
}

// retryParked resubmits parked I/O whose backoff ended, and fails the ones
// that may wait no longer.
func (q *Queue) retryParked(now time.Time) {
	kept := q.parked[:0]
	n := len(q.parked)
	for i := range n {
		tag := q.parked[i]
		s := &q.tags[tag]
		if now.Before(s.parkUntil) {
			kept = append(kept, tag)
			continue
		}
		if !q.tab.anyUsable() {
			if q.mayWait(s, now) {
				kept = append(kept, tag)
				continue
			}
			q.ctr.parkedNow.add(-1)
			s.state = tagIdle
			q.complete(s, 0, ErrNoPath)
			continue
		}
		q.ctr.parkedNow.add(-1)
		s.state = tagIdle
		q.dispatch(s, now)
		if s.state == tagParked {
			// dispatch parked it again and appended it past n; keep it
			// once (park counted it in parkedNow already).
			q.parked = q.parked[:len(q.parked)-1]
			kept = append(kept, tag)
		}
	}
	// Parks appended during the loop (none remain: see above) would sit
	// past n; kept never overtakes the read index.
	q.parked = kept
}

// checkDeadlines aborts attempts past the I/O timeout and reports paths
// whose abort went unanswered.
func (q *Queue) checkDeadlines(now time.Time) {
	next := never
	pol := &q.tab.policy
	for i := range q.tags {
		s := &q.tags[i]
		if s.state != tagInflight {
			continue
		}
		if !now.Before(s.deadline) {
			switch {
			case !s.aborting:
				s.aborting = true
				s.deadline = now.Add(pol.AbortTimeout)
				s.ctr.aborts.Add(1)
				switch err := s.ch.Abort(s.cmd.ID); err {
				case nil, srp.ErrNotOutstanding, srp.ErrChannelFailed:
					// The outcome (or a flush) arrives through Poll.
				default:
					// No task management slot or credit: as good as
					// an abort that failed.
					q.d.report(int(s.path), s.inc, fsm.AbortFailed)
					s.abortReported = true
				}
			case !s.abortReported:
				s.abortReported = true
				q.d.report(int(s.path), s.inc, fsm.AbortFailed)
			}
			if s.abortReported {
				continue
			}
		}
		if s.deadline.Before(next) {
			next = s.deadline
		}
	}
	q.nextCheck = next
}

// complete ends s and hands the outcome to the queue's CompletionFunc.
func (q *Queue) complete(s *tagSlot, n int, err error) {
	s.state = tagIdle
	s.ch = nil
	if err != nil {
		q.ctr.failed.add(1)
	} else {
		q.ctr.completed.add(1)
	}
	q.cfg.Complete(s.io.Tag, n, err)
}

// NextDeadline is when Poll has timed work to do next (an abort, a retry
// backoff ending, no_path_retry running out), for a queue thread that
// sleeps with a timeout. false: nothing is timed.
func (q *Queue) NextDeadline() (time.Time, bool) {
	next := q.nextCheck
	for _, tag := range q.parked {
		s := &q.tags[tag]
		if s.parkUntil.After(time.Time{}) && s.parkUntil.Before(next) {
			next = s.parkUntil
		}
	}
	if len(q.parked) > 0 && q.tab != nil && q.tab.policy.NoPathRetry > 0 && !q.tab.noPathSince.IsZero() {
		if at := q.tab.noPathSince.Add(time.Duration(q.tab.policy.NoPathRetry)); at.Before(next) {
			next = at
		}
	}
	return next, next != never
}

// ArmNotify consumes the fired notifications of every channel of the queue
// and arms the next one. Poll once more after it before sleeping. Without
// the consume step a completion fd that fired once stays readable, and a
// thread sleeping on it (ublk's POLL_ADD) would spin. The ublk adapter's
// PollReady also consumes the fd that fired; consuming here as well keeps
// the guarantee independent of the order in which the queue thread sees
// the poll and the completion (it costs one non-blocking read per channel
// per loop: a candidate for removal once measured).
func (q *Queue) ArmNotify() {
	q.refresh()
	for _, ch := range q.chans {
		if ch != nil {
			_ = ch.AckNotify()
			_ = ch.ArmNotify()
		}
	}
	for _, ch := range q.draining {
		_ = ch.AckNotify()
		_ = ch.ArmNotify()
	}
}

// Channels appends the queue's channels (current and draining) to dst: a
// queue thread sleeps on their Ready channels or notification fds.
func (q *Queue) Channels(dst []Channel) []Channel {
	q.refresh()
	for _, ch := range q.chans {
		if ch != nil {
			dst = append(dst, ch)
		}
	}
	return append(dst, q.draining...)
}

// Busy is the number of tags in progress (in flight or parked).
func (q *Queue) Busy() int {
	return int(q.ctr.started.load() - q.ctr.completed.load() - q.ctr.failed.load())
}

// classErr maps a SCSI error class to the I/O sentinel.
func classErr(c scsi.ErrorClass) error {
	switch c {
	case scsi.ClassTarget:
		return ErrTarget
	case scsi.ClassMedium:
		return ErrMedium
	case scsi.ClassProtection:
		return ErrProtection
	case scsi.ClassNoSpace:
		return ErrNoSpace
	case scsi.ClassReservation:
		return ErrReservation
	}
	return ErrIO
}
