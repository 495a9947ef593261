//go:build linux && cgo

package rdma

/*
#include "shim.h"
*/
import "C"

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
)

// eventBuffer is the capacity of a device's async event channel; events
// past it are dropped, logged and counted (DroppedEvents).
const eventBuffer = 64

// Device is one opened RDMA device: an ibv_context (librdmacm's own, see
// Fabric.Open), one protection domain for every buffer and QP of this
// handle, and a goroutine that reads the context's async events.
//
// Open each device once per process: the async events of a context are
// read by one handle's goroutine, so a second handle would steal some.
type Device struct {
	log    *slog.Logger
	name   string
	info   verbs.DeviceInfo
	ctx    *C.struct_ibv_context
	pd     *C.struct_ibv_pd
	cmList **C.struct_ibv_context // rdma_get_devices list holding ctx open; nil when own
	own    bool                   // ctx came from ibv_open_device: close it ourselves

	events  chan verbs.AsyncEvent
	wake    int           // eventfd that stops the async reader
	done    chan struct{} // closed when the async reader returned
	dropped atomic.Uint64

	mu     sync.Mutex
	closed bool
	parked []parkedID // CM ids of connections closed while their port was down
}

// parkedID is the RDMA/CM id (and its event channel) of a connection that
// ended while its port was not active. Destroying it then would send a CM
// message (DREQ or REJ) that finds no route, and soft-RoCE (rxe) answers a
// failed route lookup on its GSI QP by moving QP1 to ERR for good: no CM
// message leaves the device again and no later login on it can succeed
// (seen on 6.12 after a link down: `rdma res show qp` lists the GSI QP in
// ERR, every REQ after the link came back went unanswered). The id is
// destroyed when the port is active again, or at Close.
type parkedID struct {
	id   *C.struct_rdma_cm_id
	ch   *cmChan
	port uint8
}

// parkedRetry paces the release of parked ids whose port is active again
// but whose netdev is not up yet.
const parkedRetry = 250 * time.Millisecond

var _ verbs.Device = (*Device)(nil)

func newDevice(log *slog.Logger, name string, ctx *C.struct_ibv_context, cmList **C.struct_ibv_context, own bool) (*Device, error) {
	release := func() {
		if own {
			C.ibv_close_device(ctx)
		} else {
			C.rdma_free_devices(cmList)
		}
	}
	info, err := queryDevice(ctx, name)
	if err != nil {
		release()
		return nil, err
	}
	pd, perr := C.ibv_alloc_pd(ctx)
	if pd == nil {
		release()
		return nil, &verbs.OpError{Op: "alloc pd", Device: name, Err: errnoOr(perr, syscall.ENOMEM)}
	}
	fd := int(C.shim_ctx_async_fd(ctx))
	if err := unix.SetNonblock(fd, true); err != nil {
		C.ibv_dealloc_pd(pd)
		release()
		return nil, &verbs.OpError{Op: "async fd", Device: name, Err: err}
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		C.ibv_dealloc_pd(pd)
		release()
		return nil, &verbs.OpError{Op: "eventfd", Device: name, Err: err}
	}
	d := &Device{
		log: log.With("device", name), name: name, info: info, ctx: ctx, pd: pd, cmList: cmList, own: own,
		events: make(chan verbs.AsyncEvent, eventBuffer), wake: wake, done: make(chan struct{}),
	}
	go d.readEvents(fd)
	return d, nil
}

// Name is the device's name.
func (d *Device) Name() string { return d.name }

// Info returns the device's identity and limits, queried at Open.
func (d *Device) Info() verbs.DeviceInfo { return d.info }

// DroppedEvents counts async events dropped because Events was full.
func (d *Device) DroppedEvents() uint64 { return d.dropped.Load() }

func (d *Device) opErr(op string, err error) error {
	return &verbs.OpError{Op: op, Device: d.name, Err: err}
}

// mtuBytes maps ibv_mtu to bytes.
func mtuBytes(m int) int {
	switch m {
	case C.IBV_MTU_256:
		return 256
	case C.IBV_MTU_512:
		return 512
	case C.IBV_MTU_1024:
		return 1024
	case C.IBV_MTU_2048:
		return 2048
	case C.IBV_MTU_4096:
		return 4096
	}
	return 0
}

// linkLayer maps IBV_LINK_LAYER_* to the seam's LinkLayer.
func linkLayer(l int) verbs.LinkLayer {
	switch l {
	case C.IBV_LINK_LAYER_INFINIBAND:
		return verbs.LinkInfiniBand
	case C.IBV_LINK_LAYER_ETHERNET:
		return verbs.LinkEthernet
	}
	return verbs.LinkUnspecified
}

// portState maps ibv_port_state to the seam's PortState (the values are
// the IBTA ones in both).
func portState(s int) verbs.PortState {
	switch s {
	case C.IBV_PORT_DOWN:
		return verbs.PortDown
	case C.IBV_PORT_INIT:
		return verbs.PortInit
	case C.IBV_PORT_ARMED:
		return verbs.PortArmed
	case C.IBV_PORT_ACTIVE:
		return verbs.PortActive
	case C.IBV_PORT_ACTIVE_DEFER:
		return verbs.PortActiveDefer
	}
	return verbs.PortNop
}

func (d *Device) checkPort(op string, n uint8) error {
	if n == 0 || n > d.info.Ports {
		return d.opErr(op, fmt.Errorf("port %d of %d: %w", n, d.info.Ports, verbs.ErrIndexRange))
	}
	return nil
}

// Port returns the attributes of port n (ibv_query_port).
func (d *Device) Port(n uint8) (verbs.PortAttr, error) {
	if err := d.checkPort("query port", n); err != nil {
		return verbs.PortAttr{}, err
	}
	var a C.struct_shim_port
	if rc := C.shim_query_port(d.ctx, C.uint8_t(n), &a); rc != 0 {
		return verbs.PortAttr{}, d.opErr("query port", negErrno(rc))
	}
	return verbs.PortAttr{
		State:         portState(int(a.state)),
		LinkLayer:     linkLayer(int(a.link_layer)),
		LID:           uint16(a.lid),
		SMLID:         uint16(a.sm_lid),
		SMSL:          uint8(a.sm_sl),
		SubnetTimeout: uint8(a.subnet_timeout),
		GIDTableLen:   int(a.gid_tbl_len),
		PKeyTableLen:  int(a.pkey_tbl_len),
		ActiveMTU:     mtuBytes(int(a.active_mtu)),
	}, nil
}

// GID returns entry index of port n's GID table (ibv_query_gid).
func (d *Device) GID(port uint8, index int) (verbs.GID, error) {
	pa, err := d.Port(port)
	if err != nil {
		return verbs.GID{}, err
	}
	if index < 0 || index >= pa.GIDTableLen {
		return verbs.GID{}, d.opErr("query gid", fmt.Errorf("index %d of %d: %w", index, pa.GIDTableLen, verbs.ErrIndexRange))
	}
	var g C.union_ibv_gid
	if rc := C.ibv_query_gid(d.ctx, C.uint8_t(port), C.int(index), &g); rc != 0 {
		return verbs.GID{}, d.opErr("query gid", negErrno(rc))
	}
	var out verbs.GID
	copy(out[:], C.GoBytes(unsafe.Pointer(&g), C.int(len(out))))
	return out, nil
}

// PKey returns entry index of port n's P_Key table (ibv_query_pkey; the
// value is returned in host order).
func (d *Device) PKey(port uint8, index uint16) (uint16, error) {
	pa, err := d.Port(port)
	if err != nil {
		return 0, err
	}
	if int(index) >= pa.PKeyTableLen {
		return 0, d.opErr("query pkey", fmt.Errorf("index %d of %d: %w", index, pa.PKeyTableLen, verbs.ErrIndexRange))
	}
	var be C.__be16
	if rc := C.ibv_query_pkey(d.ctx, C.uint8_t(port), C.int(index), &be); rc != 0 {
		return 0, d.opErr("query pkey", negErrno(rc))
	}
	return uint16(C.ntohs(C.uint16_t(be))), nil
}

// PKeyIndex resolves a P_Key (membership bit included) to its index
// (ibv_get_pkey_index).
func (d *Device) PKeyIndex(port uint8, pkey uint16) (uint16, error) {
	if err := d.checkPort("find pkey", port); err != nil {
		return 0, err
	}
	i := C.ibv_get_pkey_index(d.ctx, C.uint8_t(port), C.__be16(C.htons(C.uint16_t(pkey))))
	if i < 0 {
		return 0, d.opErr("find pkey", fmt.Errorf("pkey %#04x: %w", pkey, verbs.ErrNotFound))
	}
	return uint16(i), nil
}

// Events delivers the device's async events. It is closed by Close.
func (d *Device) Events() <-chan verbs.AsyncEvent { return d.events }

// asyncKind maps ibv_event_type to the seam's kinds; ok is false for
// events the seam does not carry (QP/CQ/SRQ events: those surface as
// completions).
func asyncKind(t int) (verbs.AsyncEventKind, bool) {
	switch t {
	case C.IBV_EVENT_PORT_ERR:
		return verbs.EventPortError, true
	case C.IBV_EVENT_PORT_ACTIVE:
		return verbs.EventPortActive, true
	case C.IBV_EVENT_LID_CHANGE:
		return verbs.EventLIDChange, true
	case C.IBV_EVENT_PKEY_CHANGE:
		return verbs.EventPKeyChange, true
	case C.IBV_EVENT_SM_CHANGE:
		return verbs.EventSMChange, true
	case C.IBV_EVENT_CLIENT_REREGISTER:
		return verbs.EventClientReregister, true
	case C.IBV_EVENT_GID_CHANGE:
		return verbs.EventGIDChange, true
	case C.IBV_EVENT_DEVICE_FATAL:
		return verbs.EventDeviceFatal, true
	}
	return 0, false
}

// readEvents is the device's async event reader: it waits on the context's
// async fd and the wake eventfd, takes and acknowledges every pending event,
// and forwards the ones the seam knows. It closes Events when woken.
func (d *Device) readEvents(asyncFD int) {
	defer close(d.done)
	defer close(d.events)
	for {
		ready, err := waitReadable(asyncFD, d.wake)
		if err != nil {
			d.log.Error("async event wait failed; no more device events", "err", err)
			return
		}
		if !ready {
			return
		}
		for {
			var typ, port C.int
			if rc := C.shim_get_async_event(d.ctx, &typ, &port); rc != 0 {
				if e := negErrno(rc); !errors.Is(e, syscall.EAGAIN) {
					d.log.Error("ibv_get_async_event", "err", e)
				}
				break
			}
			kind, ok := asyncKind(int(typ))
			if ok && kind == verbs.EventPortActive {
				d.releaseParked(uint8(port))
			}
			if !ok {
				d.log.Debug("async event ignored", "event", C.GoString(C.ibv_event_type_str(uint32(typ))))
				continue
			}
			ev := verbs.AsyncEvent{Kind: kind, Device: d.name, Port: uint8(port), Time: time.Now()}
			select {
			case d.events <- ev:
			default:
				d.dropped.Add(1)
				d.log.Warn("async event dropped: Events is full", "event", kind, "port", ev.Port)
			}
		}
	}
}

// waitReadable blocks until fd or wake is readable. It returns true for fd,
// false for wake (whose counter it then leaves set, so every later wait
// returns false at once too).
func waitReadable(fd, wake int) (bool, error) {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(wake), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false, err
		}
		if fds[1].Revents != 0 {
			return false, nil
		}
		if fds[0].Revents&(unix.POLLERR|unix.POLLNVAL) != 0 {
			return false, fmt.Errorf("poll fd %d: revents %#x", fd, fds[0].Revents)
		}
		if fds[0].Revents != 0 {
			return true, nil
		}
	}
}

// wakeUp makes an eventfd readable (adds 1 to its counter).
func wakeUp(fd int) {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	_, _ = unix.Write(fd, one[:])
}

// MAD opens the management datagram port of port n (InfiniBand ports only).
func (d *Device) MAD(port uint8) (verbs.MADPort, error) {
	pa, err := d.Port(port)
	if err != nil {
		return nil, err
	}
	if pa.LinkLayer != verbs.LinkInfiniBand {
		return nil, d.opErr("open mad port", fmt.Errorf("port %d is %v (no SM, no SA): %w", port, pa.LinkLayer, verbs.ErrNotSupported))
	}
	return openMAD(d, port)
}

// Dial connects an RC QP through RDMA/CM (see dial in cm.go).
func (d *Device) Dial(ctx context.Context, p verbs.DialParams) (verbs.Conn, []byte, error) {
	c, rep, err := d.DialConn(ctx, p)
	if err != nil {
		return nil, nil, err
	}
	return c, rep, nil
}

// Close stops the async event reader (closing Events) and releases the
// protection domain and the context. Buffers and connections of this
// device must be closed first; otherwise releasing the PD fails (EBUSY)
// and Close reports it.
func (d *Device) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.mu.Unlock()
	wakeUp(d.wake)
	<-d.done
	d.releaseParked(0)
	var errs []error
	if rc := C.ibv_dealloc_pd(d.pd); rc != 0 {
		errs = append(errs, d.opErr("dealloc pd", syscall.Errno(rc)))
	}
	if d.own {
		if rc := C.ibv_close_device(d.ctx); rc != 0 {
			errs = append(errs, d.opErr("close device", syscall.Errno(rc)))
		}
	} else {
		C.rdma_free_devices(d.cmList)
	}
	if err := unix.Close(d.wake); err != nil {
		errs = append(errs, d.opErr("close eventfd", err))
	}
	return errors.Join(errs...)
}

// cmSafe reports whether a CM message can leave through id's port now:
// the port is ACTIVE (or ACTIVE_DEFER) and, on RoCE, the netdev that holds
// id's source address is up. The port state alone is not enough: a netdev
// set down fails route lookups at once, and the RC QP's flush reaches user
// space before rxe has marked the port down (seen: a DREQ sent in that
// window killed the GSI QP). A port or netdev that cannot be queried counts
// as usable: parking is for a known outage.
func (d *Device) cmSafe(id *C.struct_rdma_cm_id) bool {
	pa, err := d.Port(uint8(id.port_num))
	if err != nil {
		return true
	}
	if pa.State != verbs.PortActive && pa.State != verbs.PortActiveDefer {
		return false
	}
	if pa.LinkLayer != verbs.LinkEthernet {
		return true
	}
	var a [16]C.uint8_t
	var port C.uint16_t
	src := addrPort(C.shim_local_addr(id, &a[0], &port), &a, port).Addr()
	if !src.IsValid() || src.IsUnspecified() {
		return true
	}
	up, err := verbs.NetdevUpForAddr(src)
	return err != nil || up
}

// park keeps id and ch for releaseParked instead of destroying them now,
// when id is bound to a port of this device that is not active. It reports
// whether it did.
func (d *Device) park(id *C.struct_rdma_cm_id, ch *cmChan) bool {
	if id == nil || id.verbs != d.ctx || id.port_num == 0 {
		return false // not bound to a port of this device: no CM message can leave
	}
	port := uint8(id.port_num)
	if d.cmSafe(id) {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return false
	}
	d.parked = append(d.parked, parkedID{id: id, ch: ch, port: port})
	d.log.Info("connection ended while its port is down: its CM id is destroyed when the port is active again",
		"port", port, "parked", len(d.parked))
	return true
}

// releaseParked destroys the parked ids of port (every parked id when port
// is 0) and their event channels.
//
// With a port given, an id whose CM message still could not leave (the
// port's netdev not up yet: rxe reports PORT_ACTIVE as the link comes up,
// before routes work) stays parked and the release is tried again every
// parkedRetry until the device closes.
func (d *Device) releaseParked(port uint8) {
	d.mu.Lock()
	var release []parkedID
	kept := d.parked[:0]
	waiting := false
	for _, p := range d.parked {
		switch {
		case port == 0 || (p.port == port && d.cmSafe(p.id)):
			release = append(release, p)
		case p.port == port:
			waiting = true
			kept = append(kept, p)
		default:
			kept = append(kept, p)
		}
	}
	clear(d.parked[len(kept):])
	d.parked = kept
	if waiting && !d.closed {
		time.AfterFunc(parkedRetry, func() { d.releaseParked(port) })
	}
	d.mu.Unlock()
	for _, p := range release {
		C.rdma_destroy_id(p.id)
		p.ch.close()
	}
	if len(release) > 0 {
		d.log.Info("destroyed the CM ids parked during the port's outage", "port", port, "count", len(release))
	}
}

func (d *Device) isClosed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.closed
}
