//go:build linux && cgo

package rdma

/*
#include "shim.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
)

// Limits and defaults of connection setup.
const (
	// maxReqPrivate is the REQ private data RDMA/CM carries with an IP
	// address family: 92 bytes of IB CM REQ minus the 36-byte CMA header
	// (research/srp-protocol.md §1.12).
	maxReqPrivate = 56
	// maxRepPrivate bounds the private data of an accept (IB CM REP: 196
	// bytes; RDMA/CM puts no header in front of it).
	maxRepPrivate = 196
	// maxRejPrivate bounds the private data of a reject (IB CM REJ: 148).
	maxRejPrivate = 148
	// privBufLen holds any CM event's private data (REP 196 is the largest).
	privBufLen = 256
	// defaultResolveTimeout is the kernel initiator's SRP_PATH_REC_TIMEOUT_MS.
	defaultResolveTimeout = time.Second
	// maxRetry is the largest retry_count / rnr_retry_count (3-bit fields;
	// 7 means infinite for RNR).
	maxRetry = 7
	// defaultBacklog is Listen's backlog when the caller passes 0 (srpt's).
	defaultBacklog = 128
)

// cmEvent is a copy of one rdma_cm_event (taken and acked in C).
type cmEvent struct {
	kind     C.int
	status   int
	id       *C.struct_rdma_cm_id
	listenID *C.struct_rdma_cm_id
	priv     []byte // aliases the buffer passed to next
}

func (e *cmEvent) name() string { return C.GoString(C.rdma_event_str(uint32(e.kind))) }

// cmChan is an RDMA/CM event channel with a non-blocking fd and an
// eventfd that interrupts a wait (context cancellation, Close).
type cmChan struct {
	ch   *C.struct_rdma_event_channel
	fd   int
	wake int
}

func newCMChan() (*cmChan, error) {
	ch, err := C.rdma_create_event_channel()
	if ch == nil {
		return nil, fmt.Errorf("rdma_create_event_channel: %w", errnoOr(err, syscall.ENODEV))
	}
	c := &cmChan{ch: ch, fd: int(C.shim_channel_fd(ch)), wake: -1}
	if err := unix.SetNonblock(c.fd, true); err != nil {
		c.close()
		return nil, err
	}
	w, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		c.close()
		return nil, err
	}
	c.wake = w
	return c, nil
}

// next waits for the channel's next event, copying its private data into
// buf. It returns ctx's error when ctx ends first and verbs.ErrClosed when
// the channel's wake eventfd was signalled.
func (c *cmChan) next(ctx context.Context, buf []byte) (cmEvent, error) {
	stop := context.AfterFunc(ctx, func() { wakeUp(c.wake) })
	defer stop()
	for {
		var ev C.struct_shim_cm_event
		rc := C.shim_get_cm_event(c.ch, &ev, (*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(buf))), C.int(len(buf)))
		if rc == 0 {
			return cmEvent{
				kind: ev.event, status: int(ev.status), id: ev.id, listenID: ev.listen_id,
				priv: buf[:int(ev.private_len)],
			}, nil
		}
		if err := negErrno(rc); !errors.Is(err, syscall.EAGAIN) {
			return cmEvent{}, fmt.Errorf("rdma_get_cm_event: %w", err)
		}
		ready, err := waitReadable(c.fd, c.wake)
		if err != nil {
			return cmEvent{}, err
		}
		if !ready {
			if err := ctx.Err(); err != nil {
				// Reset the counter: the channel lives on (Close uses it).
				var b [8]byte
				_, _ = unix.Read(c.wake, b[:])
				return cmEvent{}, err
			}
			return cmEvent{}, verbs.ErrClosed
		}
	}
}

func (c *cmChan) close() {
	if c.wake >= 0 {
		_ = unix.Close(c.wake)
		c.wake = -1
	}
	if c.ch != nil {
		C.rdma_destroy_event_channel(c.ch)
		c.ch = nil
	}
}

// eventError maps a CM event that ended a setup step to the seam's errors.
func eventError(ev *cmEvent) error {
	var err error
	switch ev.kind {
	case C.RDMA_CM_EVENT_REJECTED:
		rej := &verbs.RejectError{Reason: ev.status, Private: append([]byte(nil), ev.priv...)}
		if ev.status == rejectInvalidServiceID {
			err = fmt.Errorf("%w: %w", verbs.ErrConnRefused, rej)
		} else {
			err = rej
		}
	case C.RDMA_CM_EVENT_ADDR_ERROR:
		err = verbs.ErrUnreachable
	case C.RDMA_CM_EVENT_ROUTE_ERROR:
		err = verbs.ErrRouteResolve
	case C.RDMA_CM_EVENT_UNREACHABLE, C.RDMA_CM_EVENT_CONNECT_ERROR:
		if ev.status == -int(syscall.ETIMEDOUT) {
			err = verbs.ErrTimeout
		} else {
			err = verbs.ErrUnreachable
		}
	case C.RDMA_CM_EVENT_DEVICE_REMOVAL:
		err = verbs.ErrNoDevice
	default:
		err = ErrUnexpectedEvent
	}
	return &CMEventError{Event: ev.name(), Status: ev.status, Err: err}
}

// rejectInvalidServiceID is the IB CM reject reason when nothing listens on
// the destination (INVALID_SERVICE_ID).
const rejectInvalidServiceID = 8

// sockAddr splits an address into the 16 bytes, family and scope the shims
// take. IPv4-mapped IPv6 addresses count as IPv4.
func sockAddr(a netip.Addr) (b [16]byte, v4 C.int, scope C.uint32_t, err error) {
	if !a.IsValid() {
		return b, 0, 0, fmt.Errorf("address not set: %w", ErrBadParams)
	}
	a = a.Unmap()
	if a.Is4() {
		v4 = 1
	} else if z := a.Zone(); z != "" {
		ifi, zerr := netInterfaceIndex(z)
		if zerr != nil {
			return b, 0, 0, zerr
		}
		scope = C.uint32_t(ifi)
	}
	return a.As16(), v4, scope, nil
}

// addrPort converts what shim_addr returned into a netip.AddrPort.
func addrPort(fam C.int, b *[16]C.uint8_t, port C.uint16_t) netip.AddrPort {
	var raw [16]byte
	for i := range raw {
		raw[i] = byte(b[i])
	}
	a := netip.AddrFrom16(raw)
	if fam == 4 {
		a = a.Unmap()
	} else if fam != 6 {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(a, uint16(port))
}

// clampU8 bounds v to limit (limits come from the device as int).
func clampU8(v uint8, limit int) uint8 {
	if limit < 0 {
		limit = 0
	}
	if int(v) > limit {
		return uint8(limit)
	}
	return v
}

// DialConn is Dial returning the concrete type. The steps are those of the
// kernel initiator (research/srp-protocol.md §2.1): create the CM id on a
// fresh event channel, set the ACK timeout option, resolve the address
// from the bound source p.Src (two endpoints in one kernel short-circuit
// over loopback otherwise), check that the route uses this device, resolve
// the route, create CQ, completion channel and QP, connect with the
// private data and the clamped responder resources / initiator depth,
// and wait for ESTABLISHED (REP private data returned) or the event that
// ends it. ctx ends any wait; everything created so far is destroyed.
func (d *Device) DialConn(ctx context.Context, p verbs.DialParams) (*Conn, []byte, error) {
	op := func(o string, err error) error { return d.opErr(o, err) }
	if len(p.Private) > maxReqPrivate {
		return nil, nil, op("connect", fmt.Errorf("%d bytes of private data, at most %d: %w", len(p.Private), maxReqPrivate, ErrBadParams))
	}
	if p.SendDepth < 0 || p.RecvDepth < 0 || p.SendDepth+p.RecvDepth == 0 {
		return nil, nil, op("connect", fmt.Errorf("send depth %d, receive depth %d: %w", p.SendDepth, p.RecvDepth, ErrBadParams))
	}
	src, srcV4, scope, err := sockAddr(p.Src)
	if err != nil {
		return nil, nil, op("resolve address", fmt.Errorf("source: %w", err))
	}
	dst, dstV4, dscope, err := sockAddr(p.Dst.Addr())
	if err != nil {
		return nil, nil, op("resolve address", fmt.Errorf("destination: %w", err))
	}
	if srcV4 != dstV4 {
		return nil, nil, op("resolve address", fmt.Errorf("source %v and destination %v differ in family: %w", p.Src, p.Dst, ErrBadParams))
	}
	if scope == 0 {
		scope = dscope
	}
	if d.isClosed() {
		return nil, nil, op("connect", verbs.ErrClosed)
	}
	if d.own {
		return nil, nil, op("connect", ErrNoRDMACM)
	}
	timeout := p.ResolveTimeout
	if timeout <= 0 {
		timeout = defaultResolveTimeout
	}

	ch, err := newCMChan()
	if err != nil {
		return nil, nil, op("connect", err)
	}
	var id *C.struct_rdma_cm_id
	if rc, err := C.rdma_create_id(ch.ch, &id, nil, C.RDMA_PS_TCP); rc != 0 {
		ch.close()
		return nil, nil, op("create cm id", errnoOr(err, syscall.ENOMEM))
	}
	c := newConn(d, ch, id)
	fail := func(o string, err error) (*Conn, []byte, error) {
		c.destroy()
		return nil, nil, op(o, err)
	}
	if p.AckTimeout > 0 {
		if err := negErrno(C.shim_set_ack_timeout(id, C.uint8_t(p.AckTimeout))); err != nil {
			return fail("set ack timeout", err)
		}
	}
	buf := c.priv[:]
	if rc := C.shim_resolve_addr(id, dstV4, (*C.uint8_t)(&src[0]), (*C.uint8_t)(&dst[0]), C.uint16_t(p.Dst.Port()),
		scope, C.int(timeout/time.Millisecond)); rc != 0 {
		return fail("resolve address", fmt.Errorf("%v -> %v: %w: %w", p.Src, p.Dst, verbs.ErrRouteResolve, negErrno(rc)))
	}
	if _, err := c.expect(ctx, buf, C.RDMA_CM_EVENT_ADDR_RESOLVED); err != nil {
		return fail("resolve address", fmt.Errorf("%v -> %v: %w", p.Src, p.Dst, err))
	}
	if got := C.shim_id_verbs(id); got != d.ctx {
		other := "none"
		if got != nil {
			other = C.GoString(C.shim_ctx_name(got))
		}
		return fail("resolve address", fmt.Errorf("%v -> %v resolved through %s, not %s: %w", p.Src, p.Dst, other, d.name, ErrWrongDevice))
	}
	if rc, err := C.rdma_resolve_route(id, C.int(timeout/time.Millisecond)); rc != 0 {
		return fail("resolve route", fmt.Errorf("%w: %w", verbs.ErrRouteResolve, errnoOr(err, syscall.EINVAL)))
	}
	if _, err := c.expect(ctx, buf, C.RDMA_CM_EVENT_ROUTE_RESOLVED); err != nil {
		return fail("resolve route", err)
	}
	if err := c.createQP(p.SendDepth, p.RecvDepth, p.MaxSendSGE); err != nil {
		return fail("create qp", err)
	}
	cp := C.struct_shim_conn_param{
		responder_resources: C.uint8_t(clampU8(p.ResponderRes, d.info.MaxQPRdAtom)),
		initiator_depth:     C.uint8_t(clampU8(p.InitiatorDepth, d.info.MaxQPInitRd)),
		retry_count:         C.uint8_t(clampU8(p.RetryCount, maxRetry)),
		rnr_retry_count:     C.uint8_t(clampU8(p.RNRRetry, maxRetry)),
	}
	var req [maxReqPrivate]byte
	n := copy(req[:], p.Private)
	if err := negErrno(C.shim_connect(id, &cp, (*C.uint8_t)(&req[0]), C.int(n))); err != nil {
		return fail("connect", err)
	}
	ev, err := c.expect(ctx, buf, C.RDMA_CM_EVENT_ESTABLISHED)
	if err != nil {
		return fail("connect", fmt.Errorf("%v -> %v: %w", p.Src, p.Dst, err))
	}
	rep := append([]byte(nil), ev.priv...)
	c.established()
	return c, rep, nil
}

// expect waits for the next event of the connection's channel and returns
// it when it is want; any other event is returned as an error.
func (c *Conn) expect(ctx context.Context, buf []byte, want C.int) (cmEvent, error) {
	ev, err := c.cm.next(ctx, buf)
	if err != nil {
		return ev, err
	}
	if ev.kind != want {
		return ev, eventError(&ev)
	}
	return ev, nil
}

// netInterfaceIndex resolves an IPv6 zone (interface name or number).
func netInterfaceIndex(zone string) (int, error) {
	if i, err := strconv.Atoi(zone); err == nil {
		return i, nil
	}
	ifi, err := net.InterfaceByName(zone)
	if err != nil {
		return 0, fmt.Errorf("zone %q: %w", zone, err)
	}
	return ifi.Index, nil
}
