package srptest

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/srp-mpathd/srp-mpathd/internal/srp"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs/sim"
)

// Port is one target port: a listener on a simulated device address.
type Port struct {
	t     *Target
	index int
	dev   *sim.Device
	l     *sim.Listener

	mu        sync.Mutex
	enabled   bool
	rejects   []srp.RejReason // forced LOGIN_REJ reasons for the next logins
	cmRejects int             // next logins get a CM reject without SRP payload
	faults    map[uint64]*LUFaults
	logins    PortStats
	done      chan struct{}
}

// PortStats counts a port's logins.
type PortStats struct {
	Accepted  uint64
	Rejected  map[srp.RejReason]uint64
	CMRejects uint64
	// Terminated counts channels a SINGLE login terminated.
	Terminated uint64
}

// AddPort listens on addr of dev (an unspecified address listens on every
// address of the device). The first port's device node GUID becomes the
// service GUID unless Config set one.
func (t *Target) AddPort(dev *sim.Device, addr netip.AddrPort) (*Port, error) {
	l, err := dev.Listen(addr)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		_ = l.Close()
		return nil, ErrClosed
	}
	if t.cfg.ServiceGUID == 0 {
		t.cfg.ServiceGUID = dev.Info().NodeGUID
	}
	p := &Port{t: t, index: len(t.ports), dev: dev, l: l, enabled: true, faults: make(map[uint64]*LUFaults),
		logins: PortStats{Rejected: make(map[srp.RejReason]uint64)}, done: make(chan struct{})}
	t.ports = append(t.ports, p)
	t.wg.Add(1)
	t.mu.Unlock()
	go p.acceptLoop()
	return p, nil
}

// Addr is the address the port listens on.
func (p *Port) Addr() netip.AddrPort { return p.l.Addr() }

// Index is the port's position in Target.Ports.
func (p *Port) Index() int { return p.index }

// SetEnabled enables or disables the port; logins to a disabled port get
// INSUFFICIENT_RESOURCES (ib_srpt: port or TPG not enabled).
func (p *Port) SetEnabled(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.enabled = on
}

// RejectLogins makes the next len(reasons) logins fail with these
// SRP_LOGIN_REJ reasons, in order, before any other check.
func (p *Port) RejectLogins(reasons ...srp.RejReason) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rejects = append(p.rejects, reasons...)
}

// CMRejectLogins makes the next n logins fail with a CM reject that carries
// no SRP_LOGIN_REJ (what ib_srpt's RDMA/CM handler does on short private
// data).
func (p *Port) CMRejectLogins(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cmRejects += n
}

// SetLUFaults sets fault knobs for one LU as seen through this port only;
// they apply before the LU's own knobs.
func (p *Port) SetLUFaults(lun uint64, f LUFaults) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f.CheckConditions = slices.Clone(f.CheckConditions)
	p.faults[lun] = &f
}

// ClearLUFaults removes the port's fault knobs of one LU.
func (p *Port) ClearLUFaults(lun uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.faults, lun)
}

// Stats returns the port's login counters.
func (p *Port) Stats() PortStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.logins
	s.Rejected = make(map[srp.RejReason]uint64, len(p.logins.Rejected))
	for k, v := range p.logins.Rejected {
		s.Rejected[k] = v
	}
	return s
}

// Sessions lists the port's live sessions.
func (p *Port) Sessions() []*Session {
	var out []*Session
	for _, s := range p.t.Sessions() {
		if s.port == p {
			out = append(out, s)
		}
	}
	return out
}

// KillSessions disconnects the port's sessions (DREQ) and returns how many.
func (p *Port) KillSessions() int {
	ss := p.Sessions()
	for _, s := range ss {
		s.Kill()
	}
	return len(ss)
}

// admit applies the port's fault knobs for lun; ok is false if it has none.
func (p *Port) admit(lun uint64) (a admission, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.faults) == 0 {
		return a, false
	}
	f := p.faults[lun]
	if f == nil {
		return a, false
	}
	a.delay = f.Delay
	if f.DropResponses > 0 {
		f.DropResponses--
		a.drop = true
	}
	if len(f.CheckConditions) > 0 {
		a.cc, a.hasCC = f.CheckConditions[0], true
		f.CheckConditions = f.CheckConditions[1:]
	}
	return a, true
}

func (p *Port) close() error {
	err := p.l.Close()
	<-p.done
	return err
}

func (p *Port) acceptLoop() {
	defer p.t.wg.Done()
	defer close(p.done)
	for req := range p.l.Requests() {
		p.login(req)
	}
}

// login runs ib_srpt's checks in its order (research §2.2) and accepts or
// rejects the request.
func (p *Port) login(req *sim.ConnRequest) {
	t := p.t
	var lr srp.LoginReq
	if err := lr.DecodeRDMA(req.Private); err != nil {
		// srpt_rdma_cm_req_recv returns -EINVAL: a CM reject, no LOGIN_REJ.
		p.cmReject(req)
		return
	}
	p.mu.Lock()
	var forced srp.RejReason
	cmForced := false
	if p.cmRejects > 0 {
		p.cmRejects--
		cmForced = true
	} else if len(p.rejects) > 0 {
		forced = p.rejects[0]
		p.rejects = p.rejects[1:]
	}
	enabled := p.enabled
	p.mu.Unlock()
	if cmForced {
		p.cmReject(req)
		return
	}
	guid := t.ServiceGUID()
	switch {
	case forced != 0:
		p.reject(req, &lr, forced)
	case lr.ReqITIULen < minITIULen || int(lr.ReqITIULen) > t.cfg.MaxReqSize:
		p.reject(req, &lr, srp.RejReqITIULengthTooLarge)
	case !enabled:
		p.reject(req, &lr, srp.RejInsufficientResources)
	case lr.TargetPortID.IDExt != guid || lr.TargetPortID.IOCGUID != guid:
		p.reject(req, &lr, srp.RejUnableAssociateChannel)
	case !t.allowed(lr.InitiatorPortID):
		p.reject(req, &lr, srp.RejChannelLimitReached)
	default:
		p.accept(req, &lr)
	}
}

func (p *Port) cmReject(req *sim.ConnRequest) {
	p.mu.Lock()
	p.logins.CMRejects++
	p.mu.Unlock()
	// IB_CM_REJ_CONSUMER_DEFINED without private data.
	_ = req.Reject(verbs.CMRejectConsumer, nil)
}

func (p *Port) reject(req *sim.ConnRequest, lr *srp.LoginReq, reason srp.RejReason) {
	p.mu.Lock()
	p.logins.Rejected[reason]++
	p.mu.Unlock()
	p.t.log.Debug("srptest: login rejected", "port", p.index, "initiator", lr.InitiatorPortID, "reason", reason)
	rej := srp.LoginRej{Reason: reason, Tag: lr.Tag, BufFmt: srp.BufFormatDirect | srp.BufFormatIndirect}
	var b [srp.LoginRejLen]byte
	n, _ := rej.Encode(b[:])
	_ = req.Reject(verbs.CMRejectConsumer, b[:n])
}

// accept sets up a session and answers with SRP_LOGIN_RSP.
func (p *Port) accept(req *sim.ConnRequest, lr *srp.LoginReq) {
	t := p.t
	immediate := lr.ReqFlags.ImmedRequested() && int(lr.ImmDataOffset) >= minImmDataOffset && !t.cfg.UseSRQ
	rq := t.cfg.RQSize
	s := &Session{
		t: t, port: p,
		immediate: immediate, immOffset: int(lr.ImmDataOffset), maxReq: t.cfg.MaxReqSize,
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}), started: make(chan struct{}),
		luns: make([]uint64, 0, 64),
	}
	s.info = SessionInfo{Port: p.index, Initiator: lr.InitiatorPortID, Target: lr.TargetPortID, Immediate: immediate,
		Local: req.Local.String(), Remote: req.Remote.String(), MaxITIU: t.cfg.MaxReqSize, MaxTIIU: int(lr.ReqITIULen)}
	if err := s.setup(p.dev, rq); err != nil {
		s.releaseBuffers()
		p.reject(req, lr, srp.RejInsufficientResources)
		return
	}
	// Multichannel (step 7): SINGLE terminates every other channel of the
	// same I_T nexus on this port.
	result := srp.MultiChanMaintained
	if lr.ReqFlags.MultiChan() == srp.MultiChanSingle {
		result = srp.MultiChanNoChannel
		for _, o := range p.Sessions() {
			if o.info.Initiator == lr.InitiatorPortID && o.info.Target == lr.TargetPortID {
				o.Kill()
				result = srp.MultiChanTerminated
				p.mu.Lock()
				p.logins.Terminated++
				p.mu.Unlock()
			}
		}
	}
	rsp := srp.LoginRsp{
		ReqLimDelta: uint32(rq),
		Tag:         lr.Tag,
		MaxITIULen:  uint32(t.cfg.MaxReqSize),
		MaxTIIULen:  lr.ReqITIULen,
		BufFmt:      srp.BufFormatDirect | srp.BufFormatIndirect,
		RspFlags:    srp.MakeLoginRspFlags(result, immediate),
	}
	var b [srp.LoginRspLen]byte
	n, _ := rsp.Encode(b[:])
	// Register the session before the REP goes out: the initiator's Dial
	// returns the moment Accept does, and tests look at the target then.
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		s.releaseBuffers()
		p.reject(req, lr, srp.RejInsufficientResources)
		return
	}
	t.wg.Add(1)
	t.mu.Unlock()
	t.addSession(s)
	p.mu.Lock()
	p.logins.Accepted++
	p.mu.Unlock()
	conn, err := req.Accept(b[:n], sim.ConnParams{
		SendDepth:      3*len(s.tasks) + ctlSlots,
		RecvDepth:      s.nRecv,
		MaxSendSGE:     1,
		RetryCount:     req.RetryCount,
		RNRRetry:       7,
		ResponderRes:   4,
		InitiatorDepth: 4,
	})
	if err == nil {
		s.conn = conn
		if err = s.postRecvs(); err != nil {
			_ = conn.Disconnect()
		}
	}
	close(s.started)
	if err != nil {
		t.log.Debug("srptest: accept failed", "err", err)
		p.mu.Lock()
		p.logins.Accepted--
		p.mu.Unlock()
		if s.conn != nil {
			_ = s.conn.Close()
		}
		s.releaseBuffers()
		t.removeSession(s)
		close(s.done)
		t.wg.Done()
		return
	}
	t.log.Debug("srptest: login accepted", "port", p.index, "session", s.info.ID, "initiator", lr.InitiatorPortID,
		"immediate", immediate, "multichan", result)
	go func() {
		defer t.wg.Done()
		s.run()
	}()
}

func (s SessionInfo) String() string {
	return fmt.Sprintf("session %d port %d %v", s.ID, s.Port, s.Initiator)
}
