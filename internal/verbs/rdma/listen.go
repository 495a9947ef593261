//go:build linux && cgo

package rdma

/*
#include "shim.h"
*/
import "C"

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"syscall"
)

// Listener is the passive side of RDMA/CM: test support for the lab, which
// needs a peer for the provider's own connections (the daemon itself only
// dials). It accepts or rejects each request explicitly.
type Listener struct {
	d    *Device
	cm   *cmChan
	id   *C.struct_rdma_cm_id
	addr netip.AddrPort
	buf  []byte

	closeOnce sync.Once
}

// AcceptParams are the passive side's connection parameters.
type AcceptParams struct {
	Private        []byte // REP private data, at most 196 bytes
	ResponderRes   uint8  // clamped to DeviceInfo.MaxQPRdAtom
	InitiatorDepth uint8  // clamped to DeviceInfo.MaxQPInitRd
	RNRRetry       uint8
	SendDepth      int
	RecvDepth      int
	MaxSendSGE     int
}

// Listen binds addr (an address of this device) and listens for RC
// connection requests; backlog 0 means 128.
func (d *Device) Listen(addr netip.AddrPort, backlog int) (*Listener, error) {
	a, v4, scope, err := sockAddr(addr.Addr())
	if err != nil {
		return nil, d.opErr("listen", err)
	}
	if backlog <= 0 {
		backlog = defaultBacklog
	}
	ch, err := newCMChan()
	if err != nil {
		return nil, d.opErr("listen", err)
	}
	var id *C.struct_rdma_cm_id
	if rc, err := C.rdma_create_id(ch.ch, &id, nil, C.RDMA_PS_TCP); rc != 0 {
		ch.close()
		return nil, d.opErr("create cm id", errnoOr(err, syscall.ENOMEM))
	}
	if rc := C.shim_bind_listen(id, v4, (*C.uint8_t)(&a[0]), C.uint16_t(addr.Port()), scope, C.int(backlog)); rc != 0 {
		C.rdma_destroy_id(id)
		ch.close()
		return nil, d.opErr("listen", fmt.Errorf("%v: %w", addr, negErrno(rc)))
	}
	return &Listener{d: d, cm: ch, id: id, addr: addr, buf: make([]byte, privBufLen)}, nil
}

// Addr is the listening address.
func (l *Listener) Addr() netip.AddrPort { return l.addr }

// ConnRequest is one connection request; answer it with Accept or Reject.
type ConnRequest struct {
	l       *Listener
	c       *Conn
	private []byte
	done    bool
}

// Private is the REQ private data (RDMA/CM pads it to 56 bytes).
func (r *ConnRequest) Private() []byte { return r.private }

// Next waits for the next connection request. Each request's CM id moves
// to its own event channel at once, so its later events never mix with the
// listener's.
func (l *Listener) Next(ctx context.Context) (*ConnRequest, error) {
	for {
		ev, err := l.cm.next(ctx, l.buf)
		if err != nil {
			return nil, l.d.opErr("listen", err)
		}
		if ev.kind != C.RDMA_CM_EVENT_CONNECT_REQUEST {
			l.d.log.Debug("listener event ignored", "event", ev.name(), "status", ev.status)
			continue
		}
		private := append([]byte(nil), ev.priv...)
		ch, err := newCMChan()
		if err != nil {
			_ = C.shim_reject(ev.id, nil, 0)
			C.rdma_destroy_id(ev.id)
			return nil, l.d.opErr("listen", err)
		}
		if rc, err := C.rdma_migrate_id(ev.id, ch.ch); rc != 0 {
			_ = C.shim_reject(ev.id, nil, 0)
			C.rdma_destroy_id(ev.id)
			ch.close()
			return nil, l.d.opErr("migrate cm id", errnoOr(err, syscall.EINVAL))
		}
		return &ConnRequest{l: l, c: newConn(l.d, ch, ev.id), private: private}, nil
	}
}

// Accept creates the QP and accepts with p.Private as the REP private
// data, then waits for ESTABLISHED (the initiator's RTU).
func (r *ConnRequest) Accept(ctx context.Context, p AcceptParams) (*Conn, error) {
	d := r.l.d
	if r.done {
		return nil, d.opErr("accept", fmt.Errorf("request already answered: %w", ErrBadParams))
	}
	r.done = true
	c := r.c
	fail := func(op string, err error) (*Conn, error) {
		c.destroy()
		return nil, d.opErr(op, err)
	}
	if len(p.Private) > maxRepPrivate {
		return fail("accept", fmt.Errorf("%d bytes of private data, at most %d: %w", len(p.Private), maxRepPrivate, ErrBadParams))
	}
	if got := C.shim_id_verbs(c.id); got != d.ctx {
		return fail("accept", fmt.Errorf("request arrived on %s: %w", C.GoString(C.shim_ctx_name(got)), ErrWrongDevice))
	}
	if err := c.createQP(p.SendDepth, p.RecvDepth, p.MaxSendSGE); err != nil {
		return fail("create qp", err)
	}
	cp := C.struct_shim_conn_param{
		responder_resources: C.uint8_t(clampU8(p.ResponderRes, d.info.MaxQPRdAtom)),
		initiator_depth:     C.uint8_t(clampU8(p.InitiatorDepth, d.info.MaxQPInitRd)),
		rnr_retry_count:     C.uint8_t(clampU8(p.RNRRetry, maxRetry)),
	}
	var rep [maxRepPrivate]byte
	n := copy(rep[:], p.Private)
	if err := negErrno(C.shim_accept(c.id, &cp, (*C.uint8_t)(&rep[0]), C.int(n))); err != nil {
		return fail("accept", err)
	}
	if _, err := c.expect(ctx, c.priv, C.RDMA_CM_EVENT_ESTABLISHED); err != nil {
		return fail("accept", err)
	}
	c.established()
	return c, nil
}

// Reject rejects the request with private (at most 148 bytes); the
// initiator sees REJECTED with IB CM reason 28 (consumer defined).
func (r *ConnRequest) Reject(private []byte) error {
	d := r.l.d
	if r.done {
		return d.opErr("reject", fmt.Errorf("request already answered: %w", ErrBadParams))
	}
	r.done = true
	defer r.c.destroy()
	if len(private) > maxRejPrivate {
		return d.opErr("reject", fmt.Errorf("%d bytes of private data, at most %d: %w", len(private), maxRejPrivate, ErrBadParams))
	}
	var rej [maxRejPrivate]byte
	n := copy(rej[:], private)
	if err := negErrno(C.shim_reject(r.c.id, (*C.uint8_t)(&rej[0]), C.int(n))); err != nil {
		return d.opErr("reject", err)
	}
	return nil
}

// Close stops listening and releases the CM id and its event channel.
// It must not run concurrently with Next: end Next through its context
// first.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		C.rdma_destroy_id(l.id)
		l.cm.close()
	})
	return nil
}
