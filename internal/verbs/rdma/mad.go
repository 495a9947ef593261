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
	// madMethodResp is the R bit: a response (GetResp, ReportResp, ...).
	madMethodResp = 0x80
	madClassSA    = 0x03
	madSAVersion  = 2
	// The RMPP header of an SA MAD: version at byte 24, flags in the low
	// three bits of byte 26 (Active, First, Last).
	madRMPPVersionOff = 24
	madRMPPFlagsOff   = 26
	rmppFlagActive    = 1 << 0
	rmppFlagFirst     = 1 << 1
	rmppFlagLast      = 1 << 2
	rmppFlagsMask     = rmppFlagActive | rmppFlagFirst | rmppFlagLast
	// rmppVersion is IB_MGMT_RMPP_VERSION: an agent registered with it
	// has the kernel's MAD layer run RMPP (ACKs, reassembly) for it.
	rmppVersion = 1
	// maxRMPPLen bounds one reassembled answer: an SA table of a large
	// subnet is megabytes at most; a larger length is a bogus header.
	maxRMPPLen = 16 << 20
	// unsolicitedCap is the capacity of the queue of unsolicited MADs
	// (Reports, Traps) waiting for Recv.
	unsolicitedCap = 32
)

// ErrRMPP reports an SA answer that arrived as RMPP segments on a port
// whose agent could not get the kernel's RMPP reassembly (umad_register
// with rmpp_version 1 failed): only a one-segment answer can be read
// there. (Kept here: this file alone is the MAD port's.)
var ErrRMPP = errors.New("rdma: SA answer needs RMPP reassembly, which this MAD port lacks")

// madPort is a umad port (libibumad). One goroutine reads every MAD that
// arrives and hands a response to the Send waiting for its transaction ID
// and anything else (Reports) to Recv. Untested on hardware: the lab has
// RoCE only, which has no SM/SA (Device.MAD refuses it).
//
// Agents: two SA agents are registered at open — one for our requests,
// with rmpp_version 1 so that the kernel reassembles a GetTable answer
// sent as RMPP segments (umad_recv then asks for a larger buffer with
// ENOSPC, and read grows it), and one with a method mask for the
// unsolicited Report and Trap, so that no trap is lost between open and
// the first Recv; ReportResp goes out through it. Other classes (DM) get
// their agent on first use. If the kernel refuses the RMPP agent, the SA
// agent is registered without RMPP and an answer that arrives segmented
// fails with ErrRMPP instead of being read half.
type madPort struct {
	d    *Device
	port uint8
	fd   int
	wake int
	done chan struct{}
	sbuf unsafe.Pointer // C umad buffer for sends (under mu)

	mu       sync.Mutex
	agents   map[[2]byte]C.int      // (class, version) -> agent of solicited sends
	reports  C.int                  // the SA agent for unsolicited Report/Trap (and ReportResp)
	noRMPP   bool                   // the SA agent has no kernel RMPP
	waiters  map[uint64]chan madMsg // transaction ID -> waiting Send
	unsolic  chan madMsg
	closed   bool
	readErr  error
	closeErr error
}

type madMsg struct {
	mad    []byte
	from   verbs.MADAddr
	status int   // umad_status: 0, or ETIMEDOUT for a send that got no response
	err    error // ErrRMPP: a segment of an answer this port cannot reassemble
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
	if err := m.registerSA(); err != nil {
		C.free(m.sbuf)
		C.umad_close_port(fd) // unregisters the agents
		_ = unix.Close(wake)
		return nil, d.opErr("open mad port", err)
	}
	go m.read()
	return m, nil
}

// registerSA registers the SA agents (see madPort): requests with kernel
// RMPP (falling back to none, noted), and unsolicited Report and Trap.
func (m *madPort) registerSA() error {
	a := C.umad_register(C.int(m.fd), madClassSA, madSAVersion, rmppVersion, nil)
	if a < 0 {
		m.d.log.Warn("SA agent without RMPP reassembly: multi-segment SA answers will fail", "port", m.port, "err", negErrno(a))
		m.noRMPP = true
		if a = C.umad_register(C.int(m.fd), madClassSA, madSAVersion, 0, nil); a < 0 {
			return fmt.Errorf("umad_register SA: %w", negErrno(a))
		}
	}
	m.agents[[2]byte{madClassSA, madSAVersion}] = a
	var mask [16]byte // 128-bit method mask, as the kernel's ib_user_mad_reg_req
	mask[madMethodReprt/8] |= 1 << (madMethodReprt % 8)
	mask[madMethodTrap/8] |= 1 << (madMethodTrap % 8)
	r := C.umad_register(C.int(m.fd), madClassSA, madSAVersion, 0, (*C.long)(unsafe.Pointer(&mask[0])))
	if r < 0 {
		return fmt.Errorf("umad_register SA reports: %w", negErrno(r))
	}
	m.reports = r
	return nil
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
// the response with the same transaction ID. A response MAD (the R bit
// set: the ReportResp acknowledging a trap Report) waits for nothing: it
// goes out through the reports agent and Send returns (nil, nil).
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
	if mad[madMethodOff]&madMethodResp != 0 {
		return nil, m.sendResponse(mad, to, pkeyIndex)
	}
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
		if r.err != nil {
			return nil, op(fmt.Errorf("transaction %#x: %w", tid, r.err))
		}
		return r.mad, nil
	case <-ctx.Done():
		return nil, op(ctx.Err())
	}
}

// sendResponse sends a response MAD (no answer expected, timeout 0)
// through the agent that receives what it answers: the reports agent for
// the SA class.
func (m *madPort) sendResponse(mad []byte, to verbs.MADAddr, pkeyIndex uint16) error {
	op := func(err error) error { return m.d.opErr("send mad", err) }
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return op(verbs.ErrClosed)
	}
	agent := m.reports
	if mad[madClassOff] != madClassSA || mad[madVersionOff] != madSAVersion {
		a, err := m.agent(mad[madClassOff], mad[madVersionOff])
		if err != nil {
			return op(err)
		}
		agent = a
	}
	rc := C.shim_umad_send(C.int(m.fd), agent, m.sbuf, (*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(mad))), madSize,
		C.int(to.LID), C.int(to.QPN), C.int(to.SL), C.int(to.QKey), C.int(pkeyIndex), 0)
	if rc < 0 {
		return op(negErrno(rc))
	}
	return nil
}

// Recv returns the next unsolicited MAD (an SA Report of a subscribed
// trap; the agent that receives them was registered at open).
func (m *madPort) Recv(ctx context.Context) ([]byte, verbs.MADAddr, error) {
	op := func(err error) error { return m.d.opErr("receive mad", err) }
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
	bufLen := madSize
	buf := C.calloc(1, C.umad_size()+C.size_t(bufLen))
	defer func() { C.free(buf) }()
	for {
		ready, err := waitReadable(m.fd, m.wake)
		if err != nil || !ready {
			m.mu.Lock()
			m.readErr = err
			m.mu.Unlock()
			return
		}
		for {
			length := C.int(bufLen)
			rc := C.umad_recv(C.int(m.fd), buf, &length, 0)
			if rc == -C.int(syscall.ENOSPC) && int(length) > bufLen && int(length) <= maxRMPPLen {
				// A reassembled RMPP answer longer than the buffer: the
				// kernel kept it queued and said how long it is.
				C.free(buf)
				bufLen = int(length)
				buf = C.calloc(1, C.umad_size()+C.size_t(bufLen))
				continue
			}
			if rc < 0 {
				if rc == -C.int(syscall.ENOSPC) {
					m.d.log.Warn("MAD dropped: its length is beyond the receive bound", "length", int(length), "bound", maxRMPPLen)
				}
				break // -ETIMEDOUT / -EAGAIN: nothing more now
			}
			msg := madMsg{status: int(C.umad_status(buf))}
			n := min(int(length), bufLen)
			msg.mad = C.GoBytes(C.umad_get_mad(buf), C.int(n))
			msg.err = m.checkRMPP(msg.mad)
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

// checkRMPP returns ErrRMPP for one segment of a multi-segment SA answer
// that arrived unassembled (the SA agent has no kernel RMPP): reading it
// as the whole answer would silently drop records.
func (m *madPort) checkRMPP(mad []byte) error {
	if !m.noRMPP || len(mad) <= madRMPPFlagsOff || mad[madClassOff] != madClassSA || mad[madRMPPVersionOff] == 0 {
		return nil
	}
	f := mad[madRMPPFlagsOff] & rmppFlagsMask
	if f&rmppFlagActive == 0 || f == rmppFlagsMask {
		return nil // not RMPP, or the one and only segment
	}
	return ErrRMPP
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
