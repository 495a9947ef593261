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
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
)

// wcBatch is how many work completions one Poll takes from the CQ at most
// (the size of the connection's C-allocated ibv_wc array).
const wcBatch = 32

// cmEventCap is the capacity of a connection's CM event channel: an
// established connection delivers at most Disconnected, TimewaitExit,
// DeviceRemoval and AddrChange.
const cmEventCap = 8

// Conn is one RC queue pair with its RDMA/CM id, completion queue and
// completion channel. It implements verbs.Conn.
//
// The data path (PostSend, PostRecv, Poll, ArmNotify, AckNotify) calls one
// C shim each, with scalars and C memory the connection allocated at
// creation (the SGE arrays and the ibv_wc array): no allocation, no
// goroutine. A read lock on mu keeps Close from destroying the QP under a
// data-path call; uncontended it is one atomic add.
type Conn struct {
	dev *Device
	log *slog.Logger
	cm  *cmChan
	id  *C.struct_rdma_cm_id

	comp    *C.struct_ibv_comp_channel
	compFD  int
	cq      *C.struct_ibv_cq
	qp      *C.struct_ibv_qp
	sendSGE *[verbs.MaxSGE]C.struct_ibv_sge // C memory
	recvSGE *[verbs.MaxSGE]C.struct_ibv_sge // C memory
	wc      *[wcBatch]C.struct_ibv_wc       // C memory
	maxSend int                             // SGEs per send WR the QP was created with
	maxRecv int

	priv          []byte // private data buffer for setup events
	local, remote netip.AddrPort

	events       chan verbs.CMEvent
	watching     bool
	evDone       chan struct{}
	disconnected atomic.Bool
	closeOnce    sync.Once

	mu     sync.RWMutex
	closed bool
}

var _ verbs.Conn = (*Conn)(nil)

func newConn(d *Device, ch *cmChan, id *C.struct_rdma_cm_id) *Conn {
	return &Conn{
		dev: d, log: d.log, cm: ch, id: id, compFD: -1,
		priv:   make([]byte, privBufLen),
		events: make(chan verbs.CMEvent, cmEventCap),
		evDone: make(chan struct{}),
	}
}

// createQP creates the completion channel, one CQ shared by both queues
// (sized for both), the C scratch memory, and the RC QP on the CM id.
func (c *Conn) createQP(sendDepth, recvDepth, maxSendSGE int) error {
	d := c.dev
	comp, err := C.ibv_create_comp_channel(d.ctx)
	if comp == nil {
		return fmt.Errorf("ibv_create_comp_channel: %w", errnoOr(err, syscall.ENOMEM))
	}
	c.comp = comp
	c.compFD = int(C.shim_comp_fd(comp))
	if err := unix.SetNonblock(c.compFD, true); err != nil {
		return fmt.Errorf("completion channel fd: %w", err)
	}
	cq, err := C.ibv_create_cq(d.ctx, C.int(sendDepth+recvDepth), nil, comp, 0)
	if cq == nil {
		return fmt.Errorf("ibv_create_cq of %d entries: %w", sendDepth+recvDepth, errnoOr(err, syscall.ENOMEM))
	}
	c.cq = cq
	c.sendSGE = (*[verbs.MaxSGE]C.struct_ibv_sge)(C.calloc(verbs.MaxSGE, C.size_t(unsafe.Sizeof(C.struct_ibv_sge{}))))
	c.recvSGE = (*[verbs.MaxSGE]C.struct_ibv_sge)(C.calloc(verbs.MaxSGE, C.size_t(unsafe.Sizeof(C.struct_ibv_sge{}))))
	c.wc = (*[wcBatch]C.struct_ibv_wc)(C.calloc(wcBatch, C.size_t(unsafe.Sizeof(C.struct_ibv_wc{}))))
	if c.sendSGE == nil || c.recvSGE == nil || c.wc == nil {
		return fmt.Errorf("scratch memory: %w", syscall.ENOMEM)
	}
	if maxSendSGE <= 0 || maxSendSGE > verbs.MaxSGE {
		maxSendSGE = verbs.MaxSGE
	}
	c.maxSend = min(maxSendSGE, d.info.MaxSGE)
	c.maxRecv = min(verbs.MaxSGE, d.info.MaxSGE)
	if rc := C.shim_create_qp(c.id, d.pd, cq, C.int(sendDepth), C.int(recvDepth), C.int(c.maxSend), C.int(c.maxRecv)); rc != 0 {
		return fmt.Errorf("rdma_create_qp (send %d, recv %d): %w", sendDepth, recvDepth, negErrno(rc))
	}
	c.qp = C.shim_id_qp(c.id)
	return nil
}

// established records the endpoints and starts the CM event reader.
func (c *Conn) established() {
	var a [16]C.uint8_t
	var port C.uint16_t
	fam := C.shim_local_addr(c.id, &a[0], &port)
	c.local = addrPort(fam, &a, port)
	fam = C.shim_peer_addr(c.id, &a[0], &port)
	c.remote = addrPort(fam, &a, port)
	c.log = c.log.With("local", c.local, "remote", c.remote)
	c.watching = true
	go c.watch()
}

// watch reads the CM events of an established connection into CMEvents
// until Close wakes it. On DISCONNECTED it answers with rdma_disconnect
// (the DREP, and the QP to ERR), as the kernel initiator does.
func (c *Conn) watch() {
	defer close(c.evDone)
	defer close(c.events)
	for {
		ev, err := c.cm.next(context.Background(), c.priv)
		if err != nil {
			if !errors.Is(err, verbs.ErrClosed) {
				c.log.Error("CM event wait failed; no more CM events", "err", err)
			}
			return
		}
		var kind verbs.CMEventKind
		switch ev.kind {
		case C.RDMA_CM_EVENT_DISCONNECTED:
			kind = verbs.CMDisconnected
			if err := c.Disconnect(); err != nil {
				c.log.Warn("answering the peer's disconnect", "err", err)
			}
		case C.RDMA_CM_EVENT_TIMEWAIT_EXIT:
			kind = verbs.CMTimewaitExit
		case C.RDMA_CM_EVENT_DEVICE_REMOVAL:
			kind = verbs.CMDeviceRemoval
		case C.RDMA_CM_EVENT_ADDR_CHANGE:
			kind = verbs.CMAddrChange
		default:
			c.log.Debug("CM event ignored", "event", ev.name(), "status", ev.status)
			continue
		}
		select {
		case c.events <- verbs.CMEvent{Kind: kind, Time: time.Now()}:
		default:
			c.log.Warn("CM event dropped: CMEvents is full", "event", kind)
		}
	}
}

// sendOpcode maps the seam's opcode to ibv_wr_opcode.
func sendOpcode(op verbs.Opcode) (C.int, bool) {
	switch op {
	case verbs.OpSend:
		return C.IBV_WR_SEND, true
	case verbs.OpRDMAWrite:
		return C.IBV_WR_RDMA_WRITE, true
	case verbs.OpRDMARead:
		return C.IBV_WR_RDMA_READ, true
	}
	return 0, false
}

// postError maps ibv_post_send/recv's return (an errno, positive or
// negative depending on the provider).
func postError(rc C.int) error {
	if rc < 0 {
		rc = -rc
	}
	switch syscall.Errno(rc) {
	case syscall.ENOMEM:
		return verbs.ErrQueueFull
	case syscall.EINVAL:
		return verbs.ErrInvalidWR
	}
	return syscall.Errno(rc)
}

// PostSend posts one send-queue work request. A zero-length RDMA WRITE
// (NumSGE 0) is the heartbeat: remote address and rkey are passed as given
// (0 and 0 by convention; IBTA C9-88: not validated). wr is not retained.
func (c *Conn) PostSend(wr *verbs.SendWR) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return verbs.ErrClosed
	}
	opc, ok := sendOpcode(wr.Op)
	if !ok || wr.NumSGE < 0 || wr.NumSGE > c.maxSend {
		return verbs.ErrInvalidWR
	}
	for i := 0; i < wr.NumSGE; i++ {
		s := &c.sendSGE[i]
		s.addr = C.uint64_t(wr.SGE[i].Addr)
		s.length = C.uint32_t(wr.SGE[i].Length)
		s.lkey = C.uint32_t(wr.SGE[i].LKey)
	}
	var flags C.int
	if wr.Signaled {
		flags = C.IBV_SEND_SIGNALED
	}
	if rc := C.shim_post_send(c.qp, C.uint64_t(wr.ID), opc, flags, C.uint64_t(wr.RemoteAddr), C.uint32_t(wr.RKey),
		&c.sendSGE[0], C.int(wr.NumSGE)); rc != 0 {
		return postError(rc)
	}
	return nil
}

// PostRecv posts one receive work request. wr is not retained.
func (c *Conn) PostRecv(wr *verbs.RecvWR) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return verbs.ErrClosed
	}
	if wr.NumSGE < 0 || wr.NumSGE > c.maxRecv {
		return verbs.ErrInvalidWR
	}
	for i := 0; i < wr.NumSGE; i++ {
		s := &c.recvSGE[i]
		s.addr = C.uint64_t(wr.SGE[i].Addr)
		s.length = C.uint32_t(wr.SGE[i].Length)
		s.lkey = C.uint32_t(wr.SGE[i].LKey)
	}
	if rc := C.shim_post_recv(c.qp, C.uint64_t(wr.ID), &c.recvSGE[0], C.int(wr.NumSGE)); rc != 0 {
		return postError(rc)
	}
	return nil
}

// wcStatus maps ibv_wc_status to the seam's Status; statuses the seam does
// not name become StatusGeneralErr (VendorErr keeps the detail).
func wcStatus(s uint32) verbs.Status {
	switch s {
	case C.IBV_WC_SUCCESS:
		return verbs.StatusSuccess
	case C.IBV_WC_LOC_LEN_ERR:
		return verbs.StatusLocLenErr
	case C.IBV_WC_LOC_QP_OP_ERR:
		return verbs.StatusLocQPOpErr
	case C.IBV_WC_LOC_PROT_ERR:
		return verbs.StatusLocProtErr
	case C.IBV_WC_WR_FLUSH_ERR:
		return verbs.StatusWRFlushErr
	case C.IBV_WC_REM_INV_REQ_ERR:
		return verbs.StatusRemInvReqErr
	case C.IBV_WC_REM_ACCESS_ERR:
		return verbs.StatusRemAccessErr
	case C.IBV_WC_REM_OP_ERR:
		return verbs.StatusRemOpErr
	case C.IBV_WC_RETRY_EXC_ERR:
		return verbs.StatusRetryExcErr
	case C.IBV_WC_RNR_RETRY_EXC_ERR:
		return verbs.StatusRNRRetryExcErr
	}
	return verbs.StatusGeneralErr
}

// wcOpcode maps ibv_wc_opcode to the seam's CompletionOp. Verbs leaves the
// opcode undefined in error completions, so there it is a best guess; the
// work request ID is what identifies the request.
func wcOpcode(op uint32) verbs.CompletionOp {
	switch op {
	case C.IBV_WC_SEND:
		return verbs.CompSend
	case C.IBV_WC_RDMA_WRITE:
		return verbs.CompRDMAWrite
	case C.IBV_WC_RDMA_READ:
		return verbs.CompRDMARead
	}
	if op&C.IBV_WC_RECV != 0 {
		return verbs.CompRecv
	}
	return verbs.CompSend
}

// Poll takes up to min(len(out), 32) completions from the CQ.
func (c *Conn) Poll(out []verbs.Completion) int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed || len(out) == 0 {
		return 0
	}
	n := min(len(out), wcBatch)
	got := int(C.shim_poll_cq(c.cq, C.int(n), &c.wc[0]))
	if got < 0 {
		// ibv_poll_cq fails only on a broken CQ; the QP's work then
		// surfaces as flushes once the caller resets the connection.
		return 0
	}
	for i := 0; i < got; i++ {
		w := &c.wc[i]
		out[i] = verbs.Completion{
			ID:        uint64(w.wr_id),
			Status:    wcStatus(uint32(w.status)),
			Op:        wcOpcode(uint32(w.opcode)),
			ByteLen:   uint32(w.byte_len),
			VendorErr: uint32(w.vendor_err),
		}
	}
	return got
}

// ArmNotify requests a notification on the completion channel at the next
// completion (ibv_req_notify_cq, any completion).
func (c *Conn) ArmNotify() error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return verbs.ErrClosed
	}
	if rc := C.shim_req_notify(c.cq); rc != 0 {
		return negErrno(rc)
	}
	return nil
}

// NotifyFD is the completion channel's fd (non-blocking).
func (c *Conn) NotifyFD() int { return c.compFD }

// AckNotify consumes every pending notification of the completion channel
// and acknowledges them in one ibv_ack_cq_events. It does not block: with
// nothing pending it returns nil.
func (c *Conn) AckNotify() error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return verbs.ErrClosed
	}
	return negErrno(C.shim_drain_cq_events(c.comp))
}

// CMEvents delivers Disconnected, TimewaitExit, DeviceRemoval and
// AddrChange; it is closed by Close.
func (c *Conn) CMEvents() <-chan verbs.CMEvent { return c.events }

// ForceError moves the QP to the error state (ibv_modify_qp): outstanding
// and later work requests complete with StatusFlushErr.
func (c *Conn) ForceError() error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return c.dev.opErr("force error", verbs.ErrClosed)
	}
	if err := negErrno(C.shim_qp_error(c.qp)); err != nil {
		return c.dev.opErr("force error", err)
	}
	return nil
}

// Disconnect sends a DREQ (rdma_disconnect, which also moves the QP to the
// error state). It is idempotent; disconnecting a connection the peer
// already tore down is not an error.
func (c *Conn) Disconnect() error {
	if !c.disconnected.CompareAndSwap(false, true) {
		return nil
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return nil
	}
	if port := uint8(c.id.port_num); c.qp != nil && port != 0 && !c.dev.cmSafe(c.id) {
		// No DREQ while the port or its netdev is down (see parkedID and
		// cmSafe): the QP goes to the error state here, the DREQ leaves
		// when the CM id is destroyed after the port is back.
		if err := negErrno(C.shim_qp_error(c.qp)); err != nil {
			return c.dev.opErr("disconnect", err)
		}
		return nil
	}
	if rc, err := C.rdma_disconnect(c.id); rc != 0 {
		if e := errnoOr(err, syscall.EINVAL); !errors.Is(e, syscall.EINVAL) {
			return c.dev.opErr("disconnect", e)
		}
	}
	return nil
}

// Close disconnects if needed, stops the CM event reader (closing
// CMEvents) and destroys the QP, CQ, completion channel, CM id and event
// channel. It waits for data-path calls in progress; none may start after.
func (c *Conn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		err = c.Disconnect()
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		if c.watching {
			wakeUp(c.cm.wake)
			<-c.evDone
		} else {
			close(c.events)
		}
		c.destroy()
	})
	return err
}

// destroy releases everything the connection created, in reverse order.
// rdma_destroy_id does not block here: every event taken was acked in C.
// While the CM id's port is down, the id and its event channel go to the
// device instead (Device.park), which destroys them once the port is back.
func (c *Conn) destroy() {
	if c.qp != nil {
		C.rdma_destroy_qp(c.id)
		c.qp = nil
	}
	if c.cq != nil {
		_ = C.shim_drain_cq_events(c.comp)
		if rc := C.ibv_destroy_cq(c.cq); rc != 0 {
			c.log.Warn("ibv_destroy_cq", "err", syscall.Errno(rc))
		}
		c.cq = nil
	}
	if c.comp != nil {
		if rc := C.ibv_destroy_comp_channel(c.comp); rc != 0 {
			c.log.Warn("ibv_destroy_comp_channel", "err", syscall.Errno(rc))
		}
		c.comp = nil
		c.compFD = -1
	}
	if c.id != nil {
		if c.dev.park(c.id, c.cm) {
			c.cm = nil // the device destroys both
		} else {
			C.rdma_destroy_id(c.id)
		}
		c.id = nil
	}
	if c.cm != nil {
		c.cm.close()
	}
	for _, p := range []unsafe.Pointer{unsafe.Pointer(c.sendSGE), unsafe.Pointer(c.recvSGE), unsafe.Pointer(c.wc)} {
		if p != nil {
			C.free(p)
		}
	}
	c.sendSGE, c.recvSGE, c.wc = nil, nil, nil
}

// Local is the connection's local address and port.
func (c *Conn) Local() netip.AddrPort { return c.local }

// Remote is the peer's address and port.
func (c *Conn) Remote() netip.AddrPort { return c.remote }

// Device is the device the connection runs on.
func (c *Conn) Device() verbs.Device { return c.dev }

// QPTimeouts reads back the QP's ACK timeout exponent and retry counts
// (ibv_query_qp): what RDMA/CM actually programmed.
func (c *Conn) QPTimeouts() (ackTimeout, retry, rnrRetry int, err error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return 0, 0, 0, c.dev.opErr("query qp", verbs.ErrClosed)
	}
	var t, r, rnr C.int
	if e := negErrno(C.shim_qp_timeouts(c.qp, &t, &r, &rnr)); e != nil {
		return 0, 0, 0, c.dev.opErr("query qp", e)
	}
	return int(t), int(r), int(rnr), nil
}
