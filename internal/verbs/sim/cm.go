package sim

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
)

// Private data sizes of RDMA/CM over IP: the IB CM field sizes (REQ 92,
// REP 196, REJ 148) minus the 36-byte CMA header on the REQ. Private data
// arrives padded with zeros to these sizes, as on real RDMA/CM, so decoders
// must go by the opcode byte, not the length.
const (
	ReqPrivateLen = 56
	RepPrivateLen = 196
	RejPrivateLen = 148
)

// RejectInvalidServiceID is the CM reject reason when nothing listens on
// the destination (IB_CM_REJ_INVALID_SERVICE_ID).
const RejectInvalidServiceID = 8

// listenBacklog is how many unanswered requests a listener queues (srpt's
// rdma_listen backlog); a request beyond it is dropped and times out.
const listenBacklog = 128

// Listener is a passive CM endpoint on a device handle: the target side.
type Listener struct {
	d      *Device
	addr   netip.AddrPort
	reqs   chan *ConnRequest
	closed bool
}

// Listen listens for connection requests on addr. An unspecified address
// (0.0.0.0 or ::, as srpt binds) listens on every address of the device.
func (d *Device) Listen(addr netip.AddrPort) (*Listener, error) {
	d.f.mu.Lock()
	defer d.f.mu.Unlock()
	op := func(err error) error { return &verbs.OpError{Op: "listen", Device: d.hca.name, Err: err} }
	if d.closed {
		return nil, op(verbs.ErrClosed)
	}
	a := addr.Addr().Unmap()
	if !addr.IsValid() || addr.Port() == 0 {
		return nil, op(fmt.Errorf("address %v: %w", addr, ErrBadConfig))
	}
	if !a.IsUnspecified() && !slices.ContainsFunc(d.hca.ports, func(p *port) bool { return p.hasAddr(a) }) {
		return nil, op(fmt.Errorf("address %v: %w", addr, verbs.ErrNotFound))
	}
	for _, h := range d.hca.handles {
		for _, l := range h.listeners {
			la := l.addr.Addr()
			if l.addr.Port() == addr.Port() && (la == a || la.IsUnspecified() || a.IsUnspecified()) {
				return nil, op(fmt.Errorf("address %v: %w", addr, ErrAddrInUse))
			}
		}
	}
	l := &Listener{d: d, addr: netip.AddrPortFrom(a, addr.Port()), reqs: make(chan *ConnRequest, listenBacklog)}
	d.listeners = append(d.listeners, l)
	return l, nil
}

// Addr is the address listened on.
func (l *Listener) Addr() netip.AddrPort { return l.addr }

// Requests delivers incoming connection requests. It is closed by Close.
func (l *Listener) Requests() <-chan *ConnRequest { return l.reqs }

// Close stops listening; queued requests are rejected as if nothing had
// listened. Idempotent.
func (l *Listener) Close() error {
	l.d.f.mu.Lock()
	defer l.d.f.mu.Unlock()
	l.closeLocked()
	return nil
}

func (l *Listener) closeLocked() {
	if l.closed {
		return
	}
	l.closed = true
	close(l.reqs)
	for r := range l.reqs {
		r.answer(nil, refused())
	}
	l.d.listeners = slices.DeleteFunc(l.d.listeners, func(x *Listener) bool { return x == l })
}

func (l *Listener) matches(dst netip.AddrPort) bool {
	return !l.closed && l.addr.Port() == dst.Port() && (l.addr.Addr().IsUnspecified() || l.addr.Addr() == dst.Addr())
}

// refused is the error of a connect to an address nobody listens on.
func refused() error {
	return fmt.Errorf("%w: %w", verbs.ErrConnRefused,
		&verbs.RejectError{Reason: RejectInvalidServiceID, Private: make([]byte, RejPrivateLen)})
}

// ConnRequest is one incoming connection request (RDMA_CM_EVENT_CONNECT_REQUEST).
// Answer it exactly once with Accept or Reject.
type ConnRequest struct {
	// Private is the REQ private data, zero-padded to ReqPrivateLen.
	Private []byte
	// Local is the address the request reached; Remote the initiator's.
	Local, Remote netip.AddrPort
	// Port is the local port number the request arrived on.
	Port uint8
	// The initiator's connection parameters.
	ResponderRes, InitiatorDepth, RetryCount, RNRRetry uint8

	l         *Listener
	port      *port
	initiator *Conn
	answered  bool
	done      chan struct{}
	rep       []byte
	err       error
}

// answer records the outcome for the waiting Dial. Caller holds the lock.
func (r *ConnRequest) answer(rep []byte, err error) bool {
	if r.answered {
		return false
	}
	r.answered = true
	r.rep, r.err = rep, err
	close(r.done)
	return true
}

func pad(b []byte, n int) []byte {
	out := make([]byte, n)
	copy(out, b)
	return out
}

// Accept accepts the request with private as the REP private data (at most
// RepPrivateLen bytes) and returns the target's end of the connection,
// already established: the initiator's Dial returns at the same moment.
// If the REP cannot cross the link (down, blackhole) Accept fails and the
// initiator times out.
func (r *ConnRequest) Accept(private []byte, p ConnParams) (*Conn, error) {
	f := r.l.d.f
	f.mu.Lock()
	defer f.mu.Unlock()
	d := r.l.d
	op := func(err error) error { return &verbs.OpError{Op: "accept", Device: d.hca.name, Err: err} }
	switch {
	case r.answered:
		return nil, op(ErrAnswered)
	case len(private) > RepPrivateLen:
		return nil, op(fmt.Errorf("%d bytes of private data: %w", len(private), ErrBadConfig))
	case d.closed || r.initiator.dev.closed:
		return nil, op(verbs.ErrClosed)
	case !r.port.link.open():
		return nil, op(verbs.ErrUnreachable)
	}
	p.ResponderRes = min(p.ResponderRes, uint8(min(d.hca.info.MaxQPRdAtom, 255)))
	p.InitiatorDepth = min(p.InitiatorDepth, uint8(min(d.hca.info.MaxQPInitRd, 255)))
	tc, err := f.newConn(d, r.port, p)
	if err != nil {
		return nil, op(err)
	}
	ic := r.initiator
	tc.local, tc.remote = r.Local, r.Remote
	tc.peer, ic.peer = ic, tc
	ic.attach()
	tc.attach()
	r.answer(pad(private, RepPrivateLen), nil)
	return tc, nil
}

// Reject rejects the request with a CM reason (verbs.CMRejectConsumer for an
// SRP_LOGIN_REJ) and private data of at most RejPrivateLen bytes; the
// initiator's Dial returns a *verbs.RejectError carrying them.
func (r *ConnRequest) Reject(reason int, private []byte) error {
	f := r.l.d.f
	f.mu.Lock()
	defer f.mu.Unlock()
	op := func(err error) error { return &verbs.OpError{Op: "reject", Device: r.l.d.hca.name, Err: err} }
	switch {
	case r.answered:
		return op(ErrAnswered)
	case len(private) > RejPrivateLen:
		return op(fmt.Errorf("%d bytes of private data: %w", len(private), ErrBadConfig))
	case !r.port.link.open():
		return op(verbs.ErrUnreachable)
	}
	r.answer(nil, &verbs.RejectError{Reason: reason, Private: pad(private, RejPrivateLen)})
	return nil
}

// Dial connects to a listener; see DialConn.
func (d *Device) Dial(ctx context.Context, p verbs.DialParams) (verbs.Conn, []byte, error) {
	c, rep, err := d.DialConn(ctx, p)
	if err != nil {
		return nil, nil, err
	}
	return c, rep, nil
}

// DialConn routes from p.Src (an address of one of this device's ports)
// over that port's link to the port holding p.Dst, and sends a REQ to the
// listener there. It returns when the target accepts (the connection and
// the REP private data, zero-padded to RepPrivateLen) or rejects
// (*verbs.RejectError), or fails:
//   - the source address is not on this device: verbs.ErrRouteResolve;
//   - the port is down or Dst is not on its link: verbs.ErrUnreachable, at once;
//   - nothing listens on Dst: verbs.ErrConnRefused with a *verbs.RejectError
//     of reason RejectInvalidServiceID;
//   - the link is blackholed or the target does not answer within
//     Config.CMTimeout: verbs.ErrTimeout; ctx ends the wait earlier.
//
// Connection setup takes no simulated time: link latency and loss apply
// to the data path only.
func (d *Device) DialConn(ctx context.Context, p verbs.DialParams) (*Conn, []byte, error) {
	f := d.f
	op := func(o string, err error) error { return &verbs.OpError{Op: o, Device: d.hca.name, Err: err} }
	if len(p.Private) > ReqPrivateLen {
		return nil, nil, op("connect", fmt.Errorf("%d bytes of private data: %w", len(p.Private), ErrBadConfig))
	}
	if !p.Src.IsValid() || !p.Dst.IsValid() {
		return nil, nil, op("resolve address", fmt.Errorf("source %v, destination %v: %w", p.Src, p.Dst, verbs.ErrRouteResolve))
	}
	src, dst := p.Src.Unmap(), netip.AddrPortFrom(p.Dst.Addr().Unmap(), p.Dst.Port())

	f.mu.Lock()
	if d.closed {
		f.mu.Unlock()
		return nil, nil, op("connect", verbs.ErrClosed)
	}
	i := slices.IndexFunc(d.hca.ports, func(q *port) bool { return q.hasAddr(src) })
	if i < 0 {
		f.mu.Unlock()
		return nil, nil, op("resolve address", fmt.Errorf("source %v not on device: %w", src, verbs.ErrRouteResolve))
	}
	lp := d.hca.ports[i]
	if !lp.active() {
		f.mu.Unlock()
		return nil, nil, op("resolve address", fmt.Errorf("port %d down: %w", lp.num, verbs.ErrUnreachable))
	}
	i = slices.IndexFunc(lp.link.ports, func(q *port) bool { return q != lp && q.active() && q.hasAddr(dst.Addr()) })
	if i < 0 {
		f.mu.Unlock()
		return nil, nil, op("resolve address", fmt.Errorf("%v not on %v: %w", dst.Addr(), lp.link, verbs.ErrUnreachable))
	}
	rp := lp.link.ports[i]
	c, err := f.newConn(d, lp, ConnParams{
		SendDepth:      p.SendDepth,
		RecvDepth:      p.RecvDepth,
		MaxSendSGE:     p.MaxSendSGE,
		RetryCount:     p.RetryCount,
		RNRRetry:       p.RNRRetry,
		AckTimeout:     p.AckTimeout,
		ResponderRes:   min(p.ResponderRes, uint8(min(d.hca.info.MaxQPRdAtom, 255))),
		InitiatorDepth: min(p.InitiatorDepth, uint8(min(d.hca.info.MaxQPInitRd, 255))),
	})
	if err != nil {
		f.mu.Unlock()
		return nil, nil, op("create qp", err)
	}
	c.local = netip.AddrPortFrom(src, f.nextSrc)
	c.remote = dst
	if f.nextSrc++; f.nextSrc == 0 {
		f.nextSrc = ephemeralPortBase
	}
	req := &ConnRequest{
		Private:        pad(p.Private, ReqPrivateLen),
		Local:          dst,
		Remote:         c.local,
		Port:           rp.num,
		ResponderRes:   p.ResponderRes,
		InitiatorDepth: p.InitiatorDepth,
		RetryCount:     p.RetryCount,
		RNRRetry:       p.RNRRetry,
		port:           rp,
		initiator:      c,
		done:           make(chan struct{}),
	}
	if lp.link.open() { // a blackhole swallows the REQ: only the timeout answers
		var l *Listener
		for _, h := range rp.hca.handles {
			if j := slices.IndexFunc(h.listeners, func(x *Listener) bool { return x.matches(dst) }); j >= 0 {
				l = h.listeners[j]
				break
			}
		}
		if l == nil {
			f.mu.Unlock()
			return nil, nil, op("connect", refused())
		}
		req.l = l
		select {
		case l.reqs <- req:
		default: // backlog full: the REQ is dropped
		}
	}
	f.mu.Unlock()

	abandon := func(err error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		req.answer(nil, err)
	}
	timer := f.clk.AfterFunc(f.cfg.CMTimeout, func() { abandon(verbs.ErrTimeout) })
	select {
	case <-req.done:
	case <-ctx.Done():
		abandon(ctx.Err())
	}
	timer.Stop()
	f.mu.Lock()
	rep, err := req.rep, req.err
	f.mu.Unlock()
	if err != nil {
		return nil, nil, op("connect", err)
	}
	return c, rep, nil
}
