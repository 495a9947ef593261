package sim

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/srp/mad"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
)

// Well-known management addressing (IBA 13.5.1; srpd.h).
const (
	// GSIQPN is QP1, the general services interface every SA and DM
	// agent listens on.
	GSIQPN = 1
	// GSIQKey is QP1's well-known Q_Key.
	GSIQKey = 0x80010000
	// reportBuffer is how many unsolicited Reports a MAD port queues for
	// Recv; more are dropped and counted (Fabric.DroppedReports).
	reportBuffer = 64
)

// madState is the fabric's management plane: subnet managers (one per
// link), DM agents (one per target port) and open MAD ports. Guarded by
// the fabric lock.
type madState struct {
	sms     map[*Link]*SubnetManager
	dms     map[*port]*DMAgent
	ports   []*madPort
	dropped uint64
}

// madPort is a verbs.MADPort on one IB port of a device handle. It answers
// Send synchronously from the SA or DM agent the MAD is addressed to (the
// fabric has no MAD latency), or times out on the fabric clock when nobody
// answers; Recv hands out the trap Reports the SA sent to it.
type madPort struct {
	d       *Device
	p       *port
	reports chan report
	closed  bool
	done    chan struct{}
}

type report struct {
	mad  []byte
	from verbs.MADAddr
}

var _ verbs.MADPort = (*madPort)(nil)

// MAD opens the management datagram port of port n: InfiniBand ports only,
// as real MAD agents (verbs.ErrNotSupported on RoCE).
func (d *Device) MAD(n uint8) (verbs.MADPort, error) {
	d.f.mu.Lock()
	defer d.f.mu.Unlock()
	op := func(err error) error { return &verbs.OpError{Op: "open mad port", Device: d.hca.name, Err: err} }
	if d.closed {
		return nil, op(verbs.ErrClosed)
	}
	p, err := d.port("open mad port", n)
	if err != nil {
		return nil, err
	}
	if p.cfg.LinkLayer != verbs.LinkInfiniBand {
		return nil, op(fmt.Errorf("port %d is %v: %w", n, p.cfg.LinkLayer, verbs.ErrNotSupported))
	}
	m := &madPort{d: d, p: p, reports: make(chan report, reportBuffer), done: make(chan struct{})}
	d.f.mad.ports = append(d.f.mad.ports, m)
	return m, nil
}

// DroppedReports reports how many trap Reports were dropped because a MAD
// port's queue was full.
func (f *Fabric) DroppedReports() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mad.dropped
}

func (m *madPort) opErr(op string, err error) error {
	return &verbs.OpError{Op: op, Device: m.d.hca.name, Err: err}
}

// Send delivers mad to the SA (DLID = the link's SM LID, class SA) or to
// the DM agent of the port with DLID (class DM) and returns its answer.
// The P_Key must be in this port's table (else verbs.ErrNotFound); a DM
// MAD also needs the P_Key in the target port's table, one of the two a
// full member, or the agent never sees it. A MAD nobody answers — port
// out of service, P_Key not shared, link blackholed, no agent — times out
// after timeout on the fabric clock (verbs.ErrTimeout). A response MAD is
// consumed by its addressee and returns (nil, nil).
func (m *madPort) Send(ctx context.Context, b []byte, to verbs.MADAddr, timeout time.Duration) ([]byte, error) {
	f := m.d.f
	op := "send mad"
	if len(b) < mad.Size {
		return nil, m.opErr(op, fmt.Errorf("%d bytes: %w", len(b), verbs.ErrInvalidWR))
	}
	h, err := mad.DecodeHeader(b)
	if err != nil {
		return nil, m.opErr(op, fmt.Errorf("%w: %w", verbs.ErrInvalidWR, err))
	}
	f.mu.Lock()
	switch {
	case m.closed:
		f.mu.Unlock()
		return nil, m.opErr(op, verbs.ErrClosed)
	case !m.p.active():
		f.mu.Unlock()
		return nil, m.opErr(op, fmt.Errorf("port %d down: %w", m.p.num, verbs.ErrUnreachable))
	case !slices.Contains(m.p.pkeys, to.PKey):
		f.mu.Unlock()
		return nil, m.opErr(op, fmt.Errorf("pkey %#04x not in the table of port %d: %w", to.PKey, m.p.num, verbs.ErrNotFound))
	}
	var resp []byte
	answered := false
	if m.p.link.open() && to.QPN == GSIQPN {
		resp, answered = f.mad.dispatch(m, h, b, to)
	}
	f.mu.Unlock()
	if h.Method.IsResponse() {
		return nil, nil
	}
	if answered {
		return resp, nil
	}
	// Nobody answers: the requester's MAD layer gives up after timeout.
	expired := make(chan struct{})
	t := f.clk.AfterFunc(timeout, func() { close(expired) })
	defer t.Stop()
	select {
	case <-expired:
		return nil, m.opErr(op, fmt.Errorf("transaction %#x to LID %d: %w", h.TID, to.LID, verbs.ErrTimeout))
	case <-ctx.Done():
		return nil, m.opErr(op, ctx.Err())
	case <-m.done:
		return nil, m.opErr(op, verbs.ErrClosed)
	}
}

// dispatch hands a MAD to its addressee. Caller holds the fabric lock.
func (s *madState) dispatch(from *madPort, h mad.Header, b []byte, to verbs.MADAddr) ([]byte, bool) {
	link := from.p.link
	switch h.Class {
	case mad.ClassSA:
		sm := s.sms[link]
		if sm == nil || to.LID != sm.cfg.LID || sm.outOfService[from.p] {
			return nil, false
		}
		if h.Method.IsResponse() {
			sm.consumeResponse(h)
			return nil, true
		}
		return sm.handle(from, h, b), true
	case mad.ClassDM:
		for _, q := range link.ports {
			dm := s.dms[q]
			if q == from.p || dm == nil || q.cfg.LID != to.LID || !q.active() {
				continue
			}
			if sm := s.sms[link]; sm != nil && (sm.outOfService[q] || sm.outOfService[from.p]) {
				return nil, false
			}
			if !pkeyShared(from.p.pkeys, q.pkeys, to.PKey) {
				return nil, false
			}
			return dm.handle(h, b), true
		}
	}
	return nil, false
}

// P_Key layout: bit 15 is full membership, bits 14–0 the partition.
const (
	pkeyFullMember = 0x8000
	pkeyBase       = 0x7fff
)

// pkeyShared reports whether a packet sent with pkey (from a port whose
// table a holds it) is accepted by a port with table b: b must hold the
// same partition and at least one side must be a full member (IBA 10.9.3).
func pkeyShared(a, b []uint16, pkey uint16) bool {
	if pkey&pkeyBase == 0 || !slices.Contains(a, pkey) {
		return false
	}
	for _, k := range b {
		if k&pkeyBase == pkey&pkeyBase && (k|pkey)&pkeyFullMember != 0 {
			return true
		}
	}
	return false
}

// Recv returns the next trap Report the SA sent to this port.
func (m *madPort) Recv(ctx context.Context) ([]byte, verbs.MADAddr, error) {
	select {
	case r := <-m.reports:
		return r.mad, r.from, nil
	case <-ctx.Done():
		return nil, verbs.MADAddr{}, m.opErr("receive mad", ctx.Err())
	case <-m.done:
		return nil, verbs.MADAddr{}, m.opErr("receive mad", verbs.ErrClosed)
	}
}

// Close closes the port: pending Send and Recv return verbs.ErrClosed and
// its trap subscriptions lapse. Idempotent.
func (m *madPort) Close() error {
	m.d.f.mu.Lock()
	defer m.d.f.mu.Unlock()
	m.closeLocked()
	return nil
}

func (m *madPort) closeLocked() {
	if m.closed {
		return
	}
	m.closed = true
	close(m.done)
	s := &m.d.f.mad
	s.ports = slices.DeleteFunc(s.ports, func(x *madPort) bool { return x == m })
	for _, sm := range s.sms {
		sm.dropSubscriber(m)
	}
}

// closeMADLocked closes every MAD port of handle d (Device.Close).
func (d *Device) closeMADLocked() {
	for _, m := range slices.Clone(d.f.mad.ports) {
		if m.d == d {
			m.closeLocked()
		}
	}
}

// deliver queues a Report for Recv without blocking; a full queue drops it.
// Caller holds the fabric lock.
func (m *madPort) deliver(r report) {
	if m.closed {
		return
	}
	select {
	case m.reports <- r:
	default:
		m.d.f.mad.dropped++
	}
}

// portGUID is the interface id of a port's first GID (its port GUID).
func (p *port) portGUID() uint64 {
	if len(p.gids) == 0 {
		return 0
	}
	return binary.BigEndian.Uint64(p.gids[0][8:])
}

// portByRef finds a port. Caller holds the fabric lock.
func (f *Fabric) portByRef(ref PortRef) (*port, error) {
	h := f.hca(ref.Device)
	if h == nil || ref.Port == 0 || int(ref.Port) > len(h.ports) {
		return nil, fmt.Errorf("port %s: %w", ref, verbs.ErrNoDevice)
	}
	return h.ports[ref.Port-1], nil
}

// emitPort sends an async event to every handle of p's device.
func (p *port) emit(kind verbs.AsyncEventKind, now time.Time) {
	for _, d := range p.hca.handles {
		d.emit(verbs.AsyncEvent{Kind: kind, Device: p.hca.name, Port: p.num, Time: now})
	}
}
