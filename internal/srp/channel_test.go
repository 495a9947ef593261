package srp_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/srp"
	"github.com/srp-mpathd/srp-mpathd/internal/srp/scsi"
	"github.com/srp-mpathd/srp-mpathd/internal/srp/srptest"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
)

func TestChannelReadWrite(t *testing.T) {
	e := newEnv(t)
	c := e.dial(t, e.params())
	info := c.Info()
	if !info.Immediate || info.MaxITIU != srp.DefaultImmDataOffset+srp.DefaultImmediateMax || info.ReqLim != 128 {
		t.Fatalf("info %+v", info)
	}
	d := newDataBuf(t, e.ini, 2, 8192)
	pattern(d.bytes(0), 7)
	var cmd srp.Command
	d.rw(&cmd, 0, true, 10, 8, 512)
	r := do(t, c, &cmd)
	if r.Err != nil || r.Status != 0 {
		t.Fatalf("write: %+v", r)
	}
	checkLU(t, e.lu, 10*512, d.bytes(0)[:4096])
	d.rw(&cmd, 1, false, 10, 8, 512)
	r = do(t, c, &cmd)
	if r.Err != nil || r.Status != 0 || r.Residual != 0 {
		t.Fatalf("read: %+v", r)
	}
	if !bytes.Equal(d.bytes(1)[:4096], d.bytes(0)[:4096]) {
		t.Fatal("read data differs from written data")
	}
	if got := c.Info().ReqLim; got != 128 {
		t.Fatalf("req_lim after two commands %d, want 128", got)
	}
}

// ioOp is one READ or WRITE of a workload; a read expects the data of the
// write with the same seed.
type ioOp struct {
	write  bool
	lba    uint64
	blocks uint32
	seed   uint64
}

// runOps keeps up to depth ops in flight and verifies every read.
func runOps(t *testing.T, c *srp.Channel, d *dataBuf, depth, bs int, ops []ioOp) {
	t.Helper()
	free := make([]int, 0, depth)
	for i := depth - 1; i >= 0; i-- {
		free = append(free, i)
	}
	slotOf := make(map[uint64]int)
	out := make([]srp.Result, depth)
	next, done := 0, 0
	var cmd srp.Command
	for done < len(ops) {
		for next < len(ops) && len(free) > 0 {
			op := ops[next]
			slot := free[len(free)-1]
			n := int(op.blocks) * bs
			if op.write {
				pattern(d.bytes(slot)[:n], op.seed)
			} else {
				clear(d.bytes(slot)[:n])
			}
			d.rw(&cmd, slot, op.write, op.lba, op.blocks, bs)
			cmd.ID = uint64(next)
			err := c.Submit(&cmd)
			if err == srp.ErrNoCredit || err == srp.ErrNoTag {
				break
			}
			must(t, err)
			free = free[:len(free)-1]
			slotOf[uint64(next)] = slot
			next++
		}
		for _, r := range waitResults(t, c, out[:0], 1) {
			op := ops[r.ID]
			slot := slotOf[r.ID]
			delete(slotOf, r.ID)
			if r.Err != nil || r.Status != 0 || r.Residual != 0 {
				t.Fatalf("op %d %+v: result %+v", r.ID, op, r)
			}
			if !op.write {
				want := make([]byte, int(op.blocks)*bs)
				pattern(want, op.seed)
				if !bytes.Equal(d.bytes(slot)[:len(want)], want) {
					t.Fatalf("op %d: read data differs", r.ID)
				}
			}
			free = append(free, slot)
			done++
		}
	}
}

// TestChannelQueueDepths runs writes then verified reads at queue depths 1
// to 128, both block sizes, immediate data on and off.
func TestChannelQueueDepths(t *testing.T) {
	for _, bs := range []int{512, 4096} {
		for _, imm := range []bool{true, false} {
			for _, qd := range []int{1, 2, 8, 32, 64, 128} {
				t.Run(fmt.Sprintf("bs%d/imm=%t/qd%d", bs, imm, qd), func(t *testing.T) {
					e := newEnv(t, func(_ *srptest.Config, lc *srptest.LUConfig) {
						lc.BlockSize = bs
						lc.Blocks = 2048
					})
					p := e.params()
					p.QueueDepth = qd
					p.Immediate = imm
					c := e.dial(t, p)
					if c.Info().Immediate != imm {
						t.Fatalf("immediate %t, want %t", c.Info().Immediate, imm)
					}
					const blocksPerOp = 4096 / 512
					blocks := uint32(max(1, blocksPerOp*512/bs)) * 2
					nOps := 4 * qd
					if nOps*int(blocks) > 2048 {
						nOps = 2048 / int(blocks)
					}
					var ops []ioOp
					for i := range nOps {
						ops = append(ops, ioOp{write: true, lba: uint64(i) * uint64(blocks), blocks: blocks, seed: uint64(i + 1)})
					}
					for i := range nOps {
						ops = append(ops, ioOp{lba: uint64(i) * uint64(blocks), blocks: blocks, seed: uint64(i + 1)})
					}
					d := newDataBuf(t, e.ini, qd, int(blocks)*bs)
					runOps(t, c, d, qd, bs, ops)
					want := make([]byte, int(blocks)*bs)
					for i := range nOps {
						pattern(want, uint64(i+1))
						checkLU(t, e.lu, int64(i)*int64(len(want)), want)
					}
					if c.Outstanding() != 0 {
						t.Fatalf("outstanding %d", c.Outstanding())
					}
					if got, want := c.Info().ReqLim, 128; got != want {
						t.Fatalf("req_lim %d after the run, want %d", got, want)
					}
					for _, s := range e.tgt.Sessions() {
						st := s.Stats()
						if st.CreditViolations != 0 {
							t.Fatalf("target saw %d credit violations", st.CreditViolations)
						}
						// Writes of 8 KiB fit max_it_iu_len (68 + 8192) only with immediate data on.
						if imm && st.ImmediateWrites != uint64(nOps) || !imm && st.ImmediateWrites != 0 {
							t.Fatalf("target saw %d immediate writes of %d (immediate %t)", st.ImmediateWrites, nOps, imm)
						}
					}
				})
			}
		}
	}
}

// TestChannelZeroAlloc: a submit/poll cycle of a 4 KiB write (immediate
// data) and read allocates nothing, on either side of the simulator.
func TestChannelZeroAlloc(t *testing.T) {
	e := newEnv(t)
	c := e.dial(t, e.params())
	d := newDataBuf(t, e.ini, 2, 4096)
	var wr, rd srp.Command
	d.rw(&wr, 0, true, 0, 8, 512)
	d.rw(&rd, 1, false, 0, 8, 512)
	out := make([]srp.Result, 2)
	ready := c.Ready()
	cycle := func(cmd *srp.Command) {
		if err := c.Submit(cmd); err != nil {
			t.Fatal(err)
		}
		for c.Poll(out) == 0 {
			if err := c.ArmNotify(); err != nil {
				t.Fatal(err)
			}
			if c.Poll(out) > 0 {
				break
			}
			<-ready
		}
		if out[0].Err != nil || out[0].Status != 0 {
			t.Fatalf("%+v", out[0])
		}
	}
	cycle(&wr) // warm up
	if n := testing.AllocsPerRun(200, func() { cycle(&wr); cycle(&rd) }); n != 0 {
		t.Fatalf("%v allocations per write+read", n)
	}
}

// TestImmediateCopy: a write whose buffer has no lkey is copied into the
// transmit IU as immediate data.
func TestImmediateCopy(t *testing.T) {
	e := newEnv(t)
	c := e.dial(t, e.params())
	local := make([]byte, 1024)
	pattern(local, 11)
	cmd := srp.Command{ID: 1, LUN: testLUN, Dir: srp.DataOut, Len: 1024, Local: local}
	cmd.CDBLen = scsi.RW(&cmd.CDB, true, 40, 2, false)
	if r := do(t, c, &cmd); r.Err != nil || r.Status != 0 {
		t.Fatalf("%+v", r)
	}
	checkLU(t, e.lu, 40*512, local)
	if st := e.tgt.Sessions()[0].Stats(); st.ImmediateWrites != 1 {
		t.Fatalf("immediate writes %d", st.ImmediateWrites)
	}
}

// TestSubmitErrors: malformed commands and tag exhaustion post nothing.
func TestSubmitErrors(t *testing.T) {
	e := newEnv(t)
	p := e.params()
	p.QueueDepth = 2
	c := e.dial(t, p)
	for _, cmd := range []srp.Command{
		{CDBLen: 0},
		{CDBLen: 17},
		{CDBLen: 6, Dir: srp.DataIn},
		{CDBLen: 6, Dir: 7},
	} {
		if err := c.Submit(&cmd); !errors.Is(err, srp.ErrBadCommand) {
			t.Fatalf("%+v: %v", cmd, err)
		}
	}
	e.lu.SetFaults(srptest.LUFaults{DropResponses: 2})
	must(t, c.Submit(tur(1)))
	must(t, c.Submit(tur(2)))
	if err := c.Submit(tur(3)); !errors.Is(err, srp.ErrNoTag) {
		t.Fatalf("third submit at depth 2: %v", err)
	}
	if c.Outstanding() != 2 {
		t.Fatalf("outstanding %d", c.Outstanding())
	}
	if c.Err() != nil {
		t.Fatal(c.Err())
	}
}

// captureDevice records the CM private data of a Dial and refuses it.
type captureDevice struct {
	verbs.Device
	priv []byte
}

func (d *captureDevice) Dial(_ context.Context, p verbs.DialParams) (verbs.Conn, []byte, error) {
	d.priv = append([]byte(nil), p.Private...)
	return nil, nil, verbs.ErrUnreachable
}

// TestLoginRequestForms: the RDMA/CM form is 56 bytes, the IB CM form 64,
// both carrying the same request (research §1.2, §1.3).
func TestLoginRequestForms(t *testing.T) {
	for _, ibcm := range []bool{false, true} {
		dev := &captureDevice{}
		p := srp.ChannelParams{Src: iniAddr, Dst: tgtPort, InitiatorExt: 0xfe80000000000000, InitiatorPortGUID: 0x505400fffe123456,
			TargetPortID: srp.TargetPortID{IDExt: 0x505400fffe654321, IOCGUID: 0x505400fffe654321}, Immediate: true, IBCM: ibcm}
		if _, err := srp.Dial(context.Background(), dev, p); !errors.Is(err, verbs.ErrUnreachable) {
			t.Fatalf("Dial: %v", err)
		}
		var req srp.LoginReq
		var err error
		if ibcm {
			if len(dev.priv) != srp.LoginReqLen {
				t.Fatalf("IB CM form of %d bytes", len(dev.priv))
			}
			err = req.Decode(dev.priv)
		} else {
			if len(dev.priv) != srp.LoginReqRDMALen {
				t.Fatalf("RDMA/CM form of %d bytes", len(dev.priv))
			}
			err = req.DecodeRDMA(dev.priv)
		}
		must(t, err)
		want := srp.LoginReq{ReqITIULen: 8260, ReqBufFmt: srp.BufFormatDirect, ReqFlags: srp.LoginReqImmedRequested,
			ImmDataOffset: srp.DefaultImmDataOffset, InitiatorPortID: srp.InitiatorPortID{Ext: p.InitiatorExt, GUID: p.InitiatorPortGUID},
			TargetPortID: p.TargetPortID}
		if req != want {
			t.Fatalf("ibcm %t: request %+v, want %+v", ibcm, req, want)
		}
	}
}

// TestChannelLatencyAndLoss runs a verified workload over a link with
// latency and packet loss: completions now come from the simulator's timers
// and lost transmissions are retried by the RC transport.
func TestChannelLatencyAndLoss(t *testing.T) {
	e := newEnv(t)
	e.link.SetLatency(20 * time.Microsecond)
	e.link.SetLoss(0.02)
	p := e.params()
	p.AckTimeout = 8 // ~1 ms per try
	p.QueueDepth = 16
	c := e.dial(t, p)
	const blocks = 8
	var ops []ioOp
	for i := range 32 {
		ops = append(ops, ioOp{write: true, lba: uint64(i * blocks), blocks: blocks, seed: uint64(i + 100)})
	}
	for i := range 32 {
		ops = append(ops, ioOp{lba: uint64(i * blocks), blocks: blocks, seed: uint64(i + 100)})
	}
	d := newDataBuf(t, e.ini, 16, blocks*512)
	runOps(t, c, d, 16, 512, ops)
	if c.Err() != nil {
		t.Fatal(c.Err())
	}
}

// TestControlPlaneConcurrency: heartbeats, Info and a LUN reset of another
// LUN from other goroutines while the queue goroutine runs verified I/O
// (the race detector checks the locking).
func TestControlPlaneConcurrency(t *testing.T) {
	e := newEnv(t)
	_, err := e.tgt.AddLU(srptest.LUConfig{LUN: 2, BlockSize: 512, Blocks: 64})
	must(t, err)
	c := e.dial(t, e.params())
	stop := make(chan struct{})
	done := make(chan error, 2)
	go func() {
		var last uint64
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if seq, err := c.Heartbeat(); err == nil {
				last = seq
			} else if !errors.Is(err, srp.ErrBusy) {
				done <- err
				return
			}
			_ = c.Info()
			_ = last
		}
	}()
	go func() {
		done <- c.ResetLUN(context.Background(), 2)
	}()
	var ops []ioOp
	for i := range 64 {
		ops = append(ops, ioOp{write: true, lba: uint64(i * 8), blocks: 8, seed: uint64(i + 7)})
	}
	for i := range 64 {
		ops = append(ops, ioOp{lba: uint64(i * 8), blocks: 8, seed: uint64(i + 7)})
	}
	d := newDataBuf(t, e.ini, 16, 4096)
	runOps(t, c, d, 16, 512, ops)
	// The reset's answer needs a poller; keep polling until it is back.
	var resetErr error
	var out [4]srp.Result
	for got := 0; got < 1; {
		select {
		case err := <-done:
			resetErr = err
			got++
		default:
			c.Poll(out[:])
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatalf("heartbeat goroutine: %v", err)
	}
	c.Poll(out[:])
	if resetErr != nil || c.Err() != nil || c.HeartbeatAcked() == 0 {
		t.Fatalf("reset %v, channel %v, heartbeats acked %d", resetErr, c.Err(), c.HeartbeatAcked())
	}
	if st := e.tgt.LU(2).Stats(); st.Resets != 1 {
		t.Fatalf("LU 2 resets %d", st.Resets)
	}
}
