package srp

import (
	"context"
	"errors"
	"fmt"

	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
)

// setErr records the channel's first failure cause and publishes it. It
// reports whether this call was the first.
func (c *Channel) setErr(op string, err error) bool {
	c.errMu.Lock()
	if c.err != nil {
		c.errMu.Unlock()
		return false
	}
	c.err = &ChannelError{Op: op, Remote: c.remote, Err: err}
	c.errMu.Unlock()
	c.failedFlag.Store(true)
	close(c.failedCh)
	if !errors.Is(err, ErrChannelClosed) {
		c.log.Warn("srp channel failed", "op", op, "err", err)
	}
	return true
}

// fail moves the channel to its failed state: the QP goes to the error state
// first (no late DMA into registered memory), then Failed is closed. The
// queue thread's next Poll completes every outstanding command with
// ErrFlushed. Safe from any goroutine.
func (c *Channel) fail(op string, err error) {
	if c.failedFlag.Load() {
		return
	}
	// ForceError before publishing, so whoever reacts to Failed may
	// reuse buffers at once.
	_ = c.conn.ForceError()
	c.setErr(op, err)
}

// failLocked is fail called with c.mu held (the same thing; the name
// documents the call site).
func (c *Channel) failLocked(op string, err error) { c.fail(op, err) }

// Err returns nil while the channel is healthy, else why it failed (a
// *ChannelError; sticky).
func (c *Channel) Err() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.err
}

// Failed is closed once when the channel fails: QP error completion,
// DREQ/CM disconnect, T_LOGOUT, protocol error from the target, task
// management timeout, ForceError or Close.
func (c *Channel) Failed() <-chan struct{} { return c.failedCh }

// ForceError moves the QP to the error state and fails the channel: no late
// DMA; in-flight commands then complete as ErrFlushed.
func (c *Channel) ForceError() error {
	if c.failedFlag.Load() {
		return c.conn.ForceError()
	}
	err := c.conn.ForceError()
	c.setErr("force error", ErrForced)
	return err
}

// Close disconnects (rdma_disconnect; no I_LOGOUT, like the kernel), fails
// the channel if it is still healthy and releases the connection and the IU
// rings. Results still queued stay readable through Poll.
func (c *Channel) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.closing)
		// DREQ first (the QP goes to the error state with it), then make
		// sure of the error state, then publish: whoever reacts to Failed
		// may reuse the buffers at once.
		errDisc := c.conn.Disconnect()
		_ = c.conn.ForceError()
		c.setErr("close", ErrChannelClosed)
		c.watchers.Wait()
		c.mu.Lock()
		defer c.mu.Unlock()
		if !c.flushed {
			c.flushOutstanding()
		}
		c.closed = true
		err = errors.Join(errDisc, c.conn.Close(), c.txBuf.Close(), c.rxBuf.Close())
	})
	return err
}

// Heartbeat posts a zero-length RDMA WRITE (research §2.7): no credit, no
// receive, one send queue slot. The completion is seen by whoever polls; its
// sequence number then shows in HeartbeatAcked. An error completion fails the
// channel. Safe from any goroutine.
func (c *Channel) Heartbeat() (seq uint64, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failedFlag.Load() || c.closed {
		return 0, ErrChannelFailed
	}
	if c.hbOutstand >= heartbeatSlots {
		return 0, ErrBusy
	}
	seq = c.hbSeq.Add(1)
	wr := &c.sendWR
	*wr = verbs.SendWR{ID: wrID(wrHeartbeat, seq), Op: verbs.OpRDMAWrite, Signaled: true}
	if err := c.conn.PostSend(wr); err != nil {
		c.failLocked("post heartbeat", err)
		return 0, fmt.Errorf("%w: %w", ErrChannelFailed, err)
	}
	c.hbOutstand++
	return seq, nil
}

// HeartbeatAcked is the sequence number of the last acknowledged heartbeat.
func (c *Channel) HeartbeatAcked() uint64 { return c.hbAcked.Load() }

// Info returns the negotiated parameters and counters.
func (c *Channel) Info() ChannelInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := c.info
	i.ReqLim = int(c.reqLim)
	i.NoCredit, i.AERs, i.CredReqs = c.noCredit, c.aers, c.credReqs
	return i
}

// ArmNotify requests that NotifyFD (or Ready) fire at the next completion;
// poll once more after arming before sleeping.
func (c *Channel) ArmNotify() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrChannelFailed
	}
	return c.conn.ArmNotify()
}

// NotifyFD is the completion notification fd (-1 if the provider has none).
func (c *Channel) NotifyFD() int { return c.conn.NotifyFD() }

// AckNotify consumes a fired notification.
func (c *Channel) AckNotify() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrChannelFailed
	}
	return c.conn.AckNotify()
}

// Ready is the connection's readiness channel when the provider has one
// (verbs/sim), else nil.
func (c *Channel) Ready() <-chan struct{} { return c.ready }

// Abort sends ABORT TASK for the outstanding command with the given ID,
// using the credit kept for task management (research §2.5). It never
// blocks. The outcome arrives through Poll: Result{ID: id, Aborted: true,
// Err: ErrAborted} once the target answered (any answer counts, as for
// ib_srp), or the command's own Result if that came first. Without an answer
// within AbortTimeout the channel fails (ErrAbortTimeout) and the command
// completes as ErrFlushed.
func (c *Channel) Abort(id uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failedFlag.Load() || c.closed {
		return ErrChannelFailed
	}
	idx := -1
	for i := range c.tags {
		s := &c.tags[i]
		if s.inUse && s.awaitingRsp && s.id == id {
			idx = i
			break
		}
	}
	if idx < 0 {
		return ErrNotOutstanding
	}
	s := &c.tags[idx]
	if s.aborting >= 0 {
		return nil // already being aborted
	}
	slot, err := c.postTaskMgmt(TMAbortTask, s.lun, s.tag, idx, false)
	if err != nil {
		return err
	}
	s.aborting = slot
	return nil
}

// ResetLUN sends LUN RESET and waits for the answer (control plane). The
// answer is processed by whichever goroutine polls the channel; that Poll
// also completes every outstanding command of the LUN with ErrLUNReset.
// It fails if the target answers with a failure code, the channel fails, or
// ctx ends first.
func (c *Channel) ResetLUN(ctx context.Context, lun uint64) error {
	c.mu.Lock()
	if c.failedFlag.Load() || c.closed {
		c.mu.Unlock()
		return ErrChannelFailed
	}
	slot, err := c.postTaskMgmt(TMLUNReset, lun, TagNoReq, -1, true)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	t := &c.tsk[slot]
	select {
	case err := <-t.waiter:
		return err
	case <-c.failedCh:
		return fmt.Errorf("%w: LUN reset: %w", ErrChannelFailed, c.Err())
	case <-ctx.Done():
		return ctx.Err()
	}
}

// postTaskMgmt builds and posts one SRP_TSK_MGMT; it needs a credit
// (req_lim > 0) and a free task management slot. c.mu is held.
func (c *Channel) postTaskMgmt(fn TMFunc, lun uint64, taskTag Tag, target int, waiter bool) (int, error) {
	if c.reqLim <= 0 {
		c.noCredit++
		return -1, ErrNoCredit
	}
	slot := -1
	for i := range c.tsk {
		if !c.tsk[i].busy {
			slot = i
			break
		}
	}
	if slot < 0 {
		return -1, ErrBusy
	}
	t := &c.tsk[slot]
	t.gen++
	t.tag = TagTskMgmt | makeTag(slot, t.gen)
	select { // drop an outcome nobody waited for
	case <-t.waiter:
	default:
	}
	m := &c.tm
	*m = TskMgmt{Tag: t.tag, LUN: LUNFromInt(lun), Func: fn, TaskTag: taskTag}
	iu := c.txIU(c.tskBase + slot)
	n, err := m.Encode(iu)
	if err != nil {
		return -1, ErrBadCommand
	}
	wr := &c.sendWR
	*wr = verbs.SendWR{ID: wrID(wrTsk, uint64(slot)), Op: verbs.OpSend, Signaled: true, NumSGE: 1}
	wr.SGE[0] = verbs.SGE{Addr: c.txAddr(c.tskBase + slot), Length: uint32(n), LKey: c.txBuf.LKey()}
	if err := c.conn.PostSend(wr); err != nil {
		c.failLocked("post task management", err)
		return -1, ErrChannelFailed
	}
	c.reqLim--
	t.busy, t.sendPending, t.rspPending = true, true, true
	t.fn, t.lun, t.target = fn, lun, target
	t.deadline = c.clk.Now().Add(c.abortTmo)
	t.hasWaiter = waiter
	c.tskPending++
	return slot, nil
}

// onTskRsp completes a task management request.
func (c *Channel) onTskRsp(r *Rsp) error {
	slot := int(r.Tag & tagIndexMask)
	if slot >= len(c.tsk) {
		return fmt.Errorf("%w: task management response for unknown tag %v", ErrProtocol, r.Tag)
	}
	t := &c.tsk[slot]
	if !t.busy || !t.rspPending || t.tag != r.Tag {
		return fmt.Errorf("%w: task management response for unknown tag %v", ErrProtocol, r.Tag)
	}
	t.rspPending = false
	c.tskPending--
	code, ok := r.TMResponse()
	success := ok && code == TMComplete
	switch t.fn {
	case TMAbortTask:
		if t.target >= 0 {
			s := &c.tags[t.target]
			s.aborting = -1
			if s.inUse && s.awaitingRsp {
				c.endLocally(t.target, ErrAborted)
			}
			c.maybeFree(t.target)
		}
	case TMLUNReset:
		if success {
			for i := range c.tags {
				s := &c.tags[i]
				if s.inUse && s.awaitingRsp && s.lun == t.lun {
					c.endLocally(i, ErrLUNReset)
				}
			}
		}
	}
	if t.hasWaiter {
		var out error
		if !success {
			out = fmt.Errorf("%w: %v: response %v (valid %t)", ErrTaskMgmt, t.fn, code, ok)
		}
		select {
		case t.waiter <- out:
		default:
		}
	}
	c.maybeFreeTsk(slot)
	return nil
}

// endLocally completes a command that the target will not answer any more
// (aborted or reset). A late answer to its tag is tolerated once.
func (c *Channel) endLocally(idx int, why error) {
	s := &c.tags[idx]
	s.stale, s.staleValid = s.tag, true
	r := c.queueResult(idx)
	r.Err = why
	r.Aborted = true
	c.maybeFree(idx)
}

func (c *Channel) maybeFreeTsk(slot int) {
	t := &c.tsk[slot]
	if t.busy && !t.sendPending && !t.rspPending {
		t.busy = false
		t.target = -1
	}
}

// checkTaskMgmtDeadlines fails the channel when a task management request
// went unanswered for AbortTimeout.
func (c *Channel) checkTaskMgmtDeadlines() {
	now := c.clk.Now()
	for i := range c.tsk {
		t := &c.tsk[i]
		if t.busy && t.rspPending && now.After(t.deadline) {
			c.failLocked("task management", fmt.Errorf("%w: %v for LUN %d after %v", ErrAbortTimeout, t.fn, t.lun, c.abortTmo))
			return
		}
	}
}
