package srp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/srp-mpathd/srp-mpathd/internal/clock"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
)

// readyConn is implemented by connections that offer a readiness channel
// (verbs/sim) in addition to, or instead of, a notification fd.
type readyConn interface {
	Ready() <-chan struct{}
}

// Dial connects to an SRP target through dev and logs in (research §2.1):
// the login request travels as CM REQ private data (56-byte RDMA/CM form, or
// the 64-byte IB CM form with p.IBCM), the SRP_LOGIN_RSP comes back in the
// REP. A target that rejects with REQ_IT_IU_LENGTH_TOO_LARGE while immediate
// data was requested gets one more attempt without it. A reject carrying an
// SRP_LOGIN_REJ is a *LoginError; a CM reject without one is the provider's
// *verbs.RejectError.
func Dial(ctx context.Context, dev verbs.Device, p ChannelParams) (*Channel, error) {
	if err := p.defaults(dev); err != nil {
		return nil, err
	}
	wanted := p.MaxIU
	if p.TargetMaxIU > 0 {
		wanted = min(wanted, p.TargetMaxIU)
	}
	imm := p.Immediate
	for {
		conn, rsp, err := login(ctx, dev, &p, wanted, imm)
		var le *LoginError
		if imm && errors.As(err, &le) && le.Reason == RejReqITIULengthTooLarge {
			p.Logger.Info("srp login: IU length refused, retrying without immediate data",
				"dst", p.Dst, "req_it_iu_len", wanted)
			imm = false
			wanted = min(wanted, NoImmITIULen)
			continue
		}
		if err != nil {
			return nil, err
		}
		c, err := newChannel(dev, conn, &p, rsp, wanted, imm)
		if err != nil {
			return nil, errors.Join(err, conn.Close())
		}
		return c, nil
	}
}

func (p *ChannelParams) defaults(dev verbs.Device) error {
	if !p.Src.IsValid() {
		return fmt.Errorf("%w: Src must be set (an unbound source short-circuits over loopback)", ErrBadParams)
	}
	if !p.Dst.IsValid() {
		return fmt.Errorf("%w: Dst must be set", ErrBadParams)
	}
	if p.QueueDepth == 0 {
		p.QueueDepth = DefaultQueueDepth
	}
	if p.QueueDepth < 1 || p.QueueDepth > maxQueueDepth {
		return fmt.Errorf("%w: QueueDepth %d (want 1..%d)", ErrBadParams, p.QueueDepth, maxQueueDepth)
	}
	if p.MaxIU == 0 {
		p.MaxIU = NoImmITIULen
		if p.Immediate {
			p.MaxIU = DefaultImmDataOffset + DefaultImmediateMax
		}
	}
	if p.MaxIU < MinITIULen {
		return fmt.Errorf("%w: MaxIU %d (want at least %d)", ErrBadParams, p.MaxIU, MinITIULen)
	}
	if p.InitiatorPortGUID == 0 {
		if p.Port == 0 {
			p.Port = portOfAddr(dev, p.Src)
		}
		gid, err := dev.GID(p.Port, 0)
		if err != nil {
			return fmt.Errorf("%w: no InitiatorPortGUID and GID 0 of port %d unreadable: %w", ErrBadParams, p.Port, err)
		}
		p.InitiatorPortGUID = gid.InterfaceID()
	}
	if p.RetryCount == 0 {
		p.RetryCount = defaultRetryCount
	}
	if p.ResolveTimeout == 0 {
		p.ResolveTimeout = defaultResolve
	}
	if p.AbortTimeout == 0 {
		p.AbortTimeout = DefaultAbortTimeout
	}
	if p.Clock == nil {
		p.Clock = clock.Real{}
	}
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// portOfAddr finds the local port whose GID table holds src (RoCE GIDs carry
// the port's IP addresses), i.e. the port the route will leave through; port
// 1 if none does (InfiniBand, or a provider without address GIDs).
func portOfAddr(dev verbs.Device, src netip.Addr) uint8 {
	want := verbs.GID(src.As16()) // IPv4 as ::ffff:a.b.c.d, like RoCE v2 GIDs
	for port := uint8(1); port <= dev.Info().Ports && port != 0; port++ {
		attr, err := dev.Port(port)
		if err != nil {
			continue
		}
		for i := range min(attr.GIDTableLen, maxGIDScan) {
			gid, err := dev.GID(port, i)
			if err != nil {
				break
			}
			if gid == want {
				return port
			}
		}
	}
	return defaultLocalPortNum
}

func (p *ChannelParams) initiatorID() InitiatorPortID {
	return InitiatorPortID{Ext: p.InitiatorExt, GUID: p.InitiatorPortGUID}
}

// login performs one connection attempt.
func login(ctx context.Context, dev verbs.Device, p *ChannelParams, itiu int, imm bool) (verbs.Conn, *LoginRsp, error) {
	action := MultiChanSingle
	if p.MultiChannel {
		action = MultiChanMulti
	}
	req := LoginReq{
		ReqITIULen:      uint32(itiu),
		ReqBufFmt:       BufFormatDirect,
		ReqFlags:        MakeLoginReqFlags(action, imm),
		InitiatorPortID: p.initiatorID(),
		TargetPortID:    p.TargetPortID,
	}
	if imm {
		req.ImmDataOffset = DefaultImmDataOffset
	}
	var priv [LoginReqLen]byte
	var n int
	var err error
	if p.IBCM {
		n, err = req.Encode(priv[:])
	} else {
		n, err = req.EncodeRDMA(priv[:])
	}
	if err != nil {
		return nil, nil, err
	}
	qd := p.QueueDepth
	conn, rep, err := dev.Dial(ctx, verbs.DialParams{
		Src:            p.Src,
		Dst:            p.Dst,
		ResolveTimeout: p.ResolveTimeout,
		Private:        priv[:n],
		ResponderRes:   responderResources,
		RetryCount:     p.RetryCount,
		RNRRetry:       infiniteRNRRetry,
		AckTimeout:     p.AckTimeout,
		SendDepth:      qd + taskMgmtSlots + replySlots + heartbeatSlots,
		RecvDepth:      qd + extraRecvs,
		MaxSendSGE:     2,
	})
	if err != nil {
		var rej *verbs.RejectError
		if errors.As(err, &rej) && len(rej.Private) > 0 && Opcode(rej.Private[0]) == OpLoginRej {
			var lr LoginRej
			if derr := lr.Decode(rej.Private); derr == nil {
				return nil, nil, &LoginError{Reason: lr.Reason, Immediate: imm, ReqITIULen: uint32(itiu),
					Err: fmt.Errorf("%w: %v", ErrLoginRejected, lr.Reason)}
			}
		}
		return nil, nil, err
	}
	var rsp LoginRsp
	if err := rsp.Decode(rep); err != nil {
		return nil, nil, errors.Join(&LoginError{Immediate: imm, ReqITIULen: uint32(itiu),
			Err: fmt.Errorf("%w: login response: %w", ErrProtocol, err)}, conn.Close())
	}
	return conn, &rsp, nil
}

// loginProtoErr builds the error for an unusable login response.
func loginProtoErr(itiu int, imm bool, format string, args ...any) error {
	return &LoginError{Immediate: imm, ReqITIULen: uint32(itiu),
		Err: fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, args...)...)}
}

// newChannel sets the channel up after a successful login: it checks the
// login response (research §2.1 step 5), allocates the IU rings and posts
// every receive.
func newChannel(dev verbs.Device, conn verbs.Conn, p *ChannelParams, rsp *LoginRsp, wanted int, imm bool) (*Channel, error) {
	if rsp.MaxITIULen < MinITIULen {
		return nil, loginProtoErr(wanted, imm, "max_it_iu_len %d below %d", rsp.MaxITIULen, MinITIULen)
	}
	if rsp.MaxTIIULen < RspLen {
		return nil, loginProtoErr(wanted, imm, "max_ti_iu_len %d below %d", rsp.MaxTIIULen, RspLen)
	}
	if rsp.ReqLimDelta == 0 || rsp.ReqLimDelta > maxReqLim {
		return nil, loginProtoErr(wanted, imm, "initial req_lim_delta %d outside 1..%d", rsp.ReqLimDelta, maxReqLim)
	}
	maxITIU := min(wanted, int(rsp.MaxITIULen))
	if maxITIU < directOnlyCmdLen {
		return nil, loginProtoErr(wanted, imm, "max_it_iu_len %d cannot carry an SRP_CMD with a direct descriptor", maxITIU)
	}
	qd := p.QueueDepth
	c := &Channel{
		conn:    conn,
		dev:     dev,
		log:     p.Logger.With("remote", conn.Remote().String()),
		clk:     p.Clock,
		remote:  conn.Remote().String(),
		maxITIU: maxITIU,
		// Receive IUs are sized by max_ti_iu_len like ib_srp's, but capped:
		// SRP_RSP with the largest sense is a few hundred bytes, and a
		// target announcing more than maxTIIULen would only waste memory.
		// A larger IU then fails the channel (local length error).
		maxTIIU:   int(min(rsp.MaxTIIULen, maxTIIULen)),
		immediate: imm && rsp.RspFlags.ImmedSupported() && DefaultImmDataOffset < maxITIU,
		immOffset: DefaultImmDataOffset,
		abortTmo:  p.AbortTimeout,
		reqLim:    int32(rsp.ReqLimDelta),
		nRecv:     qd + extraRecvs,
		tskBase:   qd,
		replyBase: qd + taskMgmtSlots,
		tags:      make([]tagSlot, qd),
		free:      make([]uint16, 0, qd),
		pending:   make([]pendingReply, 0, qd+extraRecvs),
		results:   make([]Result, qd),
		resTag:    make([]int32, qd),
		failedCh:  make(chan struct{}),
		closing:   make(chan struct{}),
	}
	if rc, ok := conn.(readyConn); ok {
		c.ready = rc.Ready()
	}
	c.txStride = (maxITIU + iuAlign - 1) &^ (iuAlign - 1)
	c.rxStride = (c.maxTIIU + iuAlign - 1) &^ (iuAlign - 1)
	c.info = ChannelInfo{
		MaxITIU: maxITIU, MaxTIIU: c.maxTIIU, InitialReqLim: int(rsp.ReqLimDelta), Immediate: c.immediate,
		MultiChan: rsp.RspFlags.MultiChan(), QueueDepth: qd, Local: conn.Local(), Remote: conn.Remote(),
		InitiatorID: p.initiatorID(), TargetID: p.TargetPortID,
	}
	for i := qd - 1; i >= 0; i-- {
		c.free = append(c.free, uint16(i))
		c.tags[i].aborting = -1
	}
	for i := range c.tsk {
		c.tsk[i].target = -1
		c.tsk[i].waiter = make(chan error, 1)
	}
	var err error
	nTx := qd + taskMgmtSlots + replySlots
	if c.txBuf, err = dev.AllocBuffer(nTx*c.txStride, verbs.AccessLocalWrite); err != nil {
		return nil, fmt.Errorf("srp: transmit ring: %w", err)
	}
	if c.rxBuf, err = dev.AllocBuffer(c.nRecv*c.rxStride, verbs.AccessLocalWrite); err != nil {
		return nil, errors.Join(fmt.Errorf("srp: receive ring: %w", err), c.txBuf.Close())
	}
	for i := range c.nRecv {
		if err := c.postRecv(i); err != nil {
			return nil, errors.Join(fmt.Errorf("srp: post receive: %w", err), c.txBuf.Close(), c.rxBuf.Close())
		}
	}
	c.watchers.Add(1)
	go c.watchCM()
	c.log.Debug("srp channel logged in", "max_it_iu_len", c.maxITIU, "max_ti_iu_len", c.maxTIIU,
		"req_lim", c.reqLim, "immediate", c.immediate, "multichan", c.info.MultiChan)
	return c, nil
}

// watchCM turns connection-manager events into a channel failure. It is the
// channel's only goroutine (control plane) and ends at Close.
func (c *Channel) watchCM() {
	defer c.watchers.Done()
	events := c.conn.CMEvents()
	for {
		select {
		case <-c.closing:
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			switch ev.Kind {
			case verbs.CMDisconnected, verbs.CMDeviceRemoval:
				c.fail("cm event", fmt.Errorf("%w: %v", ErrDisconnected, ev.Kind))
				// Like ib_srp on RDMA/CM DISCONNECTED: answer with our own
				// disconnect so the target's side completes.
				_ = c.conn.Disconnect()
			}
		}
	}
}
