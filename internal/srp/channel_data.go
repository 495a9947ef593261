package srp

import (
	"fmt"

	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
)

// Submit posts cmd as an SRP_CMD. It never blocks and does not allocate. On
// ErrNoCredit, ErrNoTag, ErrChannelFailed or ErrBadCommand nothing was posted.
// Credit rule (research §2.3): a command needs req_lim > 1, the last credit is
// kept for task management.
func (c *Channel) Submit(cmd *Command) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failedFlag.Load() || c.closed {
		return ErrChannelFailed
	}
	if cmd.CDBLen < 1 || cmd.CDBLen > len(cmd.CDB) {
		return ErrBadCommand
	}
	if cmd.Dir > DataOut || (cmd.Dir != DataNone && cmd.Len == 0) {
		return ErrBadCommand
	}
	if len(c.free) == 0 {
		return ErrNoTag
	}
	if c.reqLim <= 1 {
		c.noCredit++
		return ErrNoCredit
	}
	idx := int(c.free[len(c.free)-1])
	s := &c.tags[idx]
	s.gen++
	s.tag = makeTag(idx, s.gen)

	iu := c.txIU(idx)
	m := &c.cmd
	m.Tag = s.tag
	m.LUN = LUNFromInt(cmd.LUN)
	m.CDB = cmd.CDB[:cmd.CDBLen]
	m.DataOut = DataDesc{}
	m.DataIn = DataDesc{}
	wr := &c.sendWR
	*wr = verbs.SendWR{ID: wrID(wrCmd, uint64(idx)), Op: verbs.OpSend, Signaled: true, NumSGE: 1}
	var n int
	var err error
	switch {
	case cmd.Dir == DataOut && c.useImmediate(cmd):
		m.DataOut = DataDesc{Format: DescImm, ImmLen: cmd.Len}
		if cmd.LKey != 0 {
			n, err = m.EncodeImm(iu, c.immOffset, nil)
			wr.SGE[1] = verbs.SGE{Addr: cmd.Addr, Length: cmd.Len, LKey: cmd.LKey}
			wr.NumSGE = 2
		} else {
			n, err = m.EncodeImm(iu, c.immOffset, cmd.Local[:cmd.Len])
		}
	case cmd.Dir == DataOut:
		m.DataOut = DataDesc{Format: DescDirect, Direct: DirectBuf{Addr: cmd.Addr, Key: cmd.RKey, Len: cmd.Len}}
		n, err = m.Encode(iu)
	case cmd.Dir == DataIn:
		m.DataIn = DataDesc{Format: DescDirect, Direct: DirectBuf{Addr: cmd.Addr, Key: cmd.RKey, Len: cmd.Len}}
		n, err = m.Encode(iu)
	default:
		n, err = m.Encode(iu)
	}
	m.CDB = nil
	if err != nil {
		return ErrBadCommand
	}
	wr.SGE[0] = verbs.SGE{Addr: c.txAddr(idx), Length: uint32(n), LKey: c.txBuf.LKey()}
	if err := c.conn.PostSend(wr); err != nil {
		s.gen-- // the tag was never seen by the target
		c.failLocked("post send", err)
		return ErrChannelFailed
	}
	c.reqLim--
	c.free = c.free[:len(c.free)-1]
	*s = tagSlot{tag: s.tag, gen: s.gen, id: cmd.ID, lun: cmd.LUN, dir: cmd.Dir, inUse: true,
		sendPending: true, awaitingRsp: true, aborting: -1, stale: s.stale, staleValid: s.staleValid}
	c.outstanding++
	return nil
}

// useImmediate tells whether a write goes as immediate data: negotiated, and
// header plus data fit the target's largest IU (ib_srp's rule).
func (c *Channel) useImmediate(cmd *Command) bool {
	if !c.immediate || c.immOffset+int(cmd.Len) > c.maxITIU {
		return false
	}
	if cmd.LKey == 0 && len(cmd.Local) < int(cmd.Len) {
		return false
	}
	return true
}

func (c *Channel) txIU(i int) []byte {
	off := i * c.txStride
	return c.txBuf.Bytes()[off : off+c.maxITIU]
}

func (c *Channel) txAddr(i int) uint64 { return c.txBuf.Addr() + uint64(i*c.txStride) }

func (c *Channel) postRecv(i int) error {
	wr := &c.recvWR
	*wr = verbs.RecvWR{ID: wrID(wrRecv, uint64(i)), NumSGE: 1}
	wr.SGE[0] = verbs.SGE{Addr: c.rxBuf.Addr() + uint64(i*c.rxStride), Length: uint32(c.maxTIIU), LKey: c.rxBuf.LKey()}
	return c.conn.PostRecv(wr)
}

// Outstanding is the number of submitted commands whose Result Poll has not
// returned yet.
func (c *Channel) Outstanding() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.outstanding
}

// Poll drains the completion queue and returns up to len(out) Results. It
// never blocks and does not allocate. After a failure it returns every
// outstanding command with ErrFlushed.
func (c *Channel) Poll(out []Result) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		for {
			n := c.conn.Poll(c.wc[:])
			for i := range n {
				c.handle(&c.wc[i])
			}
			if n < len(c.wc) {
				break
			}
		}
		if c.tskPending > 0 && !c.failedFlag.Load() {
			c.checkTaskMgmtDeadlines()
		}
		if len(c.pending) > 0 && !c.failedFlag.Load() {
			c.sendPendingReplies()
		}
	}
	if c.failedFlag.Load() && !c.flushed {
		c.flushOutstanding()
	}
	return c.deliver(out)
}

// deliver copies queued Results into out.
func (c *Channel) deliver(out []Result) int {
	n := 0
	for n < len(out) && c.resCount > 0 {
		out[n] = c.results[c.resHead]
		if t := c.resTag[c.resHead]; t >= 0 {
			s := &c.tags[t]
			s.resultQueued = false
			c.maybeFree(int(t))
		}
		c.resHead++
		if c.resHead == len(c.results) {
			c.resHead = 0
		}
		c.resCount--
		c.outstanding--
		n++
	}
	return n
}

// queueResult appends an empty Result for tag slot idx and returns it.
func (c *Channel) queueResult(idx int) *Result {
	i := c.resHead + c.resCount
	if i >= len(c.results) {
		i -= len(c.results)
	}
	c.resCount++
	c.resTag[i] = int32(idx)
	s := &c.tags[idx]
	s.awaitingRsp = false
	s.resultQueued = true
	r := &c.results[i]
	*r = Result{ID: s.id}
	return r
}

// maybeFree returns a tag slot to the free list once nothing refers to it:
// its SEND completed, its response arrived (or it was ended locally) and its
// Result was handed out.
func (c *Channel) maybeFree(idx int) {
	s := &c.tags[idx]
	if !s.inUse || s.sendPending || s.awaitingRsp || s.resultQueued || s.aborting >= 0 {
		return
	}
	s.inUse = false
	if !c.failedFlag.Load() {
		c.free = append(c.free, uint16(idx))
	}
}

// handle processes one work completion.
func (c *Channel) handle(wc *verbs.Completion) {
	kind := wrKind(wc.ID >> wrKindShift)
	idx := int(wc.ID & wrIndexMask)
	if wc.Status != verbs.StatusSuccess {
		if !c.failedFlag.Load() {
			c.failLocked("completion", &CompletionError{Op: wc.Op, Status: wc.Status, VendorErr: wc.VendorErr})
		}
		if kind == wrHeartbeat {
			c.hbOutstand--
		}
		c.sendDone(kind, idx)
		return
	}
	switch kind {
	case wrRecv:
		c.recv(idx, int(wc.ByteLen))
	case wrHeartbeat:
		c.hbOutstand--
		for { // acked sequence numbers only move forward
			cur := c.hbAcked.Load()
			if uint64(idx) <= cur || c.hbAcked.CompareAndSwap(cur, uint64(idx)) {
				break
			}
		}
	default:
		c.sendDone(kind, idx)
	}
}

// sendDone releases what a completed (or flushed) SEND referenced.
func (c *Channel) sendDone(kind wrKind, idx int) {
	switch kind {
	case wrCmd:
		if idx < len(c.tags) {
			c.tags[idx].sendPending = false
			c.maybeFree(idx)
		}
	case wrTsk:
		if idx < len(c.tsk) {
			t := &c.tsk[idx]
			t.sendPending = false
			c.maybeFreeTsk(idx)
		}
	case wrReply:
		if idx < len(c.replies) {
			c.replies[idx].busy = false
		}
	}
}

// recv dispatches one received IU by its opcode (research §2.4) and reposts
// the receive.
func (c *Channel) recv(i, n int) {
	if c.failedFlag.Load() {
		return
	}
	if n > c.maxTIIU {
		c.failLocked("receive", fmt.Errorf("%w: IU of %d bytes exceeds max_ti_iu_len %d", ErrProtocol, n, c.maxTIIU))
		return
	}
	off := i * c.rxStride
	b := c.rxBuf.Bytes()[off : off+n]
	op, err := PeekOpcode(b)
	if err == nil {
		switch op {
		case OpRsp:
			err = c.onRsp(b)
		case OpCredReq:
			err = c.onCredReq(b)
		case OpAerReq:
			err = c.onAerReq(b)
		case OpTLogout:
			err = c.onTLogout(b)
		default:
			err = fmt.Errorf("%w: unexpected %v", ErrProtocol, op)
		}
	} else {
		err = fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	if err != nil {
		c.failLocked("receive", err)
		return
	}
	if err := c.postRecv(i); err != nil {
		c.failLocked("post receive", err)
	}
}

// addCredits applies a req_lim_delta (research §2.3: every response's delta
// counts, stale tags included). A delta that is negative as a signed 32-bit
// value or pushes the limit past maxReqLim is a credit overflow.
func (c *Channel) addCredits(delta uint32) error {
	if int32(delta) < 0 || int64(c.reqLim)+int64(delta) > maxReqLim {
		return fmt.Errorf("%w: credit overflow (req_lim %d, delta %d)", ErrProtocol, c.reqLim, delta)
	}
	c.reqLim += int32(delta)
	return nil
}

func (c *Channel) onRsp(b []byte) error {
	r := &c.rsp
	if err := r.Decode(b); err != nil {
		c.protocolResult(b)
		return fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	if err := c.addCredits(r.ReqLimDelta); err != nil {
		return err
	}
	if r.Tag&TagTskMgmt != 0 {
		return c.onTskRsp(r)
	}
	idx := int(r.Tag & tagIndexMask)
	if idx >= len(c.tags) {
		return fmt.Errorf("%w: response for unknown tag %v", ErrProtocol, r.Tag)
	}
	s := &c.tags[idx]
	if !s.inUse || !s.awaitingRsp || s.tag != r.Tag {
		if s.staleValid && s.stale == r.Tag {
			s.staleValid = false // a late answer to a command we ended locally
			return nil
		}
		return fmt.Errorf("%w: response for unknown tag %v", ErrProtocol, r.Tag)
	}
	res := c.queueResult(idx)
	res.Status = r.Status
	if sense := r.ValidSense(); len(sense) > 0 {
		res.SenseLen = copy(res.Sense[:], sense)
	}
	switch {
	case r.Flags&DataInUnder != 0:
		res.Residual = int64(r.DataInResid)
	case r.Flags&DataOutUnder != 0:
		res.Residual = int64(r.DataOutResid)
	case r.Flags&DataInOver != 0:
		res.Residual = -int64(r.DataInResid)
	case r.Flags&DataOutOver != 0:
		res.Residual = -int64(r.DataOutResid)
	}
	c.maybeFree(idx)
	return nil
}

// protocolResult completes the command a malformed SRP_RSP names, if its
// tag is readable and outstanding, with ErrProtocol; the channel fails right
// after, flushing the rest.
func (c *Channel) protocolResult(b []byte) {
	tag, err := PeekTag(b)
	if err != nil || tag&TagTskMgmt != 0 {
		return
	}
	idx := int(tag & tagIndexMask)
	if idx >= len(c.tags) {
		return
	}
	if s := &c.tags[idx]; s.inUse && s.awaitingRsp && s.tag == tag {
		c.queueResult(idx).Err = ErrProtocol
	}
}

func (c *Channel) onCredReq(b []byte) error {
	r := &c.credReq
	if err := r.Decode(b); err != nil {
		return fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	if err := c.addCredits(r.ReqLimDelta); err != nil {
		return err
	}
	c.credReqs++
	c.queueReply(OpCredRsp, r.Tag)
	return nil
}

func (c *Channel) onAerReq(b []byte) error {
	r := &c.aerReq
	if err := r.Decode(b); err != nil {
		return fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	if err := c.addCredits(r.ReqLimDelta); err != nil {
		return err
	}
	c.aers++
	c.log.Info("srp: asynchronous event", "lun", r.LUN.Int(), "sense_len", len(r.Sense))
	c.queueReply(OpAerRsp, r.Tag)
	return nil
}

func (c *Channel) onTLogout(b []byte) error {
	r := &c.tlogout
	if err := r.Decode(b); err != nil {
		return fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	return fmt.Errorf("%w (reason %#x)", ErrTargetLogout, r.Reason)
}

// queueReply answers a target request. Replies consume no credit (research
// §2.3) but need a transmit IU; without a free one the reply waits for the
// next Poll.
func (c *Channel) queueReply(op Opcode, tag Tag) {
	if len(c.pending) == cap(c.pending) {
		// More unanswered target requests than receive slots: the target
		// sent requests faster than it let us answer. Drop the oldest.
		copy(c.pending, c.pending[1:])
		c.pending = c.pending[:len(c.pending)-1]
	}
	c.pending = append(c.pending, pendingReply{op: op, tag: tag})
	c.sendPendingReplies()
}

func (c *Channel) sendPendingReplies() {
	for len(c.pending) > 0 {
		slot := -1
		for i := range c.replies {
			if !c.replies[i].busy {
				slot = i
				break
			}
		}
		if slot < 0 {
			return
		}
		p := c.pending[0]
		iu := c.txIU(c.replyBase + slot)
		var n int
		if p.op == OpCredRsp {
			n, _ = (&CredRsp{Tag: p.tag}).Encode(iu)
		} else {
			n, _ = (&AerRsp{Tag: p.tag}).Encode(iu)
		}
		wr := &c.sendWR
		*wr = verbs.SendWR{ID: wrID(wrReply, uint64(slot)), Op: verbs.OpSend, Signaled: true, NumSGE: 1}
		wr.SGE[0] = verbs.SGE{Addr: c.txAddr(c.replyBase + slot), Length: uint32(n), LKey: c.txBuf.LKey()}
		if err := c.conn.PostSend(wr); err != nil {
			c.failLocked("post reply", err)
			return
		}
		c.replies[slot].busy = true
		copy(c.pending, c.pending[1:])
		c.pending = c.pending[:len(c.pending)-1]
	}
}

// flushOutstanding completes every command that has no Result yet with
// ErrFlushed. It runs once, after the failure moved the QP to the error
// state, so no DMA can reach the buffers any more.
func (c *Channel) flushOutstanding() {
	c.flushed = true
	for i := range c.tags {
		s := &c.tags[i]
		s.aborting = -1
		if s.inUse && s.awaitingRsp {
			r := c.queueResult(i)
			r.Err = ErrFlushed
		}
	}
	c.free = c.free[:0]
	for i := range c.tsk {
		t := &c.tsk[i]
		if t.busy && t.hasWaiter && t.rspPending {
			select {
			case t.waiter <- ErrFlushed:
			default:
			}
		}
	}
}

// CompletionError is a work completion with an error status.
type CompletionError struct {
	Op        verbs.CompletionOp
	Status    verbs.Status
	VendorErr uint32
}

func (e *CompletionError) Error() string {
	return fmt.Sprintf("srp: %v completion: %v (vendor error %#x)", e.Op, e.Status, e.VendorErr)
}
