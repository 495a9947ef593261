package sim_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/srp-mpathd/srp-mpathd/internal/clock"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs/sim"
)

// trace runs a fixed workload over a lossy, slow link and a mid-run link
// flap under a Manual clock and returns every completion with its
// simulated time.
func trace(t *testing.T, seed int64) []string {
	clk := clock.NewManual(epoch)
	p := newPair(t, sim.Config{Seed: seed, Clock: clk})
	p.link.SetLatency(3 * time.Microsecond)
	p.link.SetLoss(0.2)
	dp := dialParams()
	dp.AckTimeout, dp.RetryCount = 4, 3
	tp := targetParams()
	tp.AckTimeout, tp.RetryCount = 4, 3
	ini, tgt := p.connect(t, dp, tp)
	ib := alloc(t, p.ini, 1<<16)
	tb := alloc(t, p.tgt, 1<<16)
	var out []string
	record := func(side string, c *sim.Conn) (recvs int) {
		for _, wc := range pollAll(c) {
			out = append(out, fmt.Sprintf("%v %s id=%d %v %v len=%d", clk.Now().Sub(epoch), side, wc.ID, wc.Op, wc.Status, wc.ByteLen))
			if wc.Op == verbs.CompRecv {
				recvs++
			}
		}
		return recvs
	}
	// A full queue is part of the trace, not a failure.
	post := func(err error) {
		if errors.Is(err, verbs.ErrQueueFull) {
			out = append(out, fmt.Sprintf("%v full", clk.Now().Sub(epoch)))
			return
		}
		must(t, err)
	}
	for i := range 8 {
		must(t, tgt.PostRecv(recvWR(uint64(1000+i), sge(tb, i*64, 64))))
	}
	for step := range 60 {
		if step < 40 {
			post(ini.PostSend(sendWR(uint64(step), sge(ib, step*8, 1+step%48))))
			w := &verbs.SendWR{ID: uint64(500 + step), Op: verbs.OpRDMAWrite, Signaled: step%3 == 0, NumSGE: 1,
				RemoteAddr: ib.Addr() + 4096 + uint64(step)*16, RKey: ib.RKey()}
			w.SGE[0] = sge(tb, 8192, 16)
			post(tgt.PostSend(w))
		}
		if step == 30 {
			p.link.Down()
		}
		if step == 31 {
			p.link.Up()
		}
		clk.Advance(7 * time.Microsecond)
		record("ini", ini)
		for range record("tgt", tgt) {
			// Fails with a flush completion once the QP is in error: fine.
			post(tgt.PostRecv(recvWR(uint64(2000+step), sge(tb, 0, 64))))
		}
	}
	clk.Advance(time.Second)
	record("ini", ini)
	record("tgt", tgt)
	return out
}

// Same seed and calls → the same completions at the same simulated times;
// another seed draws other losses.
func TestDeterminism(t *testing.T) {
	a, b := trace(t, 7), trace(t, 7)
	if len(a) < 40 {
		t.Fatalf("trace too short to mean anything: %d entries", len(a))
	}
	if d := cmp.Diff(a, b); d != "" {
		t.Fatalf("same seed, different trace (-first +second):\n%s", d)
	}
	if c := trace(t, 8); cmp.Equal(a, c) {
		t.Fatal("seeds 7 and 8 gave identical traces: loss draws ignore the seed")
	}
}

// The data path does not allocate in steady state: a SEND with its
// receive, an RDMA WRITE and READ, the heartbeat, and the polls.
func TestDataPathAllocs(t *testing.T) {
	p := newPair(t, sim.Config{Seed: 1, Clock: clock.NewManual(epoch)})
	ini, tgt := p.connect(t, dialParams(), targetParams())
	ib := alloc(t, p.ini, 4096)
	tb := alloc(t, p.tgt, 4096)
	send := sendWR(1, sge(ib, 0, 64))
	recv := recvWR(2, sge(tb, 0, 64))
	irecv := recvWR(3, sge(ib, 128, 64))
	resp := sendWR(4, sge(tb, 128, 36))
	write := &verbs.SendWR{ID: 5, Op: verbs.OpRDMAWrite, Signaled: true, NumSGE: 1, RemoteAddr: ib.Addr() + 1024, RKey: ib.RKey()}
	write.SGE[0] = sge(tb, 1024, 512)
	read := &verbs.SendWR{ID: 6, Op: verbs.OpRDMARead, Signaled: true, NumSGE: 1, RemoteAddr: ib.Addr() + 2048, RKey: ib.RKey()}
	read.SGE[0] = sge(tb, 2048, 512)
	hb := &verbs.SendWR{ID: 7, Op: verbs.OpRDMAWrite, Signaled: true}
	out := make([]verbs.Completion, 8)
	bad := 0
	round := func() {
		must(t, tgt.PostRecv(recv))
		must(t, ini.PostRecv(irecv))
		must(t, ini.ArmNotify())
		must(t, ini.PostSend(send))
		must(t, tgt.PostSend(write))
		must(t, tgt.PostSend(read))
		must(t, tgt.PostSend(resp))
		must(t, ini.PostSend(hb))
		n := ini.Poll(out) + tgt.Poll(out)
		if n != 7 {
			bad++
		}
		select {
		case <-ini.Ready():
		default:
			bad++
		}
	}
	round()
	if allocs := testing.AllocsPerRun(100, round); allocs != 0 {
		t.Fatalf("%v allocations per I/O round, want 0", allocs)
	}
	if bad != 0 {
		t.Fatalf("%d rounds without the expected completions or notification", bad)
	}
}

// ArmNotify signals Ready once, at the next completion only.
func TestReadyNotification(t *testing.T) {
	p := newPair(t, sim.Config{Seed: 1, Clock: clock.NewManual(epoch)})
	ini, tgt := p.connect(t, dialParams(), targetParams())
	ib := alloc(t, p.ini, 64)
	tb := alloc(t, p.tgt, 64)
	must(t, tgt.PostRecv(recvWR(1, sge(tb, 0, 8))))
	must(t, ini.PostSend(sendWR(1, sge(ib, 0, 8)))) // not armed: no signal
	select {
	case <-tgt.Ready():
		t.Fatal("signal without ArmNotify")
	default:
	}
	must(t, tgt.ArmNotify())
	must(t, tgt.PostRecv(recvWR(2, sge(tb, 0, 8))))
	must(t, ini.PostSend(sendWR(2, sge(ib, 0, 8))))
	select {
	case <-tgt.Ready():
	default:
		t.Fatal("no signal after ArmNotify and a completion")
	}
	if tgt.NotifyFD() != -1 {
		t.Fatal("NotifyFD != -1")
	}
}

// With the Real clock, latency and concurrent goroutines (the demo's
// mode), an initiator and a target exchange requests and responses, each
// sleeping on Ready between polls.
func TestRealClockPingPong(t *testing.T) {
	p := newPair(t, sim.Config{Seed: 1})
	p.link.SetLatency(2 * time.Microsecond)
	ini, tgt := p.connect(t, dialParams(), targetParams())
	ib := alloc(t, p.ini, 4096)
	tb := alloc(t, p.tgt, 4096)
	const rounds = 300
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // target: receive, RDMA WRITE the data, respond
		defer wg.Done()
		out := make([]verbs.Completion, 4)
		for i := range 8 {
			must(t, tgt.PostRecv(recvWR(uint64(i), sge(tb, i*64, 64))))
		}
		served := 0
		for served < rounds {
			must(t, tgt.ArmNotify())
			n := tgt.Poll(out)
			if n == 0 {
				<-tgt.Ready()
				continue
			}
			for _, wc := range out[:n] {
				if wc.Status != verbs.StatusSuccess {
					t.Errorf("target completion %+v", wc)
					return
				}
				if wc.Op != verbs.CompRecv {
					continue
				}
				w := &verbs.SendWR{ID: 100, Op: verbs.OpRDMAWrite, NumSGE: 1, RemoteAddr: ib.Addr() + 1024, RKey: ib.RKey()}
				w.SGE[0] = sge(tb, int(wc.ID)*64, 8)
				must(t, tgt.PostSend(w))
				must(t, tgt.PostSend(sendWR(200, sge(tb, 1024, 8))))
				must(t, tgt.PostRecv(recvWR(wc.ID, sge(tb, int(wc.ID)*64, 64))))
				served++
			}
		}
	}()
	out := make([]verbs.Completion, 4)
	for i := range 4 {
		must(t, ini.PostRecv(recvWR(uint64(i), sge(ib, 2048+i*64, 64))))
	}
	for i := range rounds {
		ib.Bytes()[0] = byte(i)
		must(t, ini.PostSend(sendWR(uint64(i), sge(ib, 0, 8))))
		for got := false; !got; {
			must(t, ini.ArmNotify())
			n := ini.Poll(out)
			if n == 0 {
				<-ini.Ready()
				continue
			}
			for _, wc := range out[:n] {
				if wc.Status != verbs.StatusSuccess {
					t.Fatalf("initiator completion %+v", wc)
				}
				if wc.Op == verbs.CompRecv {
					got = true
					if ib.Bytes()[1024] != byte(i) {
						t.Fatalf("round %d: RDMA WRITE data %d", i, ib.Bytes()[1024])
					}
					must(t, ini.PostRecv(recvWR(wc.ID, sge(ib, 2048+int(wc.ID)*64, 64))))
				}
			}
		}
	}
	wg.Wait()
}

// BenchmarkSendRecv measures one SEND with its receive and both polls at
// zero latency (the simulator's cost per SRP IU).
func BenchmarkSendRecv(b *testing.B) {
	p := newPair(b, sim.Config{Seed: 1, Clock: clock.NewManual(epoch)})
	ini, tgt := p.connect(b, dialParams(), targetParams())
	ib := alloc(b, p.ini, 4096)
	tb := alloc(b, p.tgt, 4096)
	send := sendWR(1, sge(ib, 0, 64))
	recv := recvWR(2, sge(tb, 0, 64))
	out := make([]verbs.Completion, 4)
	b.ReportAllocs()
	for b.Loop() {
		_ = tgt.PostRecv(recv)
		_ = ini.PostSend(send)
		if ini.Poll(out)+tgt.Poll(out) != 2 {
			b.Fatal("missing completions")
		}
	}
}
