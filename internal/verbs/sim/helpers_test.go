package sim_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/clock"
	"github.com/srp-mpathd/srp-mpathd/internal/leakcheck"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs/sim"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

var (
	iniAddr = netip.MustParseAddr("198.18.1.1")
	tgtAddr = netip.MustParseAddr("198.18.1.2")
	tgtPort = netip.AddrPortFrom(tgtAddr, 5555)
	epoch   = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

// pair is an initiator device and a target device joined by one link, with
// a listener on the target.
type pair struct {
	fab  *sim.Fabric
	clk  clock.Clock
	link *sim.Link
	ini  *sim.Device
	tgt  *sim.Device
	l    *sim.Listener
}

func newPair(t testing.TB, cfg sim.Config) *pair {
	t.Helper()
	fab := sim.New(cfg)
	t.Cleanup(func() { fab.Close() })
	must(t, fab.AddDevice("ini0", sim.PortConfig{Addrs: []netip.Addr{iniAddr}}))
	must(t, fab.AddDevice("tgt0", sim.PortConfig{Addrs: []netip.Addr{tgtAddr}}))
	link, err := fab.Connect(sim.PortRef{Device: "ini0", Port: 1}, sim.PortRef{Device: "tgt0", Port: 1})
	must(t, err)
	ini, err := fab.OpenDevice("ini0")
	must(t, err)
	tgt, err := fab.OpenDevice("tgt0")
	must(t, err)
	l, err := tgt.Listen(netip.AddrPortFrom(netip.IPv6Unspecified(), tgtPort.Port()))
	must(t, err)
	return &pair{fab: fab, clk: fab.Clock(), link: link, ini: ini, tgt: tgt, l: l}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// dialParams are ib_srp-like connection parameters.
func dialParams() verbs.DialParams {
	return verbs.DialParams{
		Src:          iniAddr,
		Dst:          tgtPort,
		Private:      []byte("login"),
		ResponderRes: 4,
		RetryCount:   7,
		RNRRetry:     7,
		AckTimeout:   14,
		SendDepth:    16,
		RecvDepth:    16,
	}
}

// connect dials with dp and accepts with tp, returning both ends.
func (p *pair) connect(t testing.TB, dp verbs.DialParams, tp sim.ConnParams) (ini, tgt *sim.Conn) {
	t.Helper()
	type accepted struct {
		c   *sim.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		req, ok := <-p.l.Requests()
		if !ok {
			ch <- accepted{nil, verbs.ErrClosed}
			return
		}
		c, err := req.Accept([]byte("welcome"), tp)
		ch <- accepted{c, err}
	}()
	c, rep, err := p.ini.DialConn(context.Background(), dp)
	must(t, err)
	a := <-ch
	must(t, a.err)
	if !strings.HasPrefix(string(rep), "welcome") || len(rep) != sim.RepPrivateLen {
		t.Fatalf("REP private data %q (%d bytes), want %q padded to %d", rep, len(rep), "welcome", sim.RepPrivateLen)
	}
	return c, a.c
}

func targetParams() sim.ConnParams {
	return sim.ConnParams{SendDepth: 16, RecvDepth: 16, RetryCount: 7, RNRRetry: 7, AckTimeout: 14, ResponderRes: 4}
}

func alloc(t testing.TB, d *sim.Device, size int) verbs.Buffer {
	t.Helper()
	b, err := d.AllocBuffer(size, verbs.AccessData)
	must(t, err)
	return b
}

func sge(b verbs.Buffer, off, n int) verbs.SGE {
	return verbs.SGE{Addr: b.Addr() + uint64(off), Length: uint32(n), LKey: b.LKey()}
}

func sendWR(id uint64, sges ...verbs.SGE) *verbs.SendWR {
	wr := &verbs.SendWR{ID: id, Op: verbs.OpSend, Signaled: true, NumSGE: len(sges)}
	copy(wr.SGE[:], sges)
	return wr
}

func recvWR(id uint64, sges ...verbs.SGE) *verbs.RecvWR {
	wr := &verbs.RecvWR{ID: id, NumSGE: len(sges)}
	copy(wr.SGE[:], sges)
	return wr
}

func pollAll(c *sim.Conn) []verbs.Completion {
	var out []verbs.Completion
	buf := make([]verbs.Completion, 8)
	for {
		n := c.Poll(buf)
		if n == 0 {
			return out
		}
		out = append(out, buf[:n]...)
	}
}

// wc is a completion summary for comparisons.
type wc struct {
	ID     uint64
	Status verbs.Status
	Op     verbs.CompletionOp
}

func summary(cs []verbs.Completion) []wc {
	out := make([]wc, len(cs))
	for i, c := range cs {
		out[i] = wc{c.ID, c.Status, c.Op}
	}
	return out
}

func isErr(err, target error) bool { return errors.Is(err, target) }
