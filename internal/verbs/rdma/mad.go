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
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
)

// MAD framing (research/srp-protocol.md §4.1).
const (
	madSize        = 256
	madClassOff    = 1 // mgmt_class
	madVersionOff  = 2 // class_version
	madMethodOff   = 3
	madTIDOff      = 8
	madMethodTrap  = 0x05
	madMethodReprt = 0x06
	madClassSA     = 0x03
	madSAVersion   = 2
	// unsolicitedCap is the capacity of the queue of unsolicited MADs
	// (Reports, Traps) waiting for Recv.
	unsolicitedCap = 32
)

// madPort is a umad port (libibumad). One goroutine reads every MAD that
// arrives and hands a response to the Send waiting for its transaction ID
// and anything else (Reports) to Recv. Untested on hardware: the lab has
// RoCE only, which has no SM/SA (Device.MAD refuses it).
type madPort struct {
	d    *Device
	port uint8
	fd   int
	wake int
	done chan struct{}
	sbuf unsafe.Pointer // C umad buffer for sends (under mu)

	mu       sync.Mutex
	agents   map[[2]byte]C.int      // (class, version) -> agent of solicited sends
	reports  bool                   // an agent for unsolicited SA Reports is registered
	waiters  map[uint64]chan madMsg // transaction ID -> waiting Send
	unsolic  chan madMsg
	closed   bool
	readErr  error
	closeErr error
}

type madMsg struct {
	mad    []byte
	from   verbs.MADAddr
	status int // umad_status: 0, or ETIMEDOUT for a send that got no response
}

func openMAD(d *Device, port uint8) (*madPort, error) {
	if rc := C.umad_init(); rc < 0 {
		return nil, d.opErr("open mad port", negErrno(rc))
	}
	name := C.CString(d.name)
	fd := C.umad_open_port(name, C.int(port))
	C.free(unsafe.Pointer(name))
	if fd < 0 {
		return nil, d.opErr("open mad port", fmt.Errorf("port %d: %w", port, negErrno(fd)))
	}
	// Non-blocking, so that the receiver's umad_recv loop ends with EAGAIN
	// instead of blocking in read(2) once the queue is empty.
	if err := unix.SetNonblock(int(fd), true); err != nil {
		C.umad_close_port(fd)
		return nil, d.opErr("open mad port", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		C.umad_close_port(fd)
		return nil, d.opErr("open mad port", err)
	}
	m := &madPort{
		d: d, port: port, fd: int(fd), wake: wake, done: make(chan struct{}),
		sbuf:    C.calloc(1, C.umad_size()+madSize),
		agents:  map[[2]byte]C.int{},
		waiters: map[uint64]chan madMsg{},
		unsolic: make(chan madMsg, unsolicitedCap),
	}
	go m.read()
	return m, nil
}

// agent returns (registering on first use) the agent for class/version;
// mask registers it for the unsolicited methods Report and Trap.
func (m *madPort) agent(class, version byte) (C.int, error) {
	key := [2]byte{class, version}
	if a, ok := m.agents[key]; ok {
		return a, nil
	}
	a := C.umad_register(C.int(m.fd), C.int(class), C.int(version), 0, nil)
	if a < 0 {
		return 0, fmt.Errorf("umad_register class %#x version %d: %w", class, version, negErrno(a))
	}
	m.agents[key] = a
	return a, nil
}

// Send sends mad (256 bytes) to to and waits up to timeout (and ctx) for
// the response with the same transaction ID.
func (m *madPort) Send(ctx context.Context, mad []byte, to verbs.MADAddr, timeout time.Duration) ([]byte, error) {
	op := func(err error) error { return m.d.opErr("send mad", err) }
	if len(mad) != madSize {
		return nil, op(fmt.Errorf("%d bytes, want %d: %w", len(mad), madSize, ErrBadParams))
	}
	var pkeyIndex uint16
	if to.PKey != 0 {
		i, err := m.d.PKeyIndex(m.port, to.PKey)
		if err != nil {
			return nil, err
		}
		pkeyIndex = i
	}
	tid := binary.BigEndian.Uint64(mad[madTIDOff:])
	reply := make(chan madMsg, 1)
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, op(verbs.ErrClosed)
	}
	agent, err := m.agent(mad[madClassOff], mad[madVersionOff])
	if err != nil {
		m.mu.Unlock()
		return nil, op(err)
	}
	m.waiters[tid] = reply
	rc := C.shim_umad_send(C.int(m.fd), agent, m.sbuf, (*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(mad))), madSize,
		C.int(to.LID), C.int(to.QPN), C.int(to.SL), C.int(to.QKey), C.int(pkeyIndex), C.int(timeout/time.Millisecond))
	if rc < 0 {
		delete(m.waiters, tid)
		m.mu.Unlock()
		return nil, op(negErrno(rc))
	}
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.waiters, tid)
		m.mu.Unlock()
	}()
	select {
	case r, ok := <-reply:
		if !ok {
			return nil, op(verbs.ErrClosed)
		}
		if r.status == int(syscall.ETIMEDOUT) {
			return nil, op(fmt.Errorf("transaction %#x: %w", tid, verbs.ErrTimeout))
		}
		if r.status != 0 {
			return nil, op(fmt.Errorf("transaction %#x: %w", tid, syscall.Errno(r.status)))
		}
		return r.mad, nil
	case <-ctx.Done():
		return nil, op(ctx.Err())
	}
}

// Recv returns the next unsolicited MAD (an SA Report of a subscribed
// trap); the first call registers the SA agent for Report and Trap.
func (m *madPort) Recv(ctx context.Context) ([]byte, verbs.MADAddr, error) {
	op := func(err error) error { return m.d.opErr("receive mad", err) }
	m.mu.Lock()
	if !m.reports && !m.closed {
		var mask [16]byte // 128-bit method mask, as the kernel's ib_user_mad_reg_req
		mask[madMethodReprt/8] |= 1 << (madMethodReprt % 8)
		mask[madMethodTrap/8] |= 1 << (madMethodTrap % 8)
		a := C.umad_register(C.int(m.fd), madClassSA, madSAVersion, 0, (*C.long)(unsafe.Pointer(&mask[0])))
		if a < 0 {
			m.mu.Unlock()
			return nil, verbs.MADAddr{}, op(fmt.Errorf("umad_register SA reports: %w", negErrno(a)))
		}
		m.reports = true
	}
	m.mu.Unlock()
	select {
	case r, ok := <-m.unsolic:
		if !ok {
			return nil, verbs.MADAddr{}, op(verbs.ErrClosed)
		}
		return r.mad, r.from, nil
	case <-ctx.Done():
		return nil, verbs.MADAddr{}, op(ctx.Err())
	}
}

// read is the port's receiver goroutine.
func (m *madPort) read() {
	defer close(m.done)
	buf := C.calloc(1, C.umad_size()+madSize)
	defer C.free(buf)
	for {
		ready, err := waitReadable(m.fd, m.wake)
		if err != nil || !ready {
			m.mu.Lock()
			m.readErr = err
			m.mu.Unlock()
			return
		}
		for {
			length := C.int(madSize)
			rc := C.umad_recv(C.int(m.fd), buf, &length, 0)
			if rc < 0 {
				break // -ETIMEDOUT / -EAGAIN: nothing more now
			}
			msg := madMsg{status: int(C.umad_status(buf))}
			n := min(int(length), madSize)
			msg.mad = C.GoBytes(C.umad_get_mad(buf), C.int(n))
			var lid, qpn, qkey, sl, pkeyIndex, grh C.int
			var gid [16]C.uint8_t
			C.shim_umad_addr(buf, &lid, &qpn, &qkey, &sl, &pkeyIndex, &grh, &gid[0])
			msg.from = verbs.MADAddr{LID: uint16(lid), QPN: uint32(qpn), QKey: uint32(qkey), SL: uint8(sl), HasGR: grh != 0}
			for i := range gid {
				msg.from.GID[i] = byte(gid[i])
			}
			if pk, err := m.d.PKey(m.port, uint16(pkeyIndex)); err == nil {
				msg.from.PKey = pk
			}
			m.dispatch(msg)
		}
	}
}

// dispatch hands a received MAD to its waiting Send, else to Recv.
func (m *madPort) dispatch(msg madMsg) {
	if len(msg.mad) < madTIDOff+8 {
		return
	}
	tid := binary.BigEndian.Uint64(msg.mad[madTIDOff:])
	m.mu.Lock()
	w, ok := m.waiters[tid]
	if ok {
		delete(m.waiters, tid)
	}
	m.mu.Unlock()
	if ok {
		w <- msg // buffered, one message per waiter
		return
	}
	method := msg.mad[madMethodOff]
	if method != madMethodReprt && method != madMethodTrap {
		m.d.log.Debug("stray MAD dropped", "tid", tid, "method", method)
		return
	}
	select {
	case m.unsolic <- msg:
	default:
		m.d.log.Warn("unsolicited MAD dropped: queue full", "tid", tid)
	}
}

// Close stops the receiver, fails waiting Sends and Recvs with
// verbs.ErrClosed and closes the umad port (unregistering its agents).
func (m *madPort) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return m.closeErr
	}
	m.closed = true
	m.mu.Unlock()
	wakeUp(m.wake)
	<-m.done
	m.mu.Lock()
	for tid, w := range m.waiters {
		close(w)
		delete(m.waiters, tid)
	}
	close(m.unsolic)
	m.mu.Unlock()
	var errs []error
	if rc := C.umad_close_port(C.int(m.fd)); rc < 0 {
		errs = append(errs, m.d.opErr("close mad port", negErrno(rc)))
	}
	errs = append(errs, unix.Close(m.wake))
	C.free(m.sbuf)
	m.closeErr = errors.Join(errs...)
	return m.closeErr
}
