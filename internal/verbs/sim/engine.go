package sim

import (
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
)

// The RC requester engine. Each send work request moves through phases:
//
//	wire ──attempt ok──► flight ──arrives──► done (executed, response on its way)
//	  ▲  attempt lost      │ responder gone        │
//	  └────────────────────┘ or link closed        └─► completed at ackAt (head only)
//	                       └─► rnr (no receive posted) ──PostRecv──► done
//
// Attempts happen at firstTry + k·AckTimeout for k = 0..RetryCount; an
// attempt succeeds when the link is up, not blackholed, the peer QP is in
// RTS and the seeded loss draw spares it. When every attempt failed the
// head completes with StatusRetryExcErr at firstTry + (RetryCount+1)·
// AckTimeout (verbs.RetryBudget) and the QP flushes the rest.
//
// Ordering (RC): a request is first transmitted only after its predecessor
// was; the responder executes requests in order and stops at the first
// one that failed; completions are generated strictly from the head of
// the send queue. With zero latency and no loss everything happens inside
// the call that caused it.

type phase uint8

const (
	phaseWire   phase = iota // waiting for a transmission attempt at nextTry
	phaseFlight              // transmitted; reaches the responder at arriveAt
	phaseRNR                 // the responder had no receive posted
	phaseDone                // executed or failed; the requester learns it at ackAt
)

// sendEntry is one outstanding send work request of a QP.
type sendEntry struct {
	wr       verbs.SendWR
	postedAt time.Time
	firstTry time.Time // first transmission attempt, base of the retry budget
	nextTry  time.Time // next attempt (phaseWire); the failure time once exhausted
	sentAt   time.Time
	arriveAt time.Time
	execAt   time.Time
	ackAt    time.Time
	rnrAt    time.Time // first RNR NAK
	tries    int       // failed attempts
	started  bool      // firstTry is set
	applied  bool      // the responder executed it; a retransmission only fetches the response
	local    bool      // failed locally; no response to wait for
	phase    phase
	status   verbs.Status
	byteLen  uint32
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// earliest folds t into due (zero means none) if t is in the future.
func earliest(due, t, now time.Time) time.Time {
	if !t.After(now) {
		return due
	}
	if due.IsZero() || t.Before(due) {
		return t
	}
	return due
}

// pathOpen reports whether a request sent now reaches a responder that
// answers.
func (c *Conn) pathOpen() bool {
	return c.link.open() && c.peer != nil && c.peer.state == qpReady && !c.port.down && !c.peer.port.down
}

// progress advances the send queue to time now and arms the QP's timer for
// its next due event. Caller holds the fabric lock.
func (c *Conn) progress(now time.Time) {
	if c.state != qpReady {
		return
	}
	var due time.Time
	gateTx, gateExec := true, true
	var prevSentAt, prevExecAt time.Time
	for i := 0; i < c.sq.len(); {
		e := c.sq.at(i)
		if e.phase == phaseWire {
			if !e.started {
				if !gateTx {
					break
				}
				e.started = true
				e.firstTry = later(e.postedAt, prevSentAt)
				e.nextTry = e.firstTry
			}
			c.transmit(e, now)
		}
		if e.phase == phaseFlight && !e.arriveAt.After(now) {
			switch {
			case !c.pathOpen():
				c.missed(e, now)
			case e.applied:
				e.phase = phaseDone
				e.ackAt = e.arriveAt.Add(c.link.latency)
			case gateExec:
				c.execute(e, later(e.arriveAt, prevExecAt))
			}
		}
		if e.phase == phaseRNR && gateExec {
			switch {
			case !c.pathOpen():
				// RNR retries go unanswered now: transport retries take over.
				e.phase = phaseWire
				e.firstTry = now
				e.tries = 1
				e.nextTry = now.Add(c.ackTimeout)
			case c.peer.rq.len() > 0:
				c.execute(e, now)
			}
		}
		if i == 0 {
			if e.phase == phaseDone && !e.ackAt.After(now) {
				if e.local || c.link.open() {
					if !c.finish(e) {
						return
					}
					continue
				}
				// The response was lost: retransmit to fetch it.
				c.missed(e, now)
			}
			if e.phase == phaseWire && e.tries > c.retryCount && !e.nextTry.After(now) {
				e.status = verbs.StatusRetryExcErr
				c.finish(e)
				return
			}
			if e.phase == phaseRNR && c.rnrRetry != rnrInfinite && !c.rnrDeadline(e).After(now) {
				e.status = verbs.StatusRNRRetryExcErr
				c.finish(e)
				return
			}
		}
		switch e.phase {
		case phaseWire:
			due = earliest(due, e.nextTry, now)
		case phaseFlight:
			due = earliest(due, e.arriveAt, now)
		case phaseRNR:
			if c.rnrRetry != rnrInfinite {
				due = earliest(due, c.rnrDeadline(e), now)
			}
		case phaseDone:
			due = earliest(due, e.ackAt, now)
		}
		if e.phase == phaseWire || e.local {
			gateTx = false
		} else {
			prevSentAt = e.sentAt
		}
		if e.applied && e.status == verbs.StatusSuccess {
			prevExecAt = e.execAt
		} else {
			gateExec = false
		}
		i++
	}
	if !due.IsZero() {
		c.arm(now, due)
	}
}

func (c *Conn) rnrDeadline(e *sendEntry) time.Time {
	return e.rnrAt.Add(time.Duration(c.rnrRetry) * c.f.cfg.RNRTimer)
}

// transmit makes every attempt of e that is due by now.
func (c *Conn) transmit(e *sendEntry, now time.Time) {
	for e.phase == phaseWire && e.tries <= c.retryCount && !e.nextTry.After(now) {
		if c.pathOpen() && !c.f.lose(c.link) {
			e.phase = phaseFlight
			e.sentAt = e.nextTry
			e.arriveAt = e.sentAt.Add(c.link.latency)
			return
		}
		e.tries++
		e.nextTry = e.firstTry.Add(time.Duration(e.tries) * c.ackTimeout)
	}
}

// missed handles an attempt that reached nobody (dropped in flight, or its
// response lost): the next attempt comes one ACK timeout after it.
func (c *Conn) missed(e *sendEntry, now time.Time) {
	e.phase = phaseWire
	e.tries++
	e.nextTry = e.firstTry.Add(time.Duration(e.tries) * c.ackTimeout)
	c.transmit(e, now)
}

// execute runs e at the responder at time at.
func (c *Conn) execute(e *sendEntry, at time.Time) {
	p := c.peer
	var local sgl
	sges := e.wr.SGE[:e.wr.NumSGE]
	switch e.wr.Op {
	case verbs.OpSend:
		if !c.dev.resolveLocal(sges, 0, &local) {
			c.localErr(e, at)
			return
		}
		if p.rq.len() == 0 {
			if e.phase != phaseRNR {
				e.phase = phaseRNR
				e.rnrAt = at
			}
			return
		}
		rwr := p.rq.at(0)
		var dst sgl
		size := local.size()
		switch {
		case !p.dev.resolveLocal(rwr.SGE[:rwr.NumSGE], verbs.AccessLocalWrite, &dst):
			p.recvError(verbs.StatusLocProtErr)
			c.done(e, at, verbs.StatusRemOpErr, 0)
		case size > dst.size():
			p.recvError(verbs.StatusLocLenErr)
			c.done(e, at, verbs.StatusRemInvReqErr, 0)
		default:
			copySGL(&dst, &local)
			id := rwr.ID
			p.rq.pop()
			p.pushCQE(verbs.Completion{ID: id, Op: verbs.CompRecv, ByteLen: uint32(size)})
			c.done(e, at, verbs.StatusSuccess, uint32(size))
		}
	case verbs.OpRDMAWrite:
		if !c.dev.resolveLocal(sges, 0, &local) {
			c.localErr(e, at)
			return
		}
		size := local.size()
		if size == 0 {
			// IBTA C9-88: the R_Key of a zero-length RDMA operation is not
			// validated; the heartbeat only needs the ACK.
			c.done(e, at, verbs.StatusSuccess, 0)
			return
		}
		b, ok := p.dev.resolveRemote(e.wr.RemoteAddr, e.wr.RKey, uint32(size), verbs.AccessRemoteWrite)
		if !ok {
			c.done(e, at, verbs.StatusRemAccessErr, 0)
			return
		}
		var dst sgl
		dst.seg[0], dst.n = b, 1
		copySGL(&dst, &local)
		c.done(e, at, verbs.StatusSuccess, uint32(size))
	case verbs.OpRDMARead:
		if !c.dev.resolveLocal(sges, verbs.AccessLocalWrite, &local) {
			c.localErr(e, at)
			return
		}
		size := local.size()
		if size == 0 {
			c.done(e, at, verbs.StatusSuccess, 0)
			return
		}
		// The responder QP grants remote reads only with responder
		// resources (cm_init_qp_init_attr).
		b, ok := p.dev.resolveRemote(e.wr.RemoteAddr, e.wr.RKey, uint32(size), verbs.AccessRemoteRead)
		if !ok || !p.remoteRead {
			c.done(e, at, verbs.StatusRemAccessErr, 0)
			return
		}
		var src sgl
		src.seg[0], src.n = b, 1
		copySGL(&local, &src)
		c.done(e, at, verbs.StatusSuccess, uint32(size))
	}
}

// done records the responder's outcome of e; the requester sees it one
// latency later.
func (c *Conn) done(e *sendEntry, at time.Time, st verbs.Status, n uint32) {
	e.phase = phaseDone
	e.applied = true
	e.execAt = at
	e.ackAt = at.Add(c.link.latency)
	e.status = st
	e.byteLen = n
}

// localErr fails e on the requester (bad lkey, range or access).
func (c *Conn) localErr(e *sendEntry, at time.Time) {
	e.phase = phaseDone
	e.local = true
	e.execAt = at
	e.ackAt = at
	e.status = verbs.StatusLocProtErr
}

// recvError completes the head receive with st and moves the QP to ERR,
// as a responder does on a receive it cannot place.
func (c *Conn) recvError(st verbs.Status) {
	c.pushCQE(verbs.Completion{ID: c.rq.at(0).ID, Status: st, Op: verbs.CompRecv})
	c.rq.pop()
	c.toError()
}

// finish completes the head entry with its status and reports whether the
// QP is still usable (an error completion moves it to ERR and flushes the
// rest).
func (c *Conn) finish(e *sendEntry) bool {
	st := e.status
	if e.wr.Signaled || st != verbs.StatusSuccess {
		wc := verbs.Completion{ID: e.wr.ID, Status: st, Op: compOp(e.wr.Op)}
		if st == verbs.StatusSuccess {
			wc.ByteLen = e.byteLen
		}
		c.pushCQE(wc)
	} else {
		c.sqUsed--
	}
	c.sq.pop()
	if st != verbs.StatusSuccess {
		c.toError()
		return false
	}
	return true
}
