package srptest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/srp"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
)

// Session sizes and limits.
const (
	// rspIULen is ib_srpt's srp_max_rsp_size default: every IU the target
	// sends fits in it.
	rspIULen = 256
	// extraRecvs are receive slots beyond the credit window: CRED_RSP and
	// AER_RSP consume no credit.
	extraRecvs = 8
	// extraTasks cover the race between a credit returned by a response and
	// that response's send completion.
	extraTasks = 16
	// ctlSlots transmit target-initiated IUs (CRED_REQ, AER_REQ, T_LOGOUT,
	// injected bogus responses).
	ctlSlots  = 8
	pollBatch = 64
	// Additional sense code for a missing LU.
	ascLUNotSupported = 0x25
)

type wrKind uint8

const (
	wrRecv wrKind = iota + 1
	wrRead
	wrWrite
	wrRsp
	wrCtl
)

const wrKindShift = 56

func wrID(k wrKind, idx int) uint64 { return uint64(k)<<wrKindShift | uint64(idx) }

type taskState uint8

const (
	taskFree taskState = iota
	taskFetching
	taskDelayed
	taskHung
	taskResponding
)

// waitingIU is a received IU that waits for a free task.
type waitingIU struct{ rx, n int }

// task is one SRP_CMD or SRP_TSK_MGMT the target is working on.
type task struct {
	state   taskState
	gen     uint32
	tag     srp.Tag
	lun     uint64
	lu      *LU
	cdb     [srp.MaxCDBLen]byte
	cdbLen  int
	out     srp.DataDesc // DATA-OUT descriptor (direct)
	in      srp.DataDesc // DATA-IN descriptor (direct)
	outLen  int          // data-out bytes in stage
	outWant int
	stage   []byte // staging buffer (registered)
	stageAt uint64
	rsp     []byte // response IU buffer (registered)
	rspAt   uint64
}

// SessionInfo describes a logged-in channel.
type SessionInfo struct {
	ID        uint64
	Port      int
	Initiator srp.InitiatorPortID
	Target    srp.TargetPortID
	Immediate bool
	Local     string
	Remote    string
	MaxITIU   int
	MaxTIIU   int
}

// SessionStats counts a session's traffic.
type SessionStats struct {
	Commands, TaskMgmt, CredRsps, AerRsps, ILogouts uint64
	// ImmediateWrites counts SRP_CMDs that carried their data-out as
	// immediate data.
	ImmediateWrites uint64
	// CreditViolations counts IUs received while the initiator held no
	// credit: an initiator bug.
	CreditViolations uint64
	// Unexpected counts IUs with an opcode a target does not accept.
	Unexpected uint64
}

// ProtocolFault is a deliberate protocol violation a session can send.
type ProtocolFault uint8

const (
	// FaultUnknownTag sends an SRP_RSP for a tag never used.
	FaultUnknownTag ProtocolFault = iota + 1
	// FaultBadLength sends an SRP_RSP whose sense_data_len points past the
	// IU, for a hung command if there is one.
	FaultBadLength
	// FaultCreditOverflow sends an SRP_CRED_REQ whose req_lim_delta
	// (0x7fffffff) overflows any credible request limit.
	FaultCreditOverflow
	// FaultBadOpcode sends an IU with an opcode an initiator never receives.
	FaultBadOpcode
)

func (f ProtocolFault) String() string {
	switch f {
	case FaultUnknownTag:
		return "unknown-tag"
	case FaultBadLength:
		return "bad-length"
	case FaultCreditOverflow:
		return "credit-overflow"
	case FaultBadOpcode:
		return "bad-opcode"
	}
	return fmt.Sprintf("ProtocolFault(%d)", uint8(f))
}

// Session is one logged-in SRP channel on the target side. Its goroutine
// owns the connection; the exported methods hand work to it.
type Session struct {
	t    *Target
	port *Port
	info SessionInfo
	conn verbs.Conn

	immediate bool
	immOffset int
	maxReq    int

	rxBuf, txBuf, stageBuf, ctlBuf verbs.Buffer
	rxStride                       int
	nRecv                          int
	tasks                          []task
	freeTasks                      []int
	waiting                        []waitingIU // receive slots waiting for a free task (cmd_wait_list)
	ctlBusy                        [ctlSlots]bool
	wc                             [pollBatch]verbs.Completion
	cmd                            srp.Cmd
	tm                             srp.TskMgmt
	rsp                            srp.Rsp
	reply                          scsiReply // of the task being answered; kept here so it does not escape per I/O
	sendWR                         verbs.SendWR
	recvWR                         verbs.RecvWR
	luns                           []uint64

	// credits is the initiator's credit balance as the target sees it;
	// pendingDelta are credits to return with the next response.
	credits      int64
	pendingDelta uint32

	mu       sync.Mutex // guards ops, hold, heldDelta, stats
	ops      []func()
	hold     bool
	held     uint32
	stats    SessionStats
	wake     chan struct{}
	started  chan struct{} // closed once conn is set (or the accept failed)
	quit     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
	dead     atomic.Bool
}

func (s *Session) String() string { return fmt.Sprintf("session %d (%v)", s.info.ID, s.info.Initiator) }

// Info describes the session.
func (s *Session) Info() SessionInfo { return s.info }

// Stats returns the session's counters.
func (s *Session) Stats() SessionStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Done is closed when the session's goroutine has ended.
func (s *Session) Done() <-chan struct{} { return s.done }

// do runs f on the session goroutine and waits until it ran (or the
// session ended). Everything the session received before the call is
// processed before f.
func (s *Session) do(f func()) {
	ran := make(chan struct{})
	s.doAsync(func() {
		f()
		close(ran)
	})
	select {
	case <-ran:
	case <-s.done:
	}
}

// doAsync queues f for the session goroutine and returns at once.
func (s *Session) doAsync(f func()) {
	s.mu.Lock()
	s.ops = append(s.ops, f)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Sync returns once the session processed every IU it received before the
// call (a barrier for tests).
func (s *Session) Sync() { s.do(func() {}) }

// Kill disconnects the session (the target sends a DREQ), as removing the
// session in LIO does.
func (s *Session) Kill() { s.stop(true) }

func (s *Session) stop(disconnect bool) {
	s.stopOnce.Do(func() {
		<-s.started
		if disconnect && s.conn != nil {
			_ = s.conn.Disconnect()
		}
		close(s.quit)
	})
}

// SendTLogout sends SRP_T_LOGOUT with the given reason.
func (s *Session) SendTLogout(reason uint32) {
	s.do(func() { s.sendCtl(&srp.TLogout{Reason: reason, Tag: 0x7100}) })
}

// SendCredReq sends SRP_CRED_REQ granting delta credits.
func (s *Session) SendCredReq(delta uint32) {
	s.do(func() {
		s.credits += int64(delta)
		s.sendCtl(&srp.CredReq{ReqLimDelta: delta, Tag: 0x7200})
	})
}

// SendAerReq sends SRP_AER_REQ for lun with the given sense data, granting
// delta credits.
func (s *Session) SendAerReq(lun uint64, delta uint32, sense []byte) {
	sense = append([]byte(nil), sense...)
	s.do(func() {
		s.credits += int64(delta)
		s.sendCtl(&srp.AerReq{ReqLimDelta: delta, Tag: 0x7300, LUN: srp.LUNFromInt(lun), Sense: sense})
	})
}

// HoldCredits starts (true) or ends (false) credit starvation: while held,
// responses return no credit; on release the withheld credits are granted
// with one SRP_CRED_REQ.
func (s *Session) HoldCredits(hold bool) {
	s.do(func() {
		s.mu.Lock()
		s.hold = hold
		held := s.held
		if !hold {
			s.held = 0
		}
		s.mu.Unlock()
		if !hold && held > 0 {
			s.credits += int64(held)
			s.sendCtl(&srp.CredReq{ReqLimDelta: held, Tag: 0x7201})
		}
	})
}

// InjectProtocolFault sends one deliberately malformed IU.
func (s *Session) InjectProtocolFault(f ProtocolFault) {
	s.do(func() {
		switch f {
		case FaultUnknownTag:
			s.sendCtl(&srp.Rsp{ReqLimDelta: 0, Tag: 0x0bad_0000_7fff})
		case FaultBadLength:
			// A malformed answer to a real command when one is hung.
			tag := srp.Tag(0x0bad_0000_7ffe)
			for i := range s.tasks {
				if s.tasks[i].state == taskHung {
					tag = s.tasks[i].tag
					break
				}
			}
			s.sendCtlRaw(func(b []byte) int {
				n, _ := (&srp.Rsp{Tag: tag}).Encode(b)
				b[28], b[29], b[30], b[31] = 0x00, 0x01, 0x00, 0x00 // sense_data_len 65536
				return n
			})
		case FaultCreditOverflow:
			s.sendCtl(&srp.CredReq{ReqLimDelta: 0x7fff_ffff, Tag: 0x7202})
		case FaultBadOpcode:
			s.sendCtlRaw(func(b []byte) int {
				n, _ := (&srp.ILogout{Tag: 0x7400}).Encode(b)
				return n
			})
		}
	})
}

// Credits is the initiator's credit balance as the target accounts it.
func (s *Session) Credits() int64 {
	var v int64
	s.do(func() { v = s.credits })
	return v
}

// setup allocates the rings and posts the receives; it runs before the
// session is accepted, so the initiator can never find no receive posted.
func (s *Session) setup(dev verbs.Device, rq int) error {
	nTasks := rq + extraTasks
	s.nRecv = rq + extraRecvs
	s.rxStride = (s.maxReq + 63) &^ 63
	var err error
	if s.rxBuf, err = dev.AllocBuffer(s.nRecv*s.rxStride, verbs.AccessLocalWrite); err != nil {
		return err
	}
	if s.txBuf, err = dev.AllocBuffer(nTasks*rspIULen, verbs.AccessLocalWrite); err != nil {
		return err
	}
	stage := s.t.cfg.MaxTransfer
	if s.stageBuf, err = dev.AllocBuffer(nTasks*stage, verbs.AccessLocalWrite); err != nil {
		return err
	}
	if s.ctlBuf, err = dev.AllocBuffer(ctlSlots*rspIULen, verbs.AccessLocalWrite); err != nil {
		return err
	}
	s.tasks = make([]task, nTasks)
	s.freeTasks = make([]int, 0, nTasks)
	s.waiting = make([]waitingIU, 0, s.nRecv)
	for i := nTasks - 1; i >= 0; i-- {
		t := &s.tasks[i]
		t.stage = s.stageBuf.Bytes()[i*stage : (i+1)*stage]
		t.stageAt = s.stageBuf.Addr() + uint64(i*stage)
		t.rsp = s.txBuf.Bytes()[i*rspIULen : (i+1)*rspIULen]
		t.rspAt = s.txBuf.Addr() + uint64(i*rspIULen)
		s.freeTasks = append(s.freeTasks, i)
	}
	s.credits = int64(rq)
	return nil
}

// postRecvs posts every receive slot.
func (s *Session) postRecvs() error {
	for i := range s.nRecv {
		if err := s.postRecv(i); err != nil {
			return err
		}
	}
	return nil
}

func (s *Session) releaseBuffers() {
	for _, b := range []verbs.Buffer{s.rxBuf, s.txBuf, s.stageBuf, s.ctlBuf} {
		if b != nil {
			_ = b.Close()
		}
	}
}

func (s *Session) postRecv(i int) error {
	wr := &s.recvWR
	*wr = verbs.RecvWR{ID: wrID(wrRecv, i), NumSGE: 1}
	wr.SGE[0] = verbs.SGE{Addr: s.rxBuf.Addr() + uint64(i*s.rxStride), Length: uint32(s.maxReq), LKey: s.rxBuf.LKey()}
	return s.conn.PostRecv(wr)
}

// readyConn is a connection with a readiness channel (verbs/sim).
type readyConn interface {
	Ready() <-chan struct{}
}

// run is the session goroutine: poll, process, sleep until the connection
// or a control operation wakes it.
func (s *Session) run() {
	defer close(s.done)
	defer s.t.removeSession(s)
	defer s.releaseBuffers()
	defer func() { _ = s.conn.Close() }()
	var ready <-chan struct{}
	if rc, ok := s.conn.(readyConn); ok {
		ready = rc.Ready()
	}
	events := s.conn.CMEvents()
	for {
		busy := false
		for {
			n := s.conn.Poll(s.wc[:])
			for i := range n {
				s.handle(&s.wc[i])
			}
			if n == 0 {
				break
			}
			busy = true
		}
		if s.runOps() {
			busy = true
		}
		if s.dead.Load() {
			return
		}
		if busy {
			continue
		}
		// Arm, then poll once more: a completion that arrived between
		// the last poll and arming would not signal Ready.
		_ = s.conn.ArmNotify()
		if n := s.conn.Poll(s.wc[:]); n > 0 {
			for i := range n {
				s.handle(&s.wc[i])
			}
			continue
		}
		select {
		case <-ready:
		case <-s.wake:
		case ev, ok := <-events:
			if !ok || ev.Kind == verbs.CMDisconnected || ev.Kind == verbs.CMDeviceRemoval {
				// Like srpt: on DREQ disconnect and drain, then release.
				_ = s.conn.Disconnect()
				_ = s.conn.ForceError()
				s.drain()
				return
			}
		case <-s.quit:
			_ = s.conn.ForceError()
			s.drain()
			return
		}
	}
}

// drain polls the flushed completions of a dead connection.
func (s *Session) drain() {
	for s.conn.Poll(s.wc[:]) > 0 {
	}
}

func (s *Session) runOps() bool {
	s.mu.Lock()
	ops := s.ops
	s.ops = nil
	s.mu.Unlock()
	for _, f := range ops {
		f()
	}
	return len(ops) > 0
}

func (s *Session) handle(wc *verbs.Completion) {
	kind := wrKind(wc.ID >> wrKindShift)
	idx := int(wc.ID & (1<<wrKindShift - 1))
	if wc.Status != verbs.StatusSuccess {
		// The connection is gone (flush, retry exceeded): end the session.
		if !s.dead.Load() {
			s.t.log.Debug("srptest: session ends on completion error", "session", s.info.ID, "status", wc.Status, "op", wc.Op)
		}
		s.dead.Store(true)
		return
	}
	switch kind {
	case wrRecv:
		s.recv(idx, int(wc.ByteLen))
	case wrRead:
		t := &s.tasks[idx]
		if t.state == taskFetching {
			s.execute(idx)
		}
	case wrRsp:
		s.freeTask(idx)
		s.serveWaiting()
	case wrCtl:
		s.ctlBusy[idx] = false
	}
}

func (s *Session) freeTask(idx int) {
	t := &s.tasks[idx]
	t.state = taskFree
	t.gen++
	t.lu = nil
	s.freeTasks = append(s.freeTasks, idx)
}

func (s *Session) serveWaiting() {
	for len(s.waiting) > 0 && len(s.freeTasks) > 0 {
		w := s.waiting[0]
		copy(s.waiting, s.waiting[1:])
		s.waiting = s.waiting[:len(s.waiting)-1]
		s.recvCmd(w.rx, s.rxBuf.Bytes()[w.rx*s.rxStride:w.rx*s.rxStride+w.n])
	}
}

func countImmediate(st *SessionStats) { st.ImmediateWrites++ }

func (s *Session) count(f func(*SessionStats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

// recv handles one received IU.
func (s *Session) recv(rx, n int) {
	b := s.rxBuf.Bytes()[rx*s.rxStride : rx*s.rxStride+n]
	op, err := srp.PeekOpcode(b)
	switch {
	case err != nil:
		s.count(func(st *SessionStats) { st.Unexpected++ })
	case op == srp.OpCmd || op == srp.OpTskMgmt:
		s.credits--
		if s.credits < 0 {
			s.count(func(st *SessionStats) { st.CreditViolations++ })
		}
		if len(s.freeTasks) == 0 {
			s.waiting = append(s.waiting, waitingIU{rx: rx, n: n})
			return
		}
		s.recvCmd(rx, b)
		return
	case op == srp.OpCredRsp:
		s.count(func(st *SessionStats) { st.CredRsps++ })
	case op == srp.OpAerRsp:
		s.count(func(st *SessionStats) { st.AerRsps++ })
	case op == srp.OpILogout:
		// ib_srpt only logs it ("Not yet implemented: SRP_I_LOGOUT").
		s.count(func(st *SessionStats) { st.ILogouts++ })
	default:
		s.count(func(st *SessionStats) { st.Unexpected++ })
	}
	s.repost(rx)
}

func (s *Session) repost(rx int) {
	if err := s.postRecv(rx); err != nil {
		s.dead.Store(true)
	}
}

// recvCmd processes an SRP_CMD or SRP_TSK_MGMT in receive slot rx with a
// free task available, and reposts the slot.
func (s *Session) recvCmd(rx int, b []byte) {
	idx := s.freeTasks[len(s.freeTasks)-1]
	s.freeTasks = s.freeTasks[:len(s.freeTasks)-1]
	t := &s.tasks[idx]
	t.state = taskResponding
	if srp.Opcode(b[0]) == srp.OpTskMgmt {
		s.count(func(st *SessionStats) { st.TaskMgmt++ })
		err := s.tm.Decode(b)
		s.repost(rx)
		if err != nil {
			s.count(func(st *SessionStats) { st.Unexpected++ })
			s.freeTask(idx)
			return
		}
		s.taskMgmt(idx)
		return
	}
	s.count(func(st *SessionStats) { st.Commands++ })
	c := &s.cmd
	if err := c.Decode(b); err != nil {
		s.repost(rx)
		s.count(func(st *SessionStats) { st.Unexpected++ })
		s.freeTask(idx)
		return
	}
	t.tag = c.Tag
	t.lun = c.LUN.Int()
	t.cdbLen = copy(t.cdb[:], c.CDB)
	t.out, t.in = c.DataOut, c.DataIn
	t.out.Indirect.Descs, t.in.Indirect.Descs = nil, nil
	t.outLen, t.outWant = 0, 0
	t.lu = s.t.lookupLU(t.lun)
	cdb := t.cdb[:t.cdbLen]
	if t.lu == nil {
		s.repost(rx)
		if cdb[0] == opReportLUNs || cdb[0] == opInquiry {
			s.execute(idx) // served without an LU, as LIO's LUN 0 does
			return
		}
		s.respondCC(idx, CheckCondition{Key: senseIllegalRequest, ASC: ascLUNotSupported})
		return
	}
	a := t.lu.admit()
	if pa, ok := s.port.admit(t.lun); ok {
		// Both apply; the port's CHECK CONDITION wins.
		if pa.hasCC {
			a.cc, a.hasCC = pa.cc, true
		}
		a.drop = a.drop || pa.drop
		a.delay = max(a.delay, pa.delay)
	}
	if a.hasCC {
		s.repost(rx)
		s.respondCC(idx, a.cc)
		return
	}
	if t.out.Format == srp.DescIndirect || t.in.Format == srp.DescIndirect {
		s.repost(rx)
		s.respondCC(idx, CheckCondition{Key: senseIllegalRequest, ASC: ascInvalidFieldCDB})
		return
	}
	t.outWant = t.lu.dataOutLen(cdb)
	switch t.out.Format {
	case srp.DescImm:
		s.count(countImmediate)
		data, err := c.ImmData(b, s.immOffset)
		if err != nil || !s.immediate {
			s.repost(rx)
			s.respondCC(idx, CheckCondition{Key: senseIllegalRequest, ASC: ascInvalidFieldCDB})
			return
		}
		t.outLen = copy(t.stage, data[:min(len(data), t.outWant)])
	}
	s.repost(rx)
	if a.drop {
		t.state = taskHung
		return
	}
	if t.out.Format == srp.DescDirect && t.outWant > 0 {
		n := min(t.outWant, int(t.out.Direct.Len), len(t.stage))
		t.outLen = n
		if a.delay > 0 {
			s.delay(idx, a.delay, true)
			return
		}
		s.fetch(idx)
		return
	}
	if a.delay > 0 {
		s.delay(idx, a.delay, false)
		return
	}
	s.execute(idx)
}

// delay holds a task for d on the target's clock, then fetches its data or
// executes it; an abort or LUN reset in between cancels it.
func (s *Session) delay(idx int, d time.Duration, fetch bool) {
	t := &s.tasks[idx]
	t.state = taskDelayed
	gen := t.gen
	s.t.cfg.Clock.AfterFunc(d, func() {
		s.doAsync(func() {
			if t.gen != gen || t.state != taskDelayed {
				return
			}
			if fetch {
				s.fetch(idx)
			} else {
				s.execute(idx)
			}
		})
	})
}

// fetch RDMA-reads the data-out bytes into the task's staging buffer.
func (s *Session) fetch(idx int) {
	t := &s.tasks[idx]
	t.state = taskFetching
	wr := &s.sendWR
	*wr = verbs.SendWR{ID: wrID(wrRead, idx), Op: verbs.OpRDMARead, Signaled: true, NumSGE: 1,
		RemoteAddr: t.out.Direct.Addr, RKey: t.out.Direct.Key}
	wr.SGE[0] = verbs.SGE{Addr: t.stageAt, Length: uint32(t.outLen), LKey: s.stageBuf.LKey()}
	if err := s.conn.PostSend(wr); err != nil {
		s.dead.Store(true)
	}
}

// execute runs the task's CDB and sends data-in and the response.
func (s *Session) execute(idx int) {
	t := &s.tasks[idx]
	cdb := t.cdb[:t.cdbLen]
	inCap := 0
	if t.in.Format == srp.DescDirect {
		inCap = min(int(t.in.Direct.Len), len(t.stage))
	}
	r := &s.reply
	if t.lu == nil {
		*r = execNoLU(cdb, t.stage[:inCap], s.t.lunList(s.luns[:0]))
	} else {
		s.luns = s.t.lunList(s.luns[:0])
		*r = t.lu.exec(cdb, t.stage[:t.outLen], t.stage[:inCap], s.luns, len(t.stage))
	}
	if r.status == statusGood && r.inWant > 0 && inCap > 0 {
		wr := &s.sendWR
		*wr = verbs.SendWR{ID: wrID(wrWrite, idx), Op: verbs.OpRDMAWrite, NumSGE: 1,
			RemoteAddr: t.in.Direct.Addr, RKey: t.in.Direct.Key}
		wr.SGE[0] = verbs.SGE{Addr: t.stageAt, Length: uint32(min(r.inWant, inCap)), LKey: s.stageBuf.LKey()}
		if err := s.conn.PostSend(wr); err != nil {
			s.dead.Store(true)
			return
		}
	}
	rsp := &s.rsp
	*rsp = srp.Rsp{Tag: t.tag, Status: r.status}
	if r.senseLen > 0 {
		rsp.Flags |= srp.SnsValid
		rsp.Sense = r.sense[:min(r.senseLen, s.info.MaxTIIU-srp.RspLen)]
	}
	if t.in.Format == srp.DescDirect || r.inWant > 0 {
		descLen := 0
		if t.in.Format == srp.DescDirect {
			descLen = int(t.in.Direct.Len)
		}
		switch {
		case r.inWant < descLen:
			rsp.Flags |= srp.DataInUnder
			rsp.DataInResid = uint32(descLen - r.inWant)
		case r.inWant > descLen:
			rsp.Flags |= srp.DataInOver
			rsp.DataInResid = uint32(r.inWant - descLen)
		}
	}
	if t.out.Format != srp.DescNone {
		descLen := int(t.out.Direct.Len)
		if t.out.Format == srp.DescImm {
			descLen = int(t.out.ImmLen)
		}
		switch {
		case t.outWant < descLen:
			rsp.Flags |= srp.DataOutUnder
			rsp.DataOutResid = uint32(descLen - t.outWant)
		case t.outWant > descLen:
			rsp.Flags |= srp.DataOutOver
			rsp.DataOutResid = uint32(t.outWant - descLen)
		}
	}
	s.sendRsp(idx)
}

func (s *Session) respondCC(idx int, cc CheckCondition) {
	r := &s.reply
	*r = scsiReply{}
	r.checkCondition(cc.Key, cc.ASC, cc.ASCQ)
	t := &s.tasks[idx]
	rsp := &s.rsp
	*rsp = srp.Rsp{Tag: t.tag, Status: r.status, Flags: srp.SnsValid,
		Sense: r.sense[:min(r.senseLen, s.info.MaxTIIU-srp.RspLen)]}
	s.sendRsp(idx)
}

// sendRsp sends s.rsp for task idx, returning 1 credit plus whatever
// aborted tasks owe (research §2.3), unless credits are held.
func (s *Session) sendRsp(idx int) {
	t := &s.tasks[idx]
	t.state = taskResponding
	delta := 1 + s.pendingDelta
	s.pendingDelta = 0
	s.mu.Lock()
	if s.hold {
		s.held += delta
		delta = 0
	}
	s.mu.Unlock()
	s.rsp.ReqLimDelta = delta
	s.credits += int64(delta)
	n, err := s.rsp.Encode(t.rsp)
	s.rsp.Sense = nil
	if err != nil {
		s.t.log.Error("srptest: encode response", "err", err)
		s.dead.Store(true)
		return
	}
	wr := &s.sendWR
	*wr = verbs.SendWR{ID: wrID(wrRsp, idx), Op: verbs.OpSend, Signaled: true, NumSGE: 1}
	wr.SGE[0] = verbs.SGE{Addr: t.rspAt, Length: uint32(n), LKey: s.txBuf.LKey()}
	if err := s.conn.PostSend(wr); err != nil {
		s.dead.Store(true)
	}
}

// taskMgmt executes SRP_TSK_MGMT in s.tm (research §2.5; ib_srpt answers
// with RSPVALID and a 4-byte response code).
func (s *Session) taskMgmt(idx int) {
	m := &s.tm
	t := &s.tasks[idx]
	t.tag = m.Tag
	lun := m.LUN.Int()
	t.lun = lun
	if lu := s.t.lookupLU(lun); lu != nil && lu.ignoresTaskMgmt() {
		t.lu = lu
		t.state = taskHung // never answered; only the initiator's timeout ends it
		return
	}
	code := srp.TMFuncNotSupp
	switch m.Func {
	case srp.TMAbortTask:
		code = srp.TMFailed // TASK DOES NOT EXIST maps to FAILED in ib_srpt
		for i := range s.tasks {
			o := &s.tasks[i]
			if i != idx && o.tag == m.TaskTag && o.lun == lun && (o.state == taskDelayed || o.state == taskHung) {
				s.abortTask(i)
				code = srp.TMComplete
				break
			}
		}
	case srp.TMLUNReset:
		for i := range s.tasks {
			o := &s.tasks[i]
			if i != idx && o.lun == lun && (o.state == taskDelayed || o.state == taskHung) {
				s.abortTask(i)
			}
		}
		if lu := s.t.lookupLU(lun); lu != nil {
			lu.countReset()
		}
		code = srp.TMComplete
	}
	data := srp.TMRespData(code)
	s.rsp = srp.Rsp{Tag: m.Tag, Flags: srp.RspValid, RespData: data[:]}
	s.sendRsp(idx)
	s.rsp.RespData = nil
}

// abortTask ends a task without a response; its credit comes back with
// the next response (srpt_aborted_task).
func (s *Session) abortTask(i int) {
	t := &s.tasks[i]
	if t.lu != nil {
		t.lu.countAborted(1)
	}
	s.pendingDelta++
	s.freeTask(i)
}

// sendCtl sends a target-initiated IU from a control slot.
func (s *Session) sendCtl(iu srp.IU) {
	s.sendCtlRaw(func(b []byte) int {
		n, err := iu.Encode(b)
		if err != nil {
			return 0
		}
		return n
	})
}

func (s *Session) sendCtlRaw(enc func([]byte) int) {
	slot := -1
	for i, busy := range s.ctlBusy {
		if !busy {
			slot = i
			break
		}
	}
	if slot < 0 || s.dead.Load() {
		return
	}
	b := s.ctlBuf.Bytes()[slot*rspIULen : (slot+1)*rspIULen]
	n := enc(b)
	if n == 0 {
		return
	}
	s.ctlBusy[slot] = true
	wr := &s.sendWR
	*wr = verbs.SendWR{ID: wrID(wrCtl, slot), Op: verbs.OpSend, Signaled: true, NumSGE: 1}
	wr.SGE[0] = verbs.SGE{Addr: s.ctlBuf.Addr() + uint64(slot*rspIULen), Length: uint32(n), LKey: s.ctlBuf.LKey()}
	if err := s.conn.PostSend(wr); err != nil {
		s.dead.Store(true)
	}
}
