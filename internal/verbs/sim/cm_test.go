package sim_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/srp-mpathd/srp-mpathd/internal/clock"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs/sim"
)

// §6.2.3: a consumer-defined reject reaches Dial as a *RejectError with the
// target's private data (an SRP_LOGIN_REJ), padded to the REJ size; the
// target saw the REQ private data padded to 56 bytes and the initiator's
// parameters.
func TestCMRejectCarriesPrivateData(t *testing.T) {
	p := newPair(t, sim.Config{Seed: 1, Clock: clock.NewManual(epoch)})
	type seen struct {
		req *sim.ConnRequest
		err error
	}
	ch := make(chan seen, 1)
	go func() {
		req := <-p.l.Requests()
		ch <- seen{req, req.Reject(verbs.CMRejectConsumer, []byte{0xc2, 0, 0, 0, 0, 1, 0, 2})}
	}()
	c, rep, err := p.ini.Dial(context.Background(), dialParams())
	s := <-ch
	must(t, s.err)
	var rej *verbs.RejectError
	if !errors.As(err, &rej) || c != nil || rep != nil {
		t.Fatalf("Dial = %v, %v, %v; want a *RejectError", c, rep, err)
	}
	if rej.Reason != verbs.CMRejectConsumer || len(rej.Private) != sim.RejPrivateLen ||
		!cmp.Equal(rej.Private[:8], []byte{0xc2, 0, 0, 0, 0, 1, 0, 2}) {
		t.Fatalf("reject %d with % x", rej.Reason, rej.Private)
	}
	r := s.req
	if string(r.Private[:5]) != "login" || len(r.Private) != sim.ReqPrivateLen {
		t.Fatalf("REQ private data % x", r.Private)
	}
	if r.Local != tgtPort || r.Remote.Addr() != iniAddr || r.Port != 1 || r.ResponderRes != 4 || r.RNRRetry != 7 {
		t.Fatalf("request %+v", r)
	}
	if err := r.Reject(verbs.CMRejectConsumer, nil); !errors.Is(err, sim.ErrAnswered) {
		t.Fatalf("second answer: %v, want ErrAnswered", err)
	}
}

func TestCMNoListener(t *testing.T) {
	p := newPair(t, sim.Config{Seed: 1, Clock: clock.NewManual(epoch)})
	dp := dialParams()
	dp.Dst = netip.AddrPortFrom(tgtAddr, 4444)
	_, _, err := p.ini.Dial(context.Background(), dp)
	var rej *verbs.RejectError
	if !errors.Is(err, verbs.ErrConnRefused) || !errors.As(err, &rej) || rej.Reason != sim.RejectInvalidServiceID {
		t.Fatalf("Dial to a closed port: %v", err)
	}
	dp = dialParams()
	dp.Dst = netip.MustParseAddrPort("198.18.9.9:5555")
	if _, _, err := p.ini.Dial(context.Background(), dp); !errors.Is(err, verbs.ErrUnreachable) {
		t.Fatalf("Dial to an address not on the link: %v", err)
	}
	dp = dialParams()
	dp.Src = netip.MustParseAddr("198.18.9.1")
	if _, _, err := p.ini.Dial(context.Background(), dp); !errors.Is(err, verbs.ErrRouteResolve) {
		t.Fatalf("Dial from an address not on the device: %v", err)
	}
	if _, err := p.tgt.Listen(netip.AddrPortFrom(tgtAddr, tgtPort.Port())); !errors.Is(err, sim.ErrAddrInUse) {
		t.Fatalf("second Listen: %v", err)
	}
	if _, err := p.tgt.Listen(netip.MustParseAddrPort("10.0.0.1:1")); !errors.Is(err, verbs.ErrNotFound) {
		t.Fatalf("Listen on a foreign address: %v", err)
	}
}

// A connect through a blackhole gets no answer and times out after
// Config.CMTimeout (fake time in a synctest bubble).
func TestCMBlackholeTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, sim.Config{Seed: 1, CMTimeout: 3 * time.Second})
		p.link.Blackhole(true)
		start := time.Now()
		_, _, err := p.ini.Dial(context.Background(), dialParams())
		if !errors.Is(err, verbs.ErrTimeout) {
			t.Fatalf("Dial through a blackhole: %v, want ErrTimeout", err)
		}
		if el := time.Since(start); el != 3*time.Second {
			t.Fatalf("timed out after %v, want 3s", el)
		}
		select {
		case r := <-p.l.Requests():
			t.Fatalf("request %+v crossed a blackhole", r)
		default:
		}
		// ctx ends the wait earlier.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, _, err := p.ini.Dial(ctx, dialParams()); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Dial with a 1s context: %v", err)
		}
	})
}

// A target that never answers leaves Dial to time out; its late Accept
// then fails.
func TestCMUnansweredRequest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, sim.Config{Seed: 1, CMTimeout: time.Second})
		_, _, err := p.ini.Dial(context.Background(), dialParams())
		if !errors.Is(err, verbs.ErrTimeout) {
			t.Fatalf("Dial: %v, want ErrTimeout", err)
		}
		req := <-p.l.Requests()
		if _, err := req.Accept(nil, targetParams()); !errors.Is(err, sim.ErrAnswered) {
			t.Fatalf("late Accept: %v, want ErrAnswered", err)
		}
	})
}

// §6.2.3 / §2.6: Disconnect sends a DREQ: both QPs go to ERR (flushing),
// both sides get Disconnected, then TimewaitExit.
func TestDisconnectEvents(t *testing.T) {
	clk := clock.NewManual(epoch)
	p := newPair(t, sim.Config{Seed: 1, Clock: clk, Timewait: time.Second})
	ini, tgt := p.connect(t, dialParams(), targetParams())
	tb := alloc(t, p.tgt, 64)
	must(t, tgt.PostRecv(recvWR(1, sge(tb, 0, 8))))
	must(t, ini.Disconnect())
	must(t, ini.Disconnect()) // idempotent
	for _, c := range []*sim.Conn{ini, tgt} {
		ev := <-c.CMEvents()
		if ev.Kind != verbs.CMDisconnected || !ev.Time.Equal(epoch) {
			t.Fatalf("event %+v, want disconnected at %v", ev, epoch)
		}
	}
	if d := cmp.Diff([]wc{{1, verbs.StatusWRFlushErr, verbs.CompRecv}}, summary(pollAll(tgt))); d != "" {
		t.Fatalf("target's QP not flushed before Disconnected (-want +got):\n%s", d)
	}
	clk.Advance(time.Second - 1)
	select {
	case ev := <-ini.CMEvents():
		t.Fatalf("early event %+v", ev)
	default:
	}
	clk.Advance(1)
	for _, c := range []*sim.Conn{ini, tgt} {
		if ev := <-c.CMEvents(); ev.Kind != verbs.CMTimewaitExit {
			t.Fatalf("event %+v, want timewait-exit", ev)
		}
	}
	must(t, ini.Close())
	if _, ok := <-ini.CMEvents(); ok {
		t.Fatal("CMEvents not closed by Close")
	}
	if err := ini.PostSend(sendWR(1)); !errors.Is(err, verbs.ErrClosed) {
		t.Fatalf("PostSend after Close: %v", err)
	}
}

// Closing one end disconnects the other; DisconnectAll does so for every
// connection on an address (target-side session removal).
func TestCloseAndDisconnectAll(t *testing.T) {
	clk := clock.NewManual(epoch)
	p := newPair(t, sim.Config{Seed: 1, Clock: clk})
	ini, tgt := p.connect(t, dialParams(), targetParams())
	must(t, tgt.Close())
	if ev := <-ini.CMEvents(); ev.Kind != verbs.CMDisconnected {
		t.Fatalf("event %+v, want disconnected", ev)
	}
	a, _ := p.connect(t, dialParams(), targetParams())
	b, _ := p.connect(t, dialParams(), targetParams())
	if a.Local() == b.Local() {
		t.Fatalf("two connections share the source %v", a.Local())
	}
	if n := p.fab.DisconnectAll(tgtAddr); n != 2 {
		t.Fatalf("DisconnectAll = %d, want 2", n)
	}
	for _, c := range []*sim.Conn{a, b} {
		if ev := <-c.CMEvents(); ev.Kind != verbs.CMDisconnected {
			t.Fatalf("event %+v, want disconnected", ev)
		}
	}
}

// A DREQ through a blackhole never reaches the peer: only the local side
// reports Disconnected, after the CM timeout.
func TestDisconnectThroughBlackhole(t *testing.T) {
	clk := clock.NewManual(epoch)
	p := newPair(t, sim.Config{Seed: 1, Clock: clk, CMTimeout: time.Second})
	ini, tgt := p.connect(t, dialParams(), targetParams())
	p.link.Blackhole(true)
	must(t, ini.Disconnect())
	select {
	case ev := <-ini.CMEvents():
		t.Fatalf("event %+v before the DREQ timed out", ev)
	default:
	}
	clk.Advance(time.Second)
	if ev := <-ini.CMEvents(); ev.Kind != verbs.CMDisconnected {
		t.Fatalf("event %+v, want disconnected", ev)
	}
	select {
	case ev := <-tgt.CMEvents():
		t.Fatalf("peer got %+v through a blackhole", ev)
	default:
	}
}
