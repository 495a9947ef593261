package sim_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/srp-mpathd/srp-mpathd/internal/clock"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs/sim"
)

// RC delivers SENDs in posting order into receives in posting order, with
// the payload gathered from several SGEs and scattered into several.
func TestRCOrderedDelivery(t *testing.T) {
	p := newPair(t, sim.Config{Seed: 1, Clock: clock.NewManual(epoch)})
	ini, tgt := p.connect(t, dialParams(), targetParams())
	src := alloc(t, p.ini, 4096)
	dst := alloc(t, p.tgt, 4096)
	const n = 10
	for i := range n {
		// Two receive SGEs of 4 bytes each.
		must(t, tgt.PostRecv(recvWR(uint64(100+i), sge(dst, i*16, 4), sge(dst, i*16+8, 4))))
	}
	for i := range n {
		binary.BigEndian.PutUint32(src.Bytes()[i*8:], uint32(i))
		binary.BigEndian.PutUint32(src.Bytes()[i*8+4:], uint32(i)|0xab000000)
		must(t, ini.PostSend(sendWR(uint64(i), sge(src, i*8, 2), sge(src, i*8+2, 6))))
	}
	got := pollAll(tgt)
	var want []wc
	for i := range n {
		want = append(want, wc{uint64(100 + i), verbs.StatusSuccess, verbs.CompRecv})
	}
	if d := cmp.Diff(want, summary(got)); d != "" {
		t.Fatalf("target completions (-want +got):\n%s", d)
	}
	for i := range n {
		if got[i].ByteLen != 8 {
			t.Errorf("recv %d ByteLen %d, want 8", i, got[i].ByteLen)
		}
		b := dst.Bytes()[i*16:]
		if binary.BigEndian.Uint32(b) != uint32(i) || binary.BigEndian.Uint32(b[8:]) != uint32(i)|0xab000000 {
			t.Errorf("recv %d payload % x", i, b[:12])
		}
	}
	want = want[:0]
	for i := range n {
		want = append(want, wc{uint64(i), verbs.StatusSuccess, verbs.CompSend})
	}
	if d := cmp.Diff(want, summary(pollAll(ini))); d != "" {
		t.Fatalf("initiator completions (-want +got):\n%s", d)
	}
}

// With latency the same order holds and completions appear at simulated
// times: the receive one latency after the post, the send completion one
// round trip after it.
func TestLatencyTiming(t *testing.T) {
	clk := clock.NewManual(epoch)
	p := newPair(t, sim.Config{Seed: 1, Clock: clk})
	const lat = 10 * time.Microsecond
	p.link.SetLatency(lat)
	ini, tgt := p.connect(t, dialParams(), targetParams())
	src := alloc(t, p.ini, 64)
	dst := alloc(t, p.tgt, 64)
	must(t, tgt.PostRecv(recvWR(1, sge(dst, 0, 64))))
	must(t, ini.PostSend(sendWR(2, sge(src, 0, 8))))
	if n := len(pollAll(tgt)); n != 0 {
		t.Fatalf("%d target completions before any time passed", n)
	}
	clk.Advance(lat - 1)
	if n := len(pollAll(tgt)); n != 0 {
		t.Fatalf("%d target completions before the latency elapsed", n)
	}
	clk.Advance(1)
	if n := len(pollAll(tgt)); n != 1 {
		t.Fatalf("%d target completions after the latency, want 1", n)
	}
	clk.Advance(lat - 1)
	if n := len(pollAll(ini)); n != 0 {
		t.Fatalf("%d initiator completions before the round trip", n)
	}
	clk.Advance(1)
	if got := summary(pollAll(ini)); !cmp.Equal(got, []wc{{2, verbs.StatusSuccess, verbs.CompSend}}) {
		t.Fatalf("initiator completions %v", got)
	}
}

// The target moves data with RDMA WRITE and READ into and out of the
// initiator's registered memory, which aliases the caller's slice.
func TestRDMAReadWrite(t *testing.T) {
	p := newPair(t, sim.Config{Seed: 1, Clock: clock.NewManual(epoch)})
	ini, tgt := p.connect(t, dialParams(), targetParams())
	_ = ini
	mem := make([]byte, 8192) // caller-owned, as ublk's per-tag buffers
	ib, err := p.ini.Register(mem, verbs.AccessData)
	must(t, err)
	tb := alloc(t, p.tgt, 8192)
	copy(tb.Bytes(), bytes.Repeat([]byte("read-data"), 100))
	copy(mem[4096:], bytes.Repeat([]byte("write-data"), 100))

	// Target RDMA WRITE (SCSI READ data) into the initiator's buffer.
	w := &verbs.SendWR{ID: 1, Op: verbs.OpRDMAWrite, Signaled: true, NumSGE: 1,
		RemoteAddr: ib.Addr() + 100, RKey: ib.RKey()}
	w.SGE[0] = sge(tb, 0, 900)
	must(t, tgt.PostSend(w))
	// Target RDMA READ (SCSI WRITE data) out of it.
	r := &verbs.SendWR{ID: 2, Op: verbs.OpRDMARead, Signaled: true, NumSGE: 2,
		RemoteAddr: ib.Addr() + 4096, RKey: ib.RKey()}
	r.SGE[0] = sge(tb, 4096, 500)
	r.SGE[1] = sge(tb, 6000, 500)
	must(t, tgt.PostSend(r))

	got := pollAll(tgt)
	want := []wc{{1, verbs.StatusSuccess, verbs.CompRDMAWrite}, {2, verbs.StatusSuccess, verbs.CompRDMARead}}
	if d := cmp.Diff(want, summary(got)); d != "" {
		t.Fatalf("completions (-want +got):\n%s", d)
	}
	if got[0].ByteLen != 900 || got[1].ByteLen != 1000 {
		t.Errorf("ByteLen %d, %d; want 900, 1000", got[0].ByteLen, got[1].ByteLen)
	}
	if !bytes.Equal(mem[100:1000], tb.Bytes()[:900]) {
		t.Error("RDMA WRITE did not land in the caller's memory")
	}
	if !bytes.Equal(tb.Bytes()[4096:4596], mem[4096:4596]) || !bytes.Equal(tb.Bytes()[6000:6500], mem[4596:5096]) {
		t.Error("RDMA READ did not fetch the caller's memory")
	}
}

// A bad rkey, an out-of-range address or a missing access right fails the
// requester with a remote access error, and its QP flushes what follows.
func TestRDMAAccessErrors(t *testing.T) {
	tests := []struct {
		name   string
		access verbs.Access
		op     verbs.Opcode
		addr   func(b verbs.Buffer) uint64
		rkey   func(b verbs.Buffer) uint32
		resp   uint8 // initiator's responder resources
	}{
		{"bad rkey", verbs.AccessData, verbs.OpRDMAWrite, verbs.Buffer.Addr, func(b verbs.Buffer) uint32 { return b.RKey() ^ 0x100 }, 4},
		{"lkey as rkey", verbs.AccessData, verbs.OpRDMAWrite, verbs.Buffer.Addr, verbs.Buffer.LKey, 4},
		{"past the end", verbs.AccessData, verbs.OpRDMAWrite, func(b verbs.Buffer) uint64 { return b.Addr() + 4000 }, verbs.Buffer.RKey, 4},
		{"below the start", verbs.AccessData, verbs.OpRDMARead, func(b verbs.Buffer) uint64 { return b.Addr() - 1 }, verbs.Buffer.RKey, 4},
		{"no remote write", verbs.AccessLocalWrite | verbs.AccessRemoteRead, verbs.OpRDMAWrite, verbs.Buffer.Addr, verbs.Buffer.RKey, 4},
		{"no remote read", verbs.AccessLocalWrite | verbs.AccessRemoteWrite, verbs.OpRDMARead, verbs.Buffer.Addr, verbs.Buffer.RKey, 4},
		{"no responder resources", verbs.AccessData, verbs.OpRDMARead, verbs.Buffer.Addr, verbs.Buffer.RKey, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t, sim.Config{Seed: 1, Clock: clock.NewManual(epoch)})
			dp := dialParams()
			dp.ResponderRes = tc.resp
			ini, tgt := p.connect(t, dp, targetParams())
			ib, err := p.ini.AllocBuffer(4096, tc.access)
			must(t, err)
			tb := alloc(t, p.tgt, 4096)
			before := bytes.Clone(ib.Bytes())
			copy(tb.Bytes(), "must not arrive")
			wr := &verbs.SendWR{ID: 1, Op: tc.op, Signaled: true, NumSGE: 1, RemoteAddr: tc.addr(ib), RKey: tc.rkey(ib)}
			wr.SGE[0] = sge(tb, 0, 100)
			must(t, tgt.PostSend(wr))
			must(t, tgt.PostSend(sendWR(2, sge(tb, 0, 4))))
			op := verbs.CompRDMAWrite
			if tc.op == verbs.OpRDMARead {
				op = verbs.CompRDMARead
			}
			want := []wc{{1, verbs.StatusRemAccessErr, op}, {2, verbs.StatusWRFlushErr, verbs.CompSend}}
			if d := cmp.Diff(want, summary(pollAll(tgt))); d != "" {
				t.Fatalf("completions (-want +got):\n%s", d)
			}
			if !bytes.Equal(before, ib.Bytes()) {
				t.Error("a refused RDMA WRITE changed the initiator's memory")
			}
			// The requester's QP is in error: new work is flushed.
			must(t, tgt.PostSend(sendWR(3, sge(tb, 0, 4))))
			if d := cmp.Diff([]wc{{3, verbs.StatusWRFlushErr, verbs.CompSend}}, summary(pollAll(tgt))); d != "" {
				t.Fatalf("post after error (-want +got):\n%s", d)
			}
			// The responder is unaffected.
			if n := len(pollAll(ini)); n != 0 {
				t.Fatalf("initiator got %d completions", n)
			}
		})
	}
}

// A deregistered buffer's keys are refused.
func TestDeregisteredKey(t *testing.T) {
	p := newPair(t, sim.Config{Seed: 1, Clock: clock.NewManual(epoch)})
	_, tgt := p.connect(t, dialParams(), targetParams())
	ib := alloc(t, p.ini, 4096)
	tb := alloc(t, p.tgt, 4096)
	must(t, ib.Close())
	wr := &verbs.SendWR{ID: 1, Op: verbs.OpRDMAWrite, Signaled: true, NumSGE: 1, RemoteAddr: ib.Addr(), RKey: ib.RKey()}
	wr.SGE[0] = sge(tb, 0, 10)
	must(t, tgt.PostSend(wr))
	if d := cmp.Diff([]wc{{1, verbs.StatusRemAccessErr, verbs.CompRDMAWrite}}, summary(pollAll(tgt))); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
}

// A local SGE with a bad lkey fails locally (local protection error).
func TestLocalProtectionError(t *testing.T) {
	p := newPair(t, sim.Config{Seed: 1, Clock: clock.NewManual(epoch)})
	ini, tgt := p.connect(t, dialParams(), targetParams())
	src := alloc(t, p.ini, 64)
	dst := alloc(t, p.tgt, 64)
	must(t, tgt.PostRecv(recvWR(9, sge(dst, 0, 64))))
	bad := sge(src, 0, 8)
	bad.LKey++
	must(t, ini.PostSend(sendWR(1, bad)))
	must(t, ini.PostSend(sendWR(2, sge(src, 0, 8))))
	want := []wc{{1, verbs.StatusLocProtErr, verbs.CompSend}, {2, verbs.StatusWRFlushErr, verbs.CompSend}}
	if d := cmp.Diff(want, summary(pollAll(ini))); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
	if n := len(pollAll(tgt)); n != 0 {
		t.Fatalf("target got %d completions", n)
	}
}

// A SEND larger than the posted receive fails both sides: local length
// error on the responder, remote invalid request on the requester.
func TestSendTooLong(t *testing.T) {
	p := newPair(t, sim.Config{Seed: 1, Clock: clock.NewManual(epoch)})
	ini, tgt := p.connect(t, dialParams(), targetParams())
	src := alloc(t, p.ini, 64)
	dst := alloc(t, p.tgt, 64)
	must(t, tgt.PostRecv(recvWR(9, sge(dst, 0, 4))))
	must(t, tgt.PostRecv(recvWR(10, sge(dst, 0, 4))))
	must(t, ini.PostSend(sendWR(1, sge(src, 0, 8))))
	if d := cmp.Diff([]wc{{1, verbs.StatusRemInvReqErr, verbs.CompSend}}, summary(pollAll(ini))); d != "" {
		t.Fatalf("requester (-want +got):\n%s", d)
	}
	want := []wc{{9, verbs.StatusLocLenErr, verbs.CompRecv}, {10, verbs.StatusWRFlushErr, verbs.CompRecv}}
	if d := cmp.Diff(want, summary(pollAll(tgt))); d != "" {
		t.Fatalf("responder (-want +got):\n%s", d)
	}
}

// Queue depths bound posted-but-unreaped work.
func TestQueueFull(t *testing.T) {
	p := newPair(t, sim.Config{Seed: 1, Clock: clock.NewManual(epoch)})
	dp := dialParams()
	dp.SendDepth, dp.RecvDepth = 2, 2
	ini, tgt := p.connect(t, dp, targetParams())
	src := alloc(t, p.ini, 64)
	for i := range 2 {
		must(t, ini.PostRecv(recvWR(uint64(i), sge(src, 0, 8))))
	}
	if err := ini.PostRecv(recvWR(3, sge(src, 0, 8))); !errors.Is(err, verbs.ErrQueueFull) {
		t.Fatalf("third PostRecv: %v, want ErrQueueFull", err)
	}
	tb := alloc(t, p.tgt, 64)
	for i := range 4 {
		must(t, tgt.PostRecv(recvWR(uint64(i), sge(tb, 0, 8))))
	}
	// Sends complete at once (zero latency) but hold their slot until polled.
	must(t, ini.PostSend(sendWR(1, sge(src, 0, 8))))
	must(t, ini.PostSend(sendWR(2, sge(src, 0, 8))))
	if err := ini.PostSend(sendWR(3, sge(src, 0, 8))); !errors.Is(err, verbs.ErrQueueFull) {
		t.Fatalf("third PostSend: %v, want ErrQueueFull", err)
	}
	var one [1]verbs.Completion
	if ini.Poll(one[:]) != 1 {
		t.Fatal("no completion to poll")
	}
	must(t, ini.PostSend(sendWR(3, sge(src, 0, 8))))
	// Too many SGEs is refused at post time.
	wr := sendWR(4, sge(src, 0, 1))
	wr.NumSGE = verbs.MaxSGE + 1
	if err := tgt.PostSend(wr); !errors.Is(err, verbs.ErrInvalidWR) {
		t.Fatalf("PostSend with %d SGEs: %v, want ErrInvalidWR", wr.NumSGE, err)
	}
}

// Unsignaled successful sends produce no completion; errors always do.
func TestUnsignaled(t *testing.T) {
	p := newPair(t, sim.Config{Seed: 1, Clock: clock.NewManual(epoch)})
	ini, tgt := p.connect(t, dialParams(), targetParams())
	src := alloc(t, p.ini, 64)
	dst := alloc(t, p.tgt, 64)
	must(t, tgt.PostRecv(recvWR(9, sge(dst, 0, 64))))
	wr := sendWR(1, sge(src, 0, 8))
	wr.Signaled = false
	must(t, ini.PostSend(wr))
	if n := len(pollAll(ini)); n != 0 {
		t.Fatalf("%d completions for an unsignaled send", n)
	}
	must(t, ini.ForceError())
	wr.ID = 2
	must(t, ini.PostSend(wr))
	if d := cmp.Diff([]wc{{2, verbs.StatusWRFlushErr, verbs.CompSend}}, summary(pollAll(ini))); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
}
