package paths

import "time"

// ublkQueue is the per-queue state of the ublk adapter, kept in
// ublk.Queue.SetHandlerData. Queue thread only.
//
// It mirrors the channels of the queue's current path table (not the
// draining ones: those were forced into the error state, their commands
// come back as flushed Results on the next Poll, and their fds may already
// be closed and their numbers reused) as the fd set ublk watches, and
// changes gen whenever that channel set changes. ublk then removes every
// armed poll and arms the new set, so the poll of a channel that left the
// table no longer holds its completion channel open.
type ublkQueue struct {
	q *Queue
	// tab is the table chans were taken from; a new table is compared
	// channel by channel, so a change that keeps the channels (a path
	// blocked, a policy change) costs no re-arm.
	tab   *table
	chans [MaxPaths]Channel
	gen   uint64
	fds   []int // PollFDs' result, reused (capacity MaxPaths)
}

func newUblkQueue(q *Queue) *ublkQueue {
	uq := &ublkQueue{q: q, fds: make([]int, 0, MaxPaths)}
	uq.sync()
	return uq
}

// sync adopts the latest published table's channels for this queue and
// bumps gen when they differ from the ones adopted before. It does not
// allocate.
func (uq *ublkQueue) sync() {
	t := uq.q.d.tab.Load()
	if t == uq.tab {
		return
	}
	uq.tab = t
	changed := false
	for i := range MaxPaths {
		var ch Channel
		if v := &t.paths[i]; v.present && uq.q.idx < len(v.chans) {
			ch = v.chans[uq.q.idx]
		}
		if uq.chans[i] != ch {
			uq.chans[i] = ch
			changed = true
		}
	}
	if changed {
		uq.gen++
	}
}

// pollFDs lists the notification fds of the adopted channels.
func (uq *ublkQueue) pollFDs() []int {
	uq.fds = uq.fds[:0]
	for _, ch := range uq.chans {
		if ch == nil {
			continue
		}
		if fd := ch.NotifyFD(); fd >= 0 {
			uq.fds = append(uq.fds, fd)
		}
	}
	return uq.fds
}

// ackNotify consumes the fired notification of every adopted channel whose
// fd is fd (a verbs completion channel stays readable until its events
// are taken and acknowledged, so its poll would fire again at once).
func (uq *ublkQueue) ackNotify(fd int) {
	for _, ch := range uq.chans {
		if ch != nil && ch.NotifyFD() == fd {
			_ = ch.AckNotify()
		}
	}
}

// timeout is how long the queue thread may sleep before the queue's timed
// work (an I/O timeout, a retry backoff, no_path_retry running out) is due,
// by the device's clock.
func (uq *ublkQueue) timeout() (time.Duration, bool) {
	at, ok := uq.q.NextDeadline()
	if !ok {
		return 0, false
	}
	return at.Sub(uq.q.d.clk.Now()), true
}
