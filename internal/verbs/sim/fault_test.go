package sim_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/srp-mpathd/srp-mpathd/internal/clock"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs/sim"
)

// §6.2.2: a SEND with no receive posted waits (RNR retry 7 = forever) and
// is delivered, in order, once the receive is posted.
func TestRNRInfiniteWaitsForReceive(t *testing.T) {
	clk := clock.NewManual(epoch)
	p := newPair(t, sim.Config{Seed: 1, Clock: clk})
	ini, tgt := p.connect(t, dialParams(), targetParams())
	src := alloc(t, p.ini, 64)
	dst := alloc(t, p.tgt, 64)
	must(t, ini.PostSend(sendWR(1, sge(src, 0, 8))))
	must(t, ini.PostSend(sendWR(2, sge(src, 8, 8))))
	clk.Advance(time.Hour)
	if n := len(pollAll(ini)); n != 0 {
		t.Fatalf("%d completions while the responder has no receive", n)
	}
	must(t, tgt.PostRecv(recvWR(10, sge(dst, 0, 8))))
	if d := cmp.Diff([]wc{{1, verbs.StatusSuccess, verbs.CompSend}}, summary(pollAll(ini))); d != "" {
		t.Fatalf("after one receive (-want +got):\n%s", d)
	}
	must(t, tgt.PostRecv(recvWR(11, sge(dst, 8, 8))))
	if d := cmp.Diff([]wc{{2, verbs.StatusSuccess, verbs.CompSend}}, summary(pollAll(ini))); d != "" {
		t.Fatalf("after two receives (-want +got):\n%s", d)
	}
	want := []wc{{10, verbs.StatusSuccess, verbs.CompRecv}, {11, verbs.StatusSuccess, verbs.CompRecv}}
	if d := cmp.Diff(want, summary(pollAll(tgt))); d != "" {
		t.Fatalf("target (-want +got):\n%s", d)
	}
}

// With a finite RNR retry count the send fails with RNR_RETRY_EXC after
// RNRRetry × the RNR timer, and the rest is flushed.
func TestRNRRetryExceeded(t *testing.T) {
	clk := clock.NewManual(epoch)
	p := newPair(t, sim.Config{Seed: 1, Clock: clk})
	dp := dialParams()
	dp.RNRRetry = 3
	ini, _ := p.connect(t, dp, targetParams())
	src := alloc(t, p.ini, 64)
	must(t, ini.PostRecv(recvWR(50, sge(src, 32, 8))))
	must(t, ini.PostSend(sendWR(1, sge(src, 0, 8))))
	must(t, ini.PostSend(sendWR(2, sge(src, 0, 8))))
	clk.Advance(3*sim.DefaultRNRTimer - 1)
	if n := len(pollAll(ini)); n != 0 {
		t.Fatalf("%d completions before the RNR budget", n)
	}
	clk.Advance(1)
	want := []wc{
		{1, verbs.StatusRNRRetryExcErr, verbs.CompSend},
		{2, verbs.StatusWRFlushErr, verbs.CompSend},
		{50, verbs.StatusWRFlushErr, verbs.CompRecv},
	}
	if d := cmp.Diff(want, summary(pollAll(ini))); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
}

// §6.2.2: link down → port error on both sides, in-flight and new work
// completes with RETRY_EXC exactly one retry budget after its first
// attempt, then FLUSH for the rest; link up → port active.
func TestLinkDownRetryExceeded(t *testing.T) {
	clk := clock.NewManual(epoch)
	p := newPair(t, sim.Config{Seed: 1, Clock: clk})
	dp := dialParams()
	dp.RetryCount, dp.AckTimeout = 3, 10
	ini, tgt := p.connect(t, dp, targetParams())
	src := alloc(t, p.ini, 64)
	dst := alloc(t, p.tgt, 64)
	must(t, tgt.PostRecv(recvWR(10, sge(dst, 0, 8))))
	must(t, ini.PostRecv(recvWR(20, sge(src, 32, 8))))

	p.link.Down()
	for _, d := range []*sim.Device{p.ini, p.tgt} {
		ev := <-d.Events()
		if ev.Kind != verbs.EventPortError || ev.Device != d.Name() || ev.Port != 1 || !ev.Time.Equal(epoch) {
			t.Fatalf("%s: event %+v, want port-error on port 1 at %v", d.Name(), ev, epoch)
		}
		if pa, err := d.Port(1); err != nil || pa.State != verbs.PortDown {
			t.Fatalf("%s port 1: %+v %v, want down", d.Name(), pa, err)
		}
	}
	must(t, ini.PostSend(sendWR(1, sge(src, 0, 8))))
	clk.Advance(time.Millisecond)
	must(t, ini.PostSend(sendWR(2, sge(src, 0, 8))))

	budget := verbs.RetryBudget(3, 10)
	if budget != 4*4096*time.Nanosecond<<10 {
		t.Fatalf("RetryBudget(3, 10) = %v", budget)
	}
	clk.AdvanceTo(epoch.Add(budget - 1))
	if n := len(pollAll(ini)); n != 0 {
		t.Fatalf("%d completions before the retry budget", n)
	}
	clk.AdvanceTo(epoch.Add(budget))
	want := []wc{
		{1, verbs.StatusRetryExcErr, verbs.CompSend},
		{2, verbs.StatusWRFlushErr, verbs.CompSend},
		{20, verbs.StatusWRFlushErr, verbs.CompRecv},
	}
	if d := cmp.Diff(want, summary(pollAll(ini))); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
	if n := len(pollAll(tgt)); n != 0 {
		t.Fatalf("target got %d completions through a down link", n)
	}
	// Dial over a down link fails at once.
	if _, _, err := p.ini.DialConn(t.Context(), dialParams()); err == nil || !isErr(err, verbs.ErrUnreachable) {
		t.Fatalf("Dial over a down link: %v, want ErrUnreachable", err)
	}
	p.link.Up()
	for _, d := range []*sim.Device{p.ini, p.tgt} {
		if ev := <-d.Events(); ev.Kind != verbs.EventPortActive {
			t.Fatalf("%s: event %+v, want port-active", d.Name(), ev)
		}
	}
}

// A link that comes back within the budget lets the retransmission
// through: the send succeeds at the first attempt slot after Up.
func TestLinkFlapWithinBudget(t *testing.T) {
	clk := clock.NewManual(epoch)
	p := newPair(t, sim.Config{Seed: 1, Clock: clk})
	dp := dialParams()
	dp.RetryCount, dp.AckTimeout = 3, 10
	ini, tgt := p.connect(t, dp, targetParams())
	src := alloc(t, p.ini, 64)
	dst := alloc(t, p.tgt, 64)
	must(t, tgt.PostRecv(recvWR(10, sge(dst, 0, 8))))
	p.link.Down()
	must(t, ini.PostSend(sendWR(1, sge(src, 0, 8))))
	ack := verbs.AckTimeoutDuration(10)
	clk.Advance(ack + ack/2)
	p.link.Up()
	if n := len(pollAll(ini)); n != 0 {
		t.Fatalf("completed before the next attempt slot")
	}
	clk.Advance(ack / 2)
	if d := cmp.Diff([]wc{{1, verbs.StatusSuccess, verbs.CompSend}}, summary(pollAll(ini))); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
}

// A blackhole gives no event at all; sends end in RETRY_EXC after the
// budget.
func TestBlackholeSilentRetryExceeded(t *testing.T) {
	clk := clock.NewManual(epoch)
	p := newPair(t, sim.Config{Seed: 1, Clock: clk})
	dp := dialParams()
	dp.RetryCount, dp.AckTimeout = 2, 12
	ini, tgt := p.connect(t, dp, targetParams())
	src := alloc(t, p.ini, 64)
	dst := alloc(t, p.tgt, 64)
	must(t, tgt.PostRecv(recvWR(10, sge(dst, 0, 8))))
	p.link.Blackhole(true)
	must(t, ini.PostSend(sendWR(1, sge(src, 0, 8))))
	budget := verbs.RetryBudget(2, 12)
	clk.Advance(budget - 1)
	if n := len(pollAll(ini)); n != 0 {
		t.Fatalf("%d completions before the budget", n)
	}
	clk.Advance(1)
	if d := cmp.Diff([]wc{{1, verbs.StatusRetryExcErr, verbs.CompSend}}, summary(pollAll(ini))); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
	for _, d := range []*sim.Device{p.ini, p.tgt} {
		select {
		case ev := <-d.Events():
			t.Fatalf("%s: event %+v through a blackhole", d.Name(), ev)
		default:
		}
		if pa, _ := d.Port(1); pa.State != verbs.PortActive {
			t.Fatalf("%s: port %v under a blackhole, want active", d.Name(), pa.State)
		}
	}
	select {
	case ev := <-ini.CMEvents():
		t.Fatalf("CM event %+v through a blackhole", ev)
	default:
	}
}

// §2.7 heartbeat: a zero-length RDMA WRITE with rkey 0 succeeds while the
// peer QP lives, and ends in RETRY_EXC when the peer QP is gone.
func TestHeartbeat(t *testing.T) {
	clk := clock.NewManual(epoch)
	p := newPair(t, sim.Config{Seed: 1, Clock: clk})
	dp := dialParams()
	dp.RetryCount, dp.AckTimeout = 1, 14
	ini, tgt := p.connect(t, dp, targetParams())
	hb := &verbs.SendWR{ID: 77, Op: verbs.OpRDMAWrite, Signaled: true}
	must(t, ini.PostSend(hb))
	got := pollAll(ini)
	if d := cmp.Diff([]wc{{77, verbs.StatusSuccess, verbs.CompRDMAWrite}}, summary(got)); d != "" {
		t.Fatalf("live peer (-want +got):\n%s", d)
	}
	if got[0].ByteLen != 0 {
		t.Fatalf("heartbeat ByteLen %d", got[0].ByteLen)
	}
	// The target's QP dies without telling anyone (its host crashed).
	must(t, tgt.ForceError())
	hb.ID = 78
	must(t, ini.PostSend(hb))
	clk.Advance(verbs.RetryBudget(1, 14) - 1)
	if n := len(pollAll(ini)); n != 0 {
		t.Fatal("heartbeat to a dead QP completed early")
	}
	clk.Advance(1)
	if d := cmp.Diff([]wc{{78, verbs.StatusRetryExcErr, verbs.CompRDMAWrite}}, summary(pollAll(ini))); d != "" {
		t.Fatalf("dead peer (-want +got):\n%s", d)
	}
}

// ForceError flushes outstanding work (here an RNR-blocked send and posted
// receives) in posting order; the peer waiting on it is not notified but
// its own requests time out.
func TestForceErrorFlushes(t *testing.T) {
	clk := clock.NewManual(epoch)
	p := newPair(t, sim.Config{Seed: 1, Clock: clk})
	dp := dialParams()
	dp.RetryCount, dp.AckTimeout = 0, 8
	ini, tgt := p.connect(t, dp, targetParams())
	src := alloc(t, p.ini, 64)
	must(t, ini.PostRecv(recvWR(20, sge(src, 32, 8))))
	must(t, ini.PostSend(sendWR(1, sge(src, 0, 8)))) // RNR: target has no receive
	must(t, ini.PostSend(sendWR(2, sge(src, 0, 8))))
	must(t, ini.ForceError())
	want := []wc{
		{1, verbs.StatusWRFlushErr, verbs.CompSend},
		{2, verbs.StatusWRFlushErr, verbs.CompSend},
		{20, verbs.StatusWRFlushErr, verbs.CompRecv},
	}
	if d := cmp.Diff(want, summary(pollAll(ini))); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
	tb := alloc(t, p.tgt, 64)
	must(t, tgt.PostSend(sendWR(5, sge(tb, 0, 8))))
	tp := targetParams()
	clk.Advance(verbs.RetryBudget(tp.RetryCount, tp.AckTimeout) - 1)
	if n := len(pollAll(tgt)); n != 0 {
		t.Fatal("peer's send completed early")
	}
	clk.Advance(1)
	if d := cmp.Diff([]wc{{5, verbs.StatusRetryExcErr, verbs.CompSend}}, summary(pollAll(tgt))); d != "" {
		t.Fatalf("peer (-want +got):\n%s", d)
	}
}

// An RNR-blocked sender whose responder QP dies falls back to transport
// retries and ends in RETRY_EXC instead of waiting forever.
func TestRNRWaitPeerDies(t *testing.T) {
	clk := clock.NewManual(epoch)
	p := newPair(t, sim.Config{Seed: 1, Clock: clk})
	dp := dialParams()
	dp.RetryCount, dp.AckTimeout = 1, 8
	ini, tgt := p.connect(t, dp, targetParams())
	src := alloc(t, p.ini, 64)
	must(t, ini.PostSend(sendWR(1, sge(src, 0, 8))))
	clk.Advance(time.Second)
	must(t, tgt.ForceError())
	clk.Advance(verbs.RetryBudget(1, 8))
	if d := cmp.Diff([]wc{{1, verbs.StatusRetryExcErr, verbs.CompSend}}, summary(pollAll(ini))); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
}

// Loss costs one ACK timeout per lost transmission, never data, unless
// every retry is lost.
func TestLossDelaysButDelivers(t *testing.T) {
	clk := clock.NewManual(epoch)
	p := newPair(t, sim.Config{Seed: 42, Clock: clk})
	p.link.SetLoss(0.5)
	dp := dialParams()
	dp.RetryCount, dp.AckTimeout = 7, 8
	ini, tgt := p.connect(t, dp, targetParams())
	src := alloc(t, p.ini, 4096)
	dst := alloc(t, p.tgt, 4096)
	const n = 200
	ok, exc := 0, 0
	delayed := 0
	for i := range n {
		must(t, tgt.PostRecv(recvWR(uint64(i), sge(dst, 0, 8))))
		start := clk.Now()
		must(t, ini.PostSend(sendWR(uint64(i), sge(src, 0, 8))))
		got := pollAll(ini)
		for len(got) == 0 {
			next, pending := clk.Next()
			if !pending {
				t.Fatalf("send %d: no completion and nothing scheduled", i)
			}
			clk.AdvanceTo(next)
			got = pollAll(ini)
		}
		switch got[0].Status {
		case verbs.StatusSuccess:
			ok++
		case verbs.StatusRetryExcErr:
			exc++
		default:
			t.Fatalf("send %d: %v", i, got[0].Status)
		}
		if el := clk.Now().Sub(start); el%verbs.AckTimeoutDuration(8) != 0 {
			t.Fatalf("send %d took %v, not a multiple of the ACK timeout", i, el)
		} else if el > 0 {
			delayed++
		}
		if n := len(pollAll(tgt)); got[0].Status == verbs.StatusSuccess && n != 1 {
			t.Fatalf("send %d succeeded but the target got %d receives", i, n)
		}
		if exc > 0 {
			break
		}
	}
	if ok == 0 || delayed == 0 {
		t.Fatalf("ok %d, delayed %d: loss 0.5 should delay some sends and deliver most", ok, delayed)
	}
}

func TestPortAttrs(t *testing.T) {
	p := newPair(t, sim.Config{Seed: 1, Clock: clock.NewManual(epoch)})
	pa, err := p.ini.Port(1)
	must(t, err)
	if pa.State != verbs.PortActive || pa.LinkLayer != verbs.LinkEthernet || pa.GIDTableLen != 2 || pa.PKeyTableLen != 1 {
		t.Fatalf("port attrs %+v", pa)
	}
	g, err := p.ini.GID(1, 1)
	must(t, err)
	if g.Addr().Unmap() != iniAddr {
		t.Fatalf("GID 1 = %v, want ::ffff:%v", g, iniAddr)
	}
	g0, _ := p.ini.GID(1, 0)
	if g0[0] != 0xfe || g0[1] != 0x80 {
		t.Fatalf("GID 0 = %v, want link-local", g0)
	}
	if _, err := p.ini.GID(1, 2); !isErr(err, verbs.ErrIndexRange) {
		t.Fatalf("GID past the end: %v", err)
	}
	if k, err := p.ini.PKey(1, 0); err != nil || k != 0xffff {
		t.Fatalf("PKey(0) = %#x, %v", k, err)
	}
	if _, err := p.ini.PKey(1, 1); !isErr(err, verbs.ErrIndexRange) {
		t.Fatalf("PKey past the end: %v", err)
	}
	if i, err := p.ini.PKeyIndex(1, 0xffff); err != nil || i != 0 {
		t.Fatalf("PKeyIndex = %d, %v", i, err)
	}
	if _, err := p.ini.PKeyIndex(1, 0x8001); !isErr(err, verbs.ErrNotFound) {
		t.Fatalf("PKeyIndex of a missing key: %v", err)
	}
	if _, err := p.ini.Port(2); !isErr(err, verbs.ErrIndexRange) {
		t.Fatalf("Port(2): %v", err)
	}
	if _, err := p.ini.MAD(1); !isErr(err, verbs.ErrNotSupported) {
		t.Fatalf("MAD: %v", err)
	}
}
