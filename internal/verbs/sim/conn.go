package sim

import (
	"net/netip"
	"slices"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/clock"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
)

// qpState is the state of a simulated RC queue pair.
type qpState uint8

const (
	qpReady  qpState = iota + 1 // RTS: processes work
	qpError                     // ERR: flushes every work request
	qpClosed                    // destroyed
)

func (s qpState) String() string {
	switch s {
	case qpReady:
		return "RTS"
	case qpError:
		return "ERR"
	case qpClosed:
		return "closed"
	}
	return "qpState(?)"
}

// cmState is the connection-manager state of a connection.
type cmState uint8

const (
	cmConnected     cmState = iota + 1
	cmDisconnecting         // our DREQ is out, no DREP yet
	cmDisconnected          // Disconnected reported, timewait running
	cmTimewaitDone          // TimewaitExit reported
)

// ConnParams are the QP parameters of one side of a connection. Zero values
// take defaults: depths 64 (ib_srp's queue_size), MaxSendSGE verbs.MaxSGE,
// AckTimeout Config.DefaultAckTimeout. RetryCount and RNRRetry are used as
// given (0 means no retries; RNRRetry 7 means retry forever).
type ConnParams struct {
	SendDepth      int
	RecvDepth      int
	MaxSendSGE     int
	RetryCount     uint8
	RNRRetry       uint8
	AckTimeout     uint8
	ResponderRes   uint8 // > 0 grants the peer RDMA READ access to this QP
	InitiatorDepth uint8
}

// defaultQueueDepth is ib_srp's default queue_size.
const defaultQueueDepth = 64

// rnrInfinite is the RNR retry count meaning "retry forever".
const rnrInfinite = 7

// maxRetryCount is the largest transport retry count (a 3-bit field).
const maxRetryCount = 7

// Conn is one end of a simulated RC connection. It implements verbs.Conn.
//
// Ready is sim-only: the simulator has no file descriptors (NotifyFD
// returns -1), so a queue thread sleeps on Ready instead.
type Conn struct {
	f      *Fabric
	dev    *Device
	port   *port
	link   *Link
	peer   *Conn
	qpn    uint32
	local  netip.AddrPort
	remote netip.AddrPort

	state   qpState
	cm      cmState
	closing bool // Close is tearing it down: no more CM events

	sendDepth  int
	recvDepth  int
	maxSendSGE int
	retryCount int
	rnrRetry   int
	ackTimeout time.Duration
	remoteRead bool // the peer may RDMA READ through this QP

	sq     ring[sendEntry]
	sqUsed int // send WRs posted and not yet reaped by Poll
	rq     ring[verbs.RecvWR]
	rqUsed int
	cq     ring[verbs.Completion]

	armed bool
	ready chan struct{}

	cmEvents chan verbs.CMEvent

	timer   clock.Timer
	timerAt time.Time
	fire    func() // c.onTimer, bound once so arming does not allocate
	cmTimer clock.Timer
}

var _ verbs.Conn = (*Conn)(nil)

// newConn builds a connected-to-be QP on port p of handle d. Caller holds
// the fabric lock.
func (f *Fabric) newConn(d *Device, p *port, cp ConnParams) (*Conn, error) {
	info := d.hca.info
	if cp.SendDepth == 0 {
		cp.SendDepth = defaultQueueDepth
	}
	if cp.RecvDepth == 0 {
		cp.RecvDepth = defaultQueueDepth
	}
	if cp.MaxSendSGE == 0 {
		cp.MaxSendSGE = verbs.MaxSGE
	}
	if cp.AckTimeout == 0 {
		cp.AckTimeout = f.cfg.DefaultAckTimeout
	}
	if cp.SendDepth < 0 || cp.SendDepth > info.MaxQPWR || cp.RecvDepth < 0 || cp.RecvDepth > info.MaxQPWR ||
		cp.MaxSendSGE < 0 || cp.MaxSendSGE > min(verbs.MaxSGE, max(info.MaxSGE, 1)) ||
		cp.RetryCount > maxRetryCount || cp.RNRRetry > rnrInfinite {
		return nil, ErrBadConfig
	}
	d.hca.nextQPN++
	c := &Conn{
		f:          f,
		dev:        d,
		port:       p,
		link:       p.link,
		qpn:        d.hca.nextQPN,
		state:      qpReady,
		sendDepth:  cp.SendDepth,
		recvDepth:  cp.RecvDepth,
		maxSendSGE: cp.MaxSendSGE,
		retryCount: int(cp.RetryCount),
		rnrRetry:   int(cp.RNRRetry),
		ackTimeout: verbs.AckTimeoutDuration(cp.AckTimeout),
		remoteRead: cp.ResponderRes > 0,
		sq:         newRing[sendEntry](cp.SendDepth),
		rq:         newRing[verbs.RecvWR](cp.RecvDepth),
		cq:         newRing[verbs.Completion](cp.SendDepth + cp.RecvDepth),
		ready:      make(chan struct{}, 1),
		cmEvents:   make(chan verbs.CMEvent, cmEventBuffer),
	}
	c.fire = c.onTimer
	return c, nil
}

// attach makes c live: listed on its device handle and link.
func (c *Conn) attach() {
	c.cm = cmConnected
	c.dev.conns = append(c.dev.conns, c)
	c.link.conns = append(c.link.conns, c)
}

// firstQPN is the first QP number a device hands out (0 and 1 are the
// special QPs).
const firstQPN = 0x10

// QPN is the simulated QP number.
func (c *Conn) QPN() uint32 { return c.qpn }

// Port (sim-only) is the number of the local port the connection uses.
func (c *Conn) Port() uint8 { return c.port.num }

// Local is the local endpoint.
func (c *Conn) Local() netip.AddrPort { return c.local }

// Remote is the peer's endpoint.
func (c *Conn) Remote() netip.AddrPort { return c.remote }

// Device is the device handle the connection lives on.
func (c *Conn) Device() verbs.Device { return c.dev }

// PostSend posts a send work request. Never blocks, never allocates (with a
// zero-latency, loss-free link the request is executed before it returns).
func (c *Conn) PostSend(wr *verbs.SendWR) error {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	if c.state == qpClosed {
		return verbs.ErrClosed
	}
	if wr.NumSGE < 0 || wr.NumSGE > c.maxSendSGE || wr.Op > verbs.OpRDMARead {
		return verbs.ErrInvalidWR
	}
	if c.sqUsed >= c.sendDepth {
		return verbs.ErrQueueFull
	}
	c.sqUsed++
	if c.state == qpError {
		c.pushCQE(verbs.Completion{ID: wr.ID, Status: verbs.StatusWRFlushErr, Op: compOp(wr.Op)})
		return nil
	}
	now := c.f.clk.Now()
	e := c.sq.push()
	*e = sendEntry{wr: *wr, postedAt: now}
	c.progress(now)
	c.f.drain()
	return nil
}

// PostRecv posts a receive work request. A sender blocked on RNR for lack
// of it is served at once.
func (c *Conn) PostRecv(wr *verbs.RecvWR) error {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	if c.state == qpClosed {
		return verbs.ErrClosed
	}
	if wr.NumSGE < 0 || wr.NumSGE > verbs.MaxSGE {
		return verbs.ErrInvalidWR
	}
	if c.rqUsed >= c.recvDepth {
		return verbs.ErrQueueFull
	}
	c.rqUsed++
	if c.state == qpError {
		c.pushCQE(verbs.Completion{ID: wr.ID, Status: verbs.StatusWRFlushErr, Op: verbs.CompRecv})
		return nil
	}
	*c.rq.push() = *wr
	if p := c.peer; p != nil && p.state == qpReady && p.sq.len() > 0 {
		p.progress(c.f.clk.Now())
		c.f.drain()
	}
	return nil
}

// Poll moves up to len(out) completions into out.
func (c *Conn) Poll(out []verbs.Completion) int {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	if c.state == qpClosed {
		return 0
	}
	n := 0
	for n < len(out) && c.cq.len() > 0 {
		out[n] = *c.cq.at(0)
		c.cq.pop()
		if out[n].Op == verbs.CompRecv {
			c.rqUsed--
		} else {
			c.sqUsed--
		}
		n++
	}
	return n
}

// pushCQE appends a completion and fires an armed notification. The CQ
// holds SendDepth+RecvDepth entries and every entry stands for a WR still
// counted in sqUsed or rqUsed, so it cannot overflow.
func (c *Conn) pushCQE(wc verbs.Completion) {
	*c.cq.push() = wc
	if c.armed {
		c.armed = false
		select {
		case c.ready <- struct{}{}:
		default:
		}
	}
}

// ArmNotify requests one signal on Ready at the next completion.
func (c *Conn) ArmNotify() error {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	if c.state == qpClosed {
		return verbs.ErrClosed
	}
	c.armed = true
	return nil
}

// Ready (sim-only) receives one value when a completion arrives after
// ArmNotify. Its buffer holds one signal, so a signal sent while nobody
// waits is not lost. Use it where real code waits on NotifyFD.
func (c *Conn) Ready() <-chan struct{} { return c.ready }

// NotifyFD returns -1: the simulator has no file descriptors; see Ready.
func (c *Conn) NotifyFD() int { return -1 }

// AckNotify is a no-op: Ready's signal is consumed by receiving it.
func (c *Conn) AckNotify() error { return nil }

// CMEvents delivers Disconnected and TimewaitExit. It is closed by Close.
func (c *Conn) CMEvents() <-chan verbs.CMEvent { return c.cmEvents }

// ForceError moves the QP to the error state: outstanding and later work
// completes with StatusWRFlushErr and nothing more reaches registered
// memory through it. The peer is not told; its requests to this QP go
// unanswered and end in StatusRetryExcErr.
func (c *Conn) ForceError() error {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	if c.state == qpClosed {
		return verbs.ErrClosed
	}
	c.toError()
	c.f.drain()
	return nil
}

// toError moves the QP to ERR and flushes both queues in order.
func (c *Conn) toError() {
	if c.state != qpReady {
		return
	}
	c.state = qpError
	c.stopTimer()
	// A peer waiting on RNR learns of this only when it retries; have it
	// re-evaluated once the current call is done.
	if p := c.peer; p != nil && p.state == qpReady && p.sq.len() > 0 {
		c.f.kicks = append(c.f.kicks, p)
	}
	for c.sq.len() > 0 {
		e := c.sq.at(0)
		c.pushCQE(verbs.Completion{ID: e.wr.ID, Status: verbs.StatusWRFlushErr, Op: compOp(e.wr.Op)})
		c.sq.pop()
	}
	for c.rq.len() > 0 {
		c.pushCQE(verbs.Completion{ID: c.rq.at(0).ID, Status: verbs.StatusWRFlushErr, Op: verbs.CompRecv})
		c.rq.pop()
	}
}

func (c *Conn) stopTimer() {
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
		c.timerAt = time.Time{}
	}
}

// arm makes sure the QP's timer fires no later than at.
func (c *Conn) arm(now, at time.Time) {
	if c.timer != nil && !c.timerAt.After(at) {
		return
	}
	c.stopTimer()
	c.timerAt = at
	c.timer = c.f.clk.AfterFunc(at.Sub(now), c.fire)
}

func (c *Conn) onTimer() {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	now := c.f.clk.Now()
	// A timer stopped too late (Real clock) may still run: it only
	// clears the slot if it is the one due.
	if c.timer != nil && !c.timerAt.After(now) {
		c.timer = nil
		c.timerAt = time.Time{}
	}
	c.progress(now)
	c.f.drain()
}

// Disconnect sends a DREQ: both QPs move to the error state, then the peer
// and this side report Disconnected and, a timewait later, TimewaitExit.
// If the DREQ cannot reach the peer (link down, blackhole) only this side
// reports Disconnected, after Config.CMTimeout. Idempotent.
func (c *Conn) Disconnect() error {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	if c.state == qpClosed {
		return verbs.ErrClosed
	}
	c.disconnectLocked()
	c.f.drain()
	return nil
}

// disconnectLocked reports whether it sent a DREQ.
func (c *Conn) disconnectLocked() bool {
	if c.cm != cmConnected {
		return false
	}
	c.cm = cmDisconnecting
	c.toError()
	p := c.peer
	if c.link.open() && p != nil && p.state != qpClosed && (p.cm == cmConnected || p.cm == cmDisconnecting) {
		// DREQ delivered, DREP back at once.
		p.cm = cmDisconnected
		p.toError()
		p.cmEvent(verbs.CMDisconnected)
		p.startTimewait()
		c.cm = cmDisconnected
		c.cmEvent(verbs.CMDisconnected)
		c.startTimewait()
		return true
	}
	c.cmTimer = c.f.clk.AfterFunc(c.f.cfg.CMTimeout, func() {
		c.f.mu.Lock()
		defer c.f.mu.Unlock()
		if c.state == qpClosed || c.cm != cmDisconnecting {
			return
		}
		c.cm = cmDisconnected
		c.cmEvent(verbs.CMDisconnected)
		c.startTimewait()
	})
	return true
}

func (c *Conn) cmEvent(k verbs.CMEventKind) {
	if c.state == qpClosed || c.closing {
		return
	}
	select {
	case c.cmEvents <- verbs.CMEvent{Kind: k, Time: c.f.clk.Now()}:
	default:
	}
}

func (c *Conn) startTimewait() {
	tw := c.f.cfg.Timewait
	if tw == 0 {
		tw = 2 * c.ackTimeout
	}
	if c.cmTimer != nil {
		c.cmTimer.Stop()
	}
	c.cmTimer = c.f.clk.AfterFunc(tw, func() {
		c.f.mu.Lock()
		defer c.f.mu.Unlock()
		if c.state == qpClosed || c.cm != cmDisconnected {
			return
		}
		c.cm = cmTimewaitDone
		c.cmEvent(verbs.CMTimewaitExit)
	})
}

// Close disconnects if connected and destroys the QP: pending completions
// are discarded and CMEvents is closed. Idempotent.
func (c *Conn) Close() error {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	c.closeLocked()
	c.f.drain()
	return nil
}

func (c *Conn) closeLocked() {
	if c.state == qpClosed {
		return
	}
	c.closing = true
	c.disconnectLocked()
	c.toError()
	c.stopTimer()
	if c.cmTimer != nil {
		c.cmTimer.Stop()
		c.cmTimer = nil
	}
	c.state = qpClosed
	if p := c.peer; p != nil && p.state == qpReady && p.sq.len() > 0 {
		c.f.kicks = append(c.f.kicks, p)
	}
	close(c.cmEvents)
	c.dev.conns = slices.DeleteFunc(c.dev.conns, func(x *Conn) bool { return x == c })
	c.link.conns = slices.DeleteFunc(c.link.conns, func(x *Conn) bool { return x == c })
}

// compOp maps a send opcode to its completion opcode.
func compOp(op verbs.Opcode) verbs.CompletionOp {
	switch op {
	case verbs.OpRDMAWrite:
		return verbs.CompRDMAWrite
	case verbs.OpRDMARead:
		return verbs.CompRDMARead
	}
	return verbs.CompSend
}
