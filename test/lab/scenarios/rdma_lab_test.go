//go:build lab

package scenarios

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs/rdma"
	"github.com/srp-mpathd/srp-mpathd/test/lab/labkit"
)

// The rdma scenarios check the rdma-core provider (internal/verbs/rdma)
// against soft-RoCE: two veth pairs, an rxe device on each end, and the
// policy routing of the testbed (shared/testbed/srp-lab.sh) so that traffic
// between two addresses of one kernel really crosses the veth pair.
//
// Pair n: initiator side rdi<n> (198.18.<10+n>.1, rxe_i<n>) <-> target side
// rdt<n> (198.18.<10+n>.2, rxe_t<n>). Pair 0 carries rdma-verbs, pair 1
// rdma-faults. Both pairs are created before the provider first touches
// librdmacm, so the scenarios do not depend on its device hotplug handling.

// rdmaModules are the kernel modules the provider needs in the guest.
var rdmaModules = []string{"ib_core", "ib_uverbs", "rdma_cm", "rdma_ucm", "rdma_rxe", "veth", "sch_netem"}

const (
	rdmaPairs      = 2
	rdmaSubnetBase = 10 // pair n uses 198.18.(10+n).0/24
	rdmaPort       = 7000
	rdmaNoListener = 7001
	rxeActiveWait  = 30 * time.Second
	cmWait         = 30 * time.Second
	wcWait         = 30 * time.Second
	labAckTimeout  = 14 // 4.096 µs × 2^14 ≈ 67 ms per try
	labRetryCount  = 3
	bufSize        = 64 << 10
	latencyRounds  = 200
	// dialCancelAfter bounds a connect through a blackhole.
	dialCancelAfter = 3 * time.Second
	timewaitWait    = 10 * time.Second
)

type rxePair struct {
	n          int
	ini, tgt   string // netdevs
	iniDev     string // rxe devices
	tgtDev     string
	iniIP, tIP netip.Addr
}

func pair(n int) rxePair {
	net := byte(rdmaSubnetBase + n)
	return rxePair{
		n: n, ini: fmt.Sprintf("rdi%d", n), tgt: fmt.Sprintf("rdt%d", n),
		iniDev: fmt.Sprintf("rxe_i%d", n), tgtDev: fmt.Sprintf("rxe_t%d", n),
		iniIP: netip.AddrFrom4([4]byte{198, 18, net, 1}), tIP: netip.AddrFrom4([4]byte{198, 18, net, 2}),
	}
}

func (p rxePair) iniTable() string { return fmt.Sprint(200 + 2*p.n) }
func (p rxePair) tgtTable() string { return fmt.Sprint(201 + 2*p.n) }

// routes (re)installs the pair's policy routes; a link going down flushes them.
func (p rxePair) routes(t *testing.T) {
	t.Helper()
	subnet := netip.PrefixFrom(p.iniIP, 24).Masked().String()
	labkit.Run(t, "ip", "route", "replace", subnet, "dev", p.ini, "src", p.iniIP.String(), "table", p.iniTable())
	labkit.Run(t, "ip", "route", "replace", subnet, "dev", p.tgt, "src", p.tIP.String(), "table", p.tgtTable())
}

// setupRxe creates both pairs once per VM (idempotent: a later test of the
// same process finds them).
func setupRxe(t *testing.T) {
	t.Helper()
	for _, m := range rdmaModules {
		labkit.RequireModule(t, m)
	}
	if _, err := os.Stat("/sys/class/infiniband/" + pair(rdmaPairs-1).tgtDev); err == nil {
		return
	}
	labkit.Run(t, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
		"net.ipv4.conf.all.accept_local=1", "net.ipv4.conf.default.accept_local=1")
	// Move the local table behind the per-address rules so that locally
	// generated traffic from each address leaves through its own veth.
	if !strings.Contains(labkit.Run(t, "ip", "rule"), "1000:") {
		labkit.Run(t, "ip", "rule", "add", "pref", "1000", "lookup", "local")
		labkit.Run(t, "ip", "rule", "del", "pref", "0", "lookup", "local")
	}
	for n := range rdmaPairs {
		p := pair(n)
		labkit.Run(t, "ip", "link", "add", p.ini, "type", "veth", "peer", "name", p.tgt)
		for _, d := range []string{p.ini, p.tgt} {
			labkit.Run(t, "sysctl", "-qw", "net.ipv4.conf."+d+".rp_filter=0", "net.ipv4.conf."+d+".accept_local=1")
		}
		labkit.Run(t, "ip", "addr", "add", p.iniIP.String()+"/24", "dev", p.ini)
		labkit.Run(t, "ip", "addr", "add", p.tIP.String()+"/24", "dev", p.tgt)
		labkit.Run(t, "ip", "link", "set", p.ini, "up")
		labkit.Run(t, "ip", "link", "set", p.tgt, "up")
		labkit.Run(t, "ip", "rule", "add", "pref", p.iniTable(), "from", p.iniIP.String(), "iif", "lo", "lookup", p.iniTable())
		labkit.Run(t, "ip", "rule", "add", "pref", p.tgtTable(), "from", p.tIP.String(), "iif", "lo", "lookup", p.tgtTable())
		p.routes(t)
		labkit.Run(t, "rdma", "link", "add", p.iniDev, "type", "rxe", "netdev", p.ini)
		labkit.Run(t, "rdma", "link", "add", p.tgtDev, "type", "rxe", "netdev", p.tgt)
	}
	for n := range rdmaPairs {
		p := pair(n)
		for _, d := range []string{p.iniDev, p.tgtDev} {
			ctx, cancel := context.WithTimeout(context.Background(), rxeActiveWait)
			err := waitFor(ctx, func() bool {
				b, err := os.ReadFile("/sys/class/infiniband/" + d + "/ports/1/state")
				return err == nil && bytes.Contains(b, []byte("ACTIVE"))
			})
			cancel()
			if err != nil {
				t.Fatalf("%s port 1 not ACTIVE within %v", d, rxeActiveWait)
			}
		}
	}
}

// rdmaEnv is an open fabric with both devices of a pair and a listener on
// the target side.
type rdmaEnv struct {
	t      *testing.T
	p      rxePair
	ini    *rdma.Device
	tgt    *rdma.Device
	l      *rdma.Listener
	accept rdma.AcceptParams
}

func openEnv(t *testing.T, p rxePair) *rdmaEnv {
	t.Helper()
	f, err := rdma.Open(nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &rdmaEnv{t: t, p: p, accept: rdma.AcceptParams{ResponderRes: 4, InitiatorDepth: 4, RNRRetry: 7, SendDepth: 16, RecvDepth: 16}}
	if e.ini, err = f.OpenDevice(p.iniDev); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeOK(t, "initiator device", e.ini.Close) })
	if e.tgt, err = f.OpenDevice(p.tgtDev); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeOK(t, "target device", e.tgt.Close) })
	if e.l, err = e.tgt.Listen(netip.AddrPortFrom(p.tIP, rdmaPort), 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeOK(t, "listener", e.l.Close) })
	return e
}

func closeOK(t *testing.T, what string, f func() error) {
	if err := f(); err != nil {
		t.Errorf("close %s: %v", what, err)
	}
}

func (e *rdmaEnv) dialParams(private string) verbs.DialParams {
	return verbs.DialParams{
		Src: e.p.iniIP, Dst: netip.AddrPortFrom(e.p.tIP, rdmaPort), Private: []byte(private),
		ResponderRes: 255, InitiatorDepth: 255, RetryCount: labRetryCount, RNRRetry: 7, AckTimeout: labAckTimeout,
		SendDepth: 16, RecvDepth: 16,
	}
}

// answer is what the listener side did with one request.
type answer struct {
	conn    *rdma.Conn
	private []byte
	err     error
}

// serve answers the next request on the listener: accept (rep != nil) or
// reject with rej.
func (e *rdmaEnv) serve(ctx context.Context, rep, rej []byte) <-chan answer {
	out := make(chan answer, 1)
	go func() {
		req, err := e.l.Next(ctx)
		if err != nil {
			out <- answer{err: err}
			return
		}
		a := answer{private: req.Private()}
		if rep != nil {
			p := e.accept
			p.Private = rep
			a.conn, a.err = req.Accept(ctx, p)
		} else {
			a.err = req.Reject(rej)
		}
		out <- a
	}()
	return out
}

// connect dials through the pair with an accepting listener.
func (e *rdmaEnv) connect(p verbs.DialParams, rep []byte) (ini, tgt *rdma.Conn, repGot, reqGot []byte) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmWait)
	defer cancel()
	ans := e.serve(ctx, rep, nil)
	c, repGot, err := e.ini.DialConn(ctx, p)
	a := <-ans
	if err != nil || a.err != nil {
		if c != nil {
			c.Close()
		}
		if a.conn != nil {
			a.conn.Close()
		}
		e.t.Fatalf("connect %v -> %v: dial: %v; accept: %v", p.Src, p.Dst, err, a.err)
	}
	e.t.Cleanup(func() { c.Close(); a.conn.Close() })
	return c, a.conn, repGot, a.private
}

// waitWC waits for one completion through the completion channel fd (arm,
// poll again, epoll on the fd, ack), as a ublk queue thread does.
func waitWC(t *testing.T, c *rdma.Conn, limit time.Duration) verbs.Completion {
	t.Helper()
	var wc [1]verbs.Completion
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(ep)
	if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, c.NotifyFD(), &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(c.NotifyFD())}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(limit)
	for {
		if c.Poll(wc[:]) == 1 {
			return wc[0]
		}
		if err := c.ArmNotify(); err != nil {
			t.Fatal(err)
		}
		if c.Poll(wc[:]) == 1 {
			return wc[0]
		}
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("no completion within %v", limit)
		}
		var evs [1]syscall.EpollEvent
		if _, err := syscall.EpollWait(ep, evs[:], int(left/time.Millisecond)+1); err != nil && !errors.Is(err, syscall.EINTR) {
			t.Fatal(err)
		}
		if err := c.AckNotify(); err != nil {
			t.Fatal(err)
		}
	}
}

// spinWC busy-polls for one completion (the allocation and latency checks).
func spinWC(c *rdma.Conn, wc []verbs.Completion, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for c.Poll(wc[:1]) == 0 {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

func wantWC(t *testing.T, what string, got verbs.Completion, id uint64, st verbs.Status) {
	t.Helper()
	if got.ID != id || got.Status != st {
		t.Fatalf("%s: completion id %d status %v (vendor %#x), want id %d status %v", what, got.ID, got.Status, got.VendorErr, id, st)
	}
}

func heartbeat(id uint64) *verbs.SendWR {
	return &verbs.SendWR{ID: id, Op: verbs.OpRDMAWrite, Signaled: true}
}

// TestRDMAVerbs: queries, an RC connection with private data both ways,
// SEND/RECV, RDMA WRITE and READ by rkey, the zero-length RDMA WRITE
// heartbeat, allocation-free data path, rejects with private data, the
// no-listener reject, the wrong-device check and a disconnect.
func TestRDMAVerbs(t *testing.T) {
	labkit.RequireVM(t)
	setupRxe(t)
	sc := labkit.Begin(t, "rdma-verbs")
	p := pair(0)
	e := openEnv(t, p)

	// Queries.
	info := e.ini.Info()
	sc.Notef("%s: node guid %#x, fw %q, max_qp_wr %d, max_sge %d, max_qp_rd_atom %d, max_qp_init_rd_atom %d",
		info.Name, info.NodeGUID, info.FirmwareVers, info.MaxQPWR, info.MaxSGE, info.MaxQPRdAtom, info.MaxQPInitRd)
	pa, err := e.ini.Port(1)
	if err != nil {
		t.Fatal(err)
	}
	if pa.State != verbs.PortActive || pa.LinkLayer != verbs.LinkEthernet || pa.PKeyTableLen < 1 || pa.GIDTableLen < 2 {
		t.Errorf("port 1 = %+v, want active Ethernet with GIDs and a P_Key", pa)
	}
	sc.Notef("port 1: %+v", pa)
	gid0, err := e.ini.GID(1, 0)
	if err != nil {
		t.Fatal(err)
	}
	sysGID, _ := os.ReadFile("/sys/class/infiniband/" + p.iniDev + "/ports/1/gids/0")
	if gid0.String() != strings.TrimSpace(string(sysGID)) {
		t.Errorf("GID 0 = %v, sysfs %q", gid0, sysGID)
	}
	found := false
	for i := range pa.GIDTableLen {
		g, err := e.ini.GID(1, i)
		if err == nil && g.Addr().Unmap() == p.iniIP {
			found = true
			sc.Notef("GID %d = %v (RoCE v2 GID of %v)", i, g, p.iniIP)
			break
		}
	}
	if !found {
		t.Errorf("no GID of %v on %s", p.iniIP, p.iniDev)
	}
	if _, err := e.ini.GID(1, pa.GIDTableLen); !errors.Is(err, verbs.ErrIndexRange) {
		t.Errorf("GID past the table: %v, want ErrIndexRange", err)
	}
	if pk, err := e.ini.PKey(1, 0); err != nil || pk != 0xffff {
		t.Errorf("PKey(1, 0) = %#x, %v; want 0xffff", pk, err)
	}
	if i, err := e.ini.PKeyIndex(1, 0xffff); err != nil || i != 0 {
		t.Errorf("PKeyIndex(0xffff) = %d, %v; want 0", i, err)
	}
	if _, err := e.ini.PKey(1, uint16(pa.PKeyTableLen)); !errors.Is(err, verbs.ErrIndexRange) {
		t.Errorf("PKey past the table: %v, want ErrIndexRange", err)
	}
	if _, err := e.ini.MAD(1); !errors.Is(err, verbs.ErrNotSupported) {
		t.Errorf("MAD on RoCE: %v, want ErrNotSupported", err)
	}

	// Wrong device: the source address belongs to rxe_i0, Dial on rxe_t0.
	{
		ctx, cancel := context.WithTimeout(context.Background(), cmWait)
		_, _, err := e.tgt.Dial(ctx, e.dialParams("wrong"))
		cancel()
		if !errors.Is(err, rdma.ErrWrongDevice) {
			t.Errorf("Dial on the wrong device: %v, want ErrWrongDevice", err)
		} else {
			sc.Notef("wrong device: %v", err)
		}
	}

	// Connect with private data both ways.
	start := time.Now()
	ci, ct, rep, req := e.connect(e.dialParams("req-hello"), []byte("rep-hello"))
	sc.Figure("connect_ms", float64(time.Since(start).Microseconds())/1000)
	if !bytes.HasPrefix(req, []byte("req-hello")) || !bytes.HasPrefix(rep, []byte("rep-hello")) {
		t.Errorf("private data: REQ %q, REP %q", req, rep)
	}
	sc.Notef("REQ private data %d bytes, REP private data %d bytes; local %v remote %v", len(req), len(rep), ci.Local(), ci.Remote())
	if ci.Local().Addr() != p.iniIP || ci.Remote() != netip.AddrPortFrom(p.tIP, rdmaPort) {
		t.Errorf("endpoints %v -> %v", ci.Local(), ci.Remote())
	}
	if at, rc, rnr, err := ci.QPTimeouts(); err != nil {
		t.Error(err)
	} else {
		sc.Figures(map[string]float64{"qp_ack_timeout": float64(at), "qp_retry_cnt": float64(rc), "qp_rnr_retry": float64(rnr)})
		if at != labAckTimeout || rc != labRetryCount {
			t.Errorf("QP ack timeout %d retry %d, want %d and %d (rdma_set_option)", at, rc, labAckTimeout, labRetryCount)
		}
	}

	bi, err := e.ini.AllocBuffer(bufSize, verbs.AccessData)
	if err != nil {
		t.Fatal(err)
	}
	defer bi.Close()
	bt, err := e.tgt.AllocBuffer(bufSize, verbs.AccessData)
	if err != nil {
		t.Fatal(err)
	}
	defer bt.Close()

	// SEND/RECV.
	msg := []byte("hello over soft-RoCE")
	copy(bi.Bytes(), msg)
	rwr := &verbs.RecvWR{ID: 11, NumSGE: 1}
	rwr.SGE[0] = verbs.SGE{Addr: bt.Addr(), Length: 4096, LKey: bt.LKey()}
	if err := ct.PostRecv(rwr); err != nil {
		t.Fatal(err)
	}
	swr := &verbs.SendWR{ID: 12, Op: verbs.OpSend, Signaled: true, NumSGE: 2}
	swr.SGE[0] = verbs.SGE{Addr: bi.Addr(), Length: 5, LKey: bi.LKey()}
	swr.SGE[1] = verbs.SGE{Addr: bi.Addr() + 5, Length: uint32(len(msg) - 5), LKey: bi.LKey()}
	if err := ci.PostSend(swr); err != nil {
		t.Fatal(err)
	}
	wantWC(t, "send", waitWC(t, ci, wcWait), 12, verbs.StatusSuccess)
	rc := waitWC(t, ct, wcWait)
	wantWC(t, "recv", rc, 11, verbs.StatusSuccess)
	if rc.Op != verbs.CompRecv || int(rc.ByteLen) != len(msg) || !bytes.Equal(bt.Bytes()[:len(msg)], msg) {
		t.Errorf("recv: op %v, %d bytes %q", rc.Op, rc.ByteLen, bt.Bytes()[:rc.ByteLen])
	}

	// RDMA WRITE by rkey.
	const chunk = 8192
	for i := range chunk {
		bi.Bytes()[chunk+i] = byte(i * 7)
	}
	w := &verbs.SendWR{ID: 21, Op: verbs.OpRDMAWrite, Signaled: true, NumSGE: 1, RemoteAddr: bt.Addr() + 2*chunk, RKey: bt.RKey()}
	w.SGE[0] = verbs.SGE{Addr: bi.Addr() + chunk, Length: chunk, LKey: bi.LKey()}
	if err := ci.PostSend(w); err != nil {
		t.Fatal(err)
	}
	if got := waitWC(t, ci, wcWait); got.ID != 21 || got.Status != verbs.StatusSuccess || got.Op != verbs.CompRDMAWrite {
		t.Fatalf("rdma write: %+v", got)
	}
	if !bytes.Equal(bt.Bytes()[2*chunk:3*chunk], bi.Bytes()[chunk:2*chunk]) {
		t.Error("RDMA WRITE: target memory differs from the source")
	}

	// RDMA READ by rkey.
	for i := range chunk {
		bt.Bytes()[4*chunk+i] = byte(i * 13)
	}
	r := &verbs.SendWR{ID: 22, Op: verbs.OpRDMARead, Signaled: true, NumSGE: 1, RemoteAddr: bt.Addr() + 4*chunk, RKey: bt.RKey()}
	r.SGE[0] = verbs.SGE{Addr: bi.Addr() + 5*chunk, Length: chunk, LKey: bi.LKey()}
	if err := ci.PostSend(r); err != nil {
		t.Fatal(err)
	}
	if got := waitWC(t, ci, wcWait); got.ID != 22 || got.Status != verbs.StatusSuccess || got.Op != verbs.CompRDMARead || got.ByteLen != chunk {
		t.Fatalf("rdma read: %+v", got)
	}
	if !bytes.Equal(bi.Bytes()[5*chunk:6*chunk], bt.Bytes()[4*chunk:5*chunk]) {
		t.Error("RDMA READ: local memory differs from the target's")
	}

	// Zero-length RDMA WRITE heartbeat (rkey 0, no SGE).
	if err := ci.PostSend(heartbeat(31)); err != nil {
		t.Fatal(err)
	}
	wantWC(t, "heartbeat", waitWC(t, ci, wcWait), 31, verbs.StatusSuccess)
	sc.Figure("heartbeat_ok", 1)

	// Latency and allocations of the data path: heartbeat post + busy poll.
	var wc [4]verbs.Completion
	start = time.Now()
	for i := range latencyRounds {
		if err := ci.PostSend(heartbeat(uint64(100 + i))); err != nil {
			t.Fatal(err)
		}
		if !spinWC(ci, wc[:], wcWait) || wc[0].Status != verbs.StatusSuccess {
			t.Fatalf("heartbeat %d: %+v", i, wc[0])
		}
	}
	sc.Figure("heartbeat_rtt_us", float64(time.Since(start).Microseconds())/latencyRounds)
	var postErr error
	allocs := testing.AllocsPerRun(100, func() {
		if err := ci.PostSend(heartbeat(1)); err != nil {
			postErr = err
			return
		}
		spinWC(ci, wc[:], wcWait)
		_ = ci.ArmNotify()
		_ = ci.AckNotify()
	})
	if postErr != nil {
		t.Fatal(postErr)
	}
	sc.Figure("datapath_allocs_per_op", allocs)
	if allocs != 0 {
		t.Errorf("data path allocates %.1f times per heartbeat round", allocs)
	}
	allocs = testing.AllocsPerRun(100, func() {
		_ = ct.PostRecv(rwr)
		_ = ci.PostSend(swr)
		spinWC(ci, wc[:], wcWait)
		spinWC(ct, wc[:], wcWait)
	})
	sc.Figure("sendrecv_allocs_per_op", allocs)
	if allocs != 0 {
		t.Errorf("send/recv allocates %.1f times per round", allocs)
	}

	// Reject with private data (SRP_LOGIN_REJ rides here).
	{
		ctx, cancel := context.WithTimeout(context.Background(), cmWait)
		ans := e.serve(ctx, nil, []byte("login-rej"))
		_, _, err := e.ini.Dial(ctx, e.dialParams("reject-me"))
		a := <-ans
		cancel()
		var rej *verbs.RejectError
		if a.err != nil || !errors.As(err, &rej) || rej.Reason != verbs.CMRejectConsumer || !bytes.HasPrefix(rej.Private, []byte("login-rej")) {
			t.Errorf("reject: dial %v, listener %v", err, a.err)
		} else {
			sc.Figure("reject_reason", float64(rej.Reason))
			sc.Notef("reject: %v (private data %d bytes)", err, len(rej.Private))
		}
	}

	// Nothing listening (research/srp-protocol.md §7 question 5).
	{
		ctx, cancel := context.WithTimeout(context.Background(), cmWait)
		dp := e.dialParams("nobody")
		dp.Dst = netip.AddrPortFrom(p.tIP, rdmaNoListener)
		_, _, err := e.ini.Dial(ctx, dp)
		cancel()
		var rej *verbs.RejectError
		if errors.As(err, &rej) {
			sc.Figure("no_listener_reason", float64(rej.Reason))
		}
		sc.Notef("no listener: %v (ErrConnRefused: %v)", err, errors.Is(err, verbs.ErrConnRefused))
		if !errors.Is(err, verbs.ErrConnRefused) {
			t.Errorf("no listener: %v, want ErrConnRefused", err)
		}
	}

	// A bad rkey: the responder NAKs, the requester completes with a
	// remote access error and its QP goes to ERR (flushing the rest).
	bad := &verbs.SendWR{ID: 41, Op: verbs.OpRDMAWrite, Signaled: true, NumSGE: 1, RemoteAddr: bt.Addr(), RKey: bt.RKey() ^ 0xff}
	bad.SGE[0] = verbs.SGE{Addr: bi.Addr(), Length: 64, LKey: bi.LKey()}
	if err := ci.PostSend(bad); err != nil {
		t.Fatal(err)
	}
	if got := waitWC(t, ci, wcWait); got.ID != 41 || got.Status != verbs.StatusRemAccessErr {
		t.Errorf("bad rkey: %+v (%v), want remote access error", got, got.Status)
	}
	if err := ci.PostSend(heartbeat(42)); err == nil {
		wantWC(t, "heartbeat after the QP error", waitWC(t, ci, wcWait), 42, verbs.StatusFlushErr)
	}

	// Disconnect: the peer sees DISCONNECTED.
	start = time.Now()
	if err := ci.Disconnect(); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-ct.CMEvents():
		if ev.Kind != verbs.CMDisconnected {
			t.Errorf("target CM event %v, want disconnected", ev.Kind)
		}
		sc.Figure("disconnect_event_ms", float64(time.Since(start).Microseconds())/1000)
	case <-time.After(cmWait):
		t.Error("target saw no DISCONNECTED")
	}
	// The initiator's own id ends with TIMEWAIT_EXIT (informational).
	select {
	case ev := <-ci.CMEvents():
		sc.Notef("initiator CM event after its disconnect: %v at +%v", ev.Kind, ev.Time.Sub(start))
	case <-time.After(timewaitWait):
		sc.Notef("initiator: no CM event within %v of its disconnect", timewaitWait)
	}
}

// TestRDMAFaults: the retry budget through a blackhole (ACK timeout 14,
// retry count 3), PORT_ERR and PORT_ACTIVE on link down and up, and what a
// heartbeat does on a downed link.
func TestRDMAFaults(t *testing.T) {
	labkit.RequireVM(t)
	setupRxe(t)
	sc := labkit.Begin(t, "rdma-faults")
	p := pair(1)
	e := openEnv(t, p)

	// The ACK timeout RDMA/CM programs without the option (§7 question 3).
	{
		dp := e.dialParams("default-timeout")
		dp.AckTimeout = 0
		ci, ct, _, _ := e.connect(dp, []byte("ok"))
		if at, _, _, err := ci.QPTimeouts(); err == nil {
			sc.Figure("default_qp_ack_timeout", float64(at))
		} else {
			t.Error(err)
		}
		// ForceError flushes what is posted (the multipath layer's "no
		// late DMA" step); the peer then sees the connection break only
		// through its own traffic or a disconnect.
		b, err := e.ini.AllocBuffer(4096, verbs.AccessData)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		rwr := &verbs.RecvWR{ID: 7, NumSGE: 1}
		rwr.SGE[0] = verbs.SGE{Addr: b.Addr(), Length: 4096, LKey: b.LKey()}
		if err := ci.PostRecv(rwr); err != nil {
			t.Fatal(err)
		}
		if err := ci.ForceError(); err != nil {
			t.Fatal(err)
		}
		wantWC(t, "receive after ForceError", waitWC(t, ci, wcWait), 7, verbs.StatusFlushErr)
		start := time.Now()
		if err := ci.Close(); err != nil {
			t.Error(err)
		}
		select {
		case ev := <-ct.CMEvents():
			sc.Notef("peer of a closed connection: %v after %v", ev.Kind, time.Since(start))
			if ev.Kind != verbs.CMDisconnected {
				t.Errorf("peer CM event %v, want disconnected", ev.Kind)
			}
		case <-time.After(cmWait):
			t.Error("the peer of a closed connection saw no DISCONNECTED")
		}
	}

	// Blackhole: 100 % loss on both ends; no port event, the heartbeat
	// exhausts its retries.
	{
		ci, _, _, _ := e.connect(e.dialParams("blackhole"), []byte("ok"))
		if err := ci.PostSend(heartbeat(1)); err != nil {
			t.Fatal(err)
		}
		wantWC(t, "heartbeat before the blackhole", waitWC(t, ci, wcWait), 1, verbs.StatusSuccess)
		for _, d := range []string{p.ini, p.tgt} {
			labkit.Run(t, "tc", "qdisc", "add", "dev", d, "root", "netem", "loss", "100%")
		}
		start := time.Now()
		if err := ci.PostSend(heartbeat(2)); err != nil {
			t.Fatal(err)
		}
		got := waitWC(t, ci, wcWait)
		took := time.Since(start)
		// A connect through the blackhole ends with its context, and
		// everything it created is destroyed (the listener never sees it).
		dctx, cancel := context.WithTimeout(context.Background(), dialCancelAfter)
		dstart := time.Now()
		_, _, derr := e.ini.Dial(dctx, e.dialParams("into-the-void"))
		cancel()
		sc.Figure("dial_cancel_ms", float64(time.Since(dstart).Microseconds())/1000)
		sc.Notef("dial through the blackhole: %v", derr)
		if !errors.Is(derr, context.DeadlineExceeded) && !errors.Is(derr, verbs.ErrUnreachable) && !errors.Is(derr, verbs.ErrTimeout) {
			t.Errorf("dial through the blackhole: %v, want the context's deadline or unreachable", derr)
		}
		for _, d := range []string{p.ini, p.tgt} {
			labkit.Run(t, "tc", "qdisc", "del", "dev", d, "root")
		}
		wantWC(t, "heartbeat through the blackhole", got, 2, verbs.StatusRetryExcErr)
		budget := verbs.RetryBudget(labRetryCount, labAckTimeout)
		sc.Figures(map[string]float64{
			"blackhole_retry_exc_ms": float64(took.Microseconds()) / 1000,
			"retry_budget_ms":        float64(budget.Microseconds()) / 1000,
		})
		sc.Notef("blackhole: RETRY_EXC after %v (budget (3+1) x 67.1 ms = %v)", took, budget)
		if took < budget/2 || took > 10*budget {
			t.Errorf("RETRY_EXC after %v, far from the budget %v", took, budget)
		}
	}

	// Link down on the initiator's veth: PORT_ERR on its rxe port; then a
	// heartbeat; then link up: PORT_ACTIVE.
	{
		ci, _, _, _ := e.connect(e.dialParams("linkdown"), []byte("ok"))
		// An outstanding receive shows whether the QP itself fails.
		b, err := e.ini.AllocBuffer(4096, verbs.AccessData)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		rwr := &verbs.RecvWR{ID: 8, NumSGE: 1}
		rwr.SGE[0] = verbs.SGE{Addr: b.Addr(), Length: 4096, LKey: b.LKey()}
		if err := ci.PostRecv(rwr); err != nil {
			t.Fatal(err)
		}
		drain(e.ini.Events())
		start := time.Now()
		labkit.Run(t, "ip", "link", "set", p.ini, "down")
		ev := waitEvent(t, e.ini.Events(), verbs.EventPortError)
		sc.Figure("port_err_ms", float64(ev.Time.Sub(start).Microseconds())/1000)
		if ev.Port != 1 || ev.Device != p.iniDev {
			t.Errorf("PORT_ERR event %+v", ev)
		}
		if pa, err := e.ini.Port(1); err != nil || pa.State != verbs.PortDown {
			t.Errorf("port after link down: %+v, %v", pa, err)
		}
		// rxe does not fail an idle QP on link down (measured: the
		// receive stays outstanding); the next transmission does.
		var early [1]verbs.Completion
		if n := ci.Poll(early[:]); n != 0 {
			sc.Notef("link down: completion before any traffic: %+v", early[0])
		} else {
			sc.Notef("link down: no completion on the idle QP %v after the link went down", time.Since(start))
		}
		select {
		case cev := <-ci.CMEvents():
			sc.Notef("link down: CM event %v at +%v", cev.Kind, cev.Time.Sub(start))
		default:
			sc.Notef("link down: no CM event on the connection")
		}
		hb := time.Now()
		if err := ci.PostSend(heartbeat(3)); err != nil {
			sc.Notef("heartbeat on a downed link refused at post: %v", err)
		} else {
			got := map[uint64]verbs.Completion{}
			for len(got) < 2 {
				wc := waitWC(t, ci, wcWait)
				got[wc.ID] = wc
				if wc.ID == 3 {
					sc.Figures(map[string]float64{
						"linkdown_heartbeat_ms":     float64(time.Since(hb).Microseconds()) / 1000,
						"linkdown_heartbeat_status": float64(wc.Status),
					})
				}
			}
			sc.Notef("heartbeat on a downed link: %v; the outstanding receive: %v", got[3].Status, got[8].Status)
			if got[3].Status == verbs.StatusSuccess || got[8].Status != verbs.StatusFlushErr {
				t.Errorf("after link down: heartbeat %v, receive %v; want an error and a flush", got[3].Status, got[8].Status)
			}
		}
		start = time.Now()
		labkit.Run(t, "ip", "link", "set", p.ini, "up")
		ev = waitEvent(t, e.ini.Events(), verbs.EventPortActive)
		sc.Figure("port_active_ms", float64(ev.Time.Sub(start).Microseconds())/1000)
		p.routes(t)

		// The path is usable again: a new connection carries a heartbeat.
		start = time.Now()
		c2, _, _, _ := e.connect(e.dialParams("after-linkup"), []byte("ok"))
		if err := c2.PostSend(heartbeat(4)); err != nil {
			t.Fatal(err)
		}
		wantWC(t, "heartbeat after link up", waitWC(t, c2, wcWait), 4, verbs.StatusSuccess)
		sc.Figure("reconnect_after_linkup_ms", float64(time.Since(start).Microseconds())/1000)
	}
}

func drain(ch <-chan verbs.AsyncEvent) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

func waitEvent(t *testing.T, ch <-chan verbs.AsyncEvent, kind verbs.AsyncEventKind) verbs.AsyncEvent {
	t.Helper()
	timeout := time.After(cmWait)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatal("device events closed")
			}
			if ev.Kind == kind {
				return ev
			}
			t.Logf("async event %v on port %d (waiting for %v)", ev.Kind, ev.Port, kind)
		case <-timeout:
			t.Fatalf("no %v event within %v", kind, cmWait)
		}
	}
}
