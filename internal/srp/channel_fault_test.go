package srp_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/clock"
	"github.com/srp-mpathd/srp-mpathd/internal/srp"
	"github.com/srp-mpathd/srp-mpathd/internal/srp/scsi"
	"github.com/srp-mpathd/srp-mpathd/internal/srp/srptest"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs/sim"
)

func tur(id uint64) *srp.Command {
	c := &srp.Command{ID: id, LUN: testLUN}
	c.CDBLen = scsi.TestUnitReady(&c.CDB)
	return c
}

func session(t *testing.T, e *env) *srptest.Session {
	t.Helper()
	ss := e.tgt.Sessions()
	if len(ss) != 1 {
		t.Fatalf("%d sessions, want 1", len(ss))
	}
	return ss[0]
}

// TestCreditStarvation: with credits withheld the channel keeps the last
// credit for task management and refuses commands with ErrNoCredit; the
// target's CRED_REQ restores them and is answered without spending one
// (research §2.3).
func TestCreditStarvation(t *testing.T) {
	e := newEnv(t, func(c *srptest.Config, _ *srptest.LUConfig) { c.RQSize = 4 })
	c := e.dial(t, e.params())
	s := session(t, e)
	s.HoldCredits(true)
	var out [4]srp.Result
	for i := range 3 {
		if r := do(t, c, tur(uint64(i))); r.Err != nil || r.Status != 0 {
			t.Fatalf("tur %d: %+v", i, r)
		}
	}
	if got := c.Info().ReqLim; got != 1 {
		t.Fatalf("req_lim %d, want 1", got)
	}
	if err := c.Submit(tur(9)); !errors.Is(err, srp.ErrNoCredit) {
		t.Fatalf("submit with one credit left: %v, want ErrNoCredit", err)
	}
	if c.Outstanding() != 0 || c.Info().NoCredit != 1 {
		t.Fatalf("outstanding %d, no-credit count %d", c.Outstanding(), c.Info().NoCredit)
	}
	s.HoldCredits(false) // sends CRED_REQ with the 3 withheld credits
	if n := c.Poll(out[:]); n != 0 {
		t.Fatalf("poll returned %d results", n)
	}
	if got := c.Info(); got.ReqLim != 4 || got.CredReqs != 1 {
		t.Fatalf("after CRED_REQ: req_lim %d cred_reqs %d, want 4 and 1", got.ReqLim, got.CredReqs)
	}
	s.Sync()
	if st := s.Stats(); st.CredRsps != 1 || st.CreditViolations != 0 {
		t.Fatalf("target stats %+v", st)
	}
	if s.Credits() != 4 {
		t.Fatalf("target accounts %d credits, want 4", s.Credits())
	}
	if r := do(t, c, tur(10)); r.Err != nil || r.Status != 0 {
		t.Fatalf("tur after recovery: %+v", r)
	}
}

// TestCreditWindowLimitsQueue: a window of N credits admits N-1 commands.
func TestCreditWindowLimitsQueue(t *testing.T) {
	e := newEnv(t, func(c *srptest.Config, _ *srptest.LUConfig) { c.RQSize = 5 })
	c := e.dial(t, e.params())
	e.lu.SetFaults(srptest.LUFaults{DropResponses: 10})
	for i := range 4 {
		must(t, c.Submit(tur(uint64(i))))
	}
	if err := c.Submit(tur(4)); !errors.Is(err, srp.ErrNoCredit) {
		t.Fatalf("fifth submit: %v, want ErrNoCredit", err)
	}
	// The reserved credit still carries an abort.
	must(t, c.Abort(2))
	var out [4]srp.Result
	r := waitResults(t, c, out[:0], 1)[0]
	if r.ID != 2 || !r.Aborted || !errors.Is(r.Err, srp.ErrAborted) {
		t.Fatalf("abort result %+v", r)
	}
	// The TSK_MGMT response returned its own credit and the aborted task's.
	if got := c.Info().ReqLim; got != 2 {
		t.Fatalf("req_lim %d after abort, want 2", got)
	}
}

// TestAbortTask: a hung command is aborted; the abort's outcome arrives
// through Poll and the target frees the task.
func TestAbortTask(t *testing.T) {
	e := newEnv(t)
	c := e.dial(t, e.params())
	e.lu.SetFaults(srptest.LUFaults{DropResponses: 1})
	d := newDataBuf(t, e.ini, 2, 4096)
	var cmd srp.Command
	d.rw(&cmd, 0, false, 0, 8, 512)
	cmd.ID = 77
	must(t, c.Submit(&cmd))
	must(t, c.Submit(tur(78)))
	var out [2]srp.Result
	r := waitResults(t, c, out[:0], 1)[0]
	if r.ID != 78 || r.Err != nil {
		t.Fatalf("tur: %+v", r)
	}
	if err := c.Abort(78); !errors.Is(err, srp.ErrNotOutstanding) {
		t.Fatalf("abort of a completed command: %v", err)
	}
	must(t, c.Abort(77))
	must(t, c.Abort(77)) // idempotent while in flight
	r = waitResults(t, c, out[:0], 1)[0]
	if r.ID != 77 || !r.Aborted || !errors.Is(r.Err, srp.ErrAborted) {
		t.Fatalf("abort: %+v", r)
	}
	if c.Outstanding() != 0 || c.Info().ReqLim != 128 {
		t.Fatalf("outstanding %d, req_lim %d", c.Outstanding(), c.Info().ReqLim)
	}
	if st := e.lu.Stats(); st.Aborted != 1 {
		t.Fatalf("LU aborted %d, want 1", st.Aborted)
	}
	// The tag is reusable and the channel healthy.
	if r := do(t, c, tur(79)); r.Err != nil || r.Status != 0 {
		t.Fatalf("tur after abort: %+v", r)
	}
	if c.Err() != nil {
		t.Fatal(c.Err())
	}
}

// TestAbortTimeout: an ABORT TASK without an answer within AbortTimeout
// fails the channel; the command then completes as flushed.
func TestAbortTimeout(t *testing.T) {
	e := newEnv(t)
	clk := clock.NewManual(time.Unix(1000, 0))
	p := e.params()
	p.Clock = clk
	p.AbortTimeout = 2 * time.Second
	c := e.dial(t, p)
	e.lu.SetFaults(srptest.LUFaults{DropResponses: 1, IgnoreTaskMgmt: true})
	must(t, c.Submit(tur(1)))
	must(t, c.Abort(1))
	var out [2]srp.Result
	session(t, e).Sync()
	if n := c.Poll(out[:]); n != 0 || c.Err() != nil {
		t.Fatalf("before the timeout: %d results, err %v", n, c.Err())
	}
	clk.Advance(2*time.Second + time.Millisecond)
	r := waitResults(t, c, out[:0], 1)[0]
	if r.ID != 1 || !errors.Is(r.Err, srp.ErrFlushed) {
		t.Fatalf("result %+v, want ErrFlushed", r)
	}
	if !errors.Is(c.Err(), srp.ErrAbortTimeout) {
		t.Fatalf("channel error %v, want ErrAbortTimeout", c.Err())
	}
	if err := c.Submit(tur(2)); !errors.Is(err, srp.ErrChannelFailed) {
		t.Fatalf("submit after failure: %v", err)
	}
}

// TestLUNReset: LUN RESET ends every outstanding command of the LUN.
func TestLUNReset(t *testing.T) {
	e := newEnv(t)
	_, err := e.tgt.AddLU(srptest.LUConfig{LUN: 2, BlockSize: 512, Blocks: 64})
	must(t, err)
	c := e.dial(t, e.params())
	e.lu.SetFaults(srptest.LUFaults{DropResponses: 3})
	for i := range 3 {
		must(t, c.Submit(tur(uint64(i))))
	}
	done := make(chan error, 1)
	go func() { done <- c.ResetLUN(context.Background(), testLUN) }()
	var out [4]srp.Result
	got := waitResults(t, c, out[:0], 3)
	for _, r := range got {
		if !r.Aborted || !errors.Is(r.Err, srp.ErrLUNReset) {
			t.Fatalf("result %+v, want ErrLUNReset", r)
		}
	}
	// ResetLUN's answer was processed by the Poll above.
	if err := <-done; err != nil {
		t.Fatalf("ResetLUN: %v", err)
	}
	if st := e.lu.Stats(); st.Resets != 1 || st.Aborted != 3 {
		t.Fatalf("LU stats %+v", st)
	}
	if got := c.Info().ReqLim; got != 128 {
		t.Fatalf("req_lim %d, want 128", got)
	}
	// The other LUN is unaffected and the channel healthy.
	cmd := tur(9)
	cmd.LUN = 2
	if r := do(t, c, cmd); r.Err != nil || r.Status != 0 {
		t.Fatalf("tur on LUN 2: %+v", r)
	}
}

// TestResetLUNContext: ResetLUN gives up when its context ends (nobody
// polls here, so no answer is seen).
func TestResetLUNContext(t *testing.T) {
	e := newEnv(t)
	c := e.dial(t, e.params())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.ResetLUN(ctx, testLUN); !errors.Is(err, context.Canceled) {
		t.Fatalf("ResetLUN: %v", err)
	}
	var out [1]srp.Result
	c.Poll(out[:]) // consume the late answer
	if c.Err() != nil {
		t.Fatal(c.Err())
	}
}

// TestResponseDelay: a delayed response arrives when the target's clock
// reaches the delay.
func TestResponseDelay(t *testing.T) {
	clk := clock.NewManual(time.Unix(1000, 0))
	e := newEnv(t, func(c *srptest.Config, _ *srptest.LUConfig) { c.Clock = clk })
	c := e.dial(t, e.params())
	e.lu.SetFaults(srptest.LUFaults{Delay: time.Second})
	must(t, c.Submit(tur(1)))
	session(t, e).Sync()
	var out [1]srp.Result
	if n := c.Poll(out[:]); n != 0 {
		t.Fatal("response before the delay")
	}
	clk.Advance(time.Second)
	if r := waitResults(t, c, out[:0], 1)[0]; r.Err != nil || r.Status != 0 {
		t.Fatalf("delayed result %+v", r)
	}
}

// TestCheckConditionInjection: injected CHECK CONDITIONs reach the caller
// with their sense data.
func TestCheckConditionInjection(t *testing.T) {
	e := newEnv(t)
	c := e.dial(t, e.params())
	for i, cc := range []srptest.CheckCondition{srptest.UnitAttentionReset, srptest.NotReadyBecoming, srptest.MediumErrorRead} {
		e.lu.InjectCheckCondition(cc)
		r := do(t, c, tur(uint64(i)))
		if r.Err != nil || r.Status != 0x02 {
			t.Fatalf("%v: result %+v", cc, r)
		}
		s, err := scsi.ParseSense(r.Sense[:r.SenseLen])
		must(t, err)
		if byte(s.Key) != cc.Key || s.ASC != cc.ASC || s.ASCQ != cc.ASCQ {
			t.Fatalf("sense %+v, want %+v", s, cc)
		}
	}
	if r := do(t, c, tur(9)); r.Err != nil || r.Status != 0 {
		t.Fatalf("after injections: %+v", r)
	}
}

// TestTargetLogout: T_LOGOUT is a transport error on this path; in-flight
// commands are flushed.
func TestTargetLogout(t *testing.T) {
	e := newEnv(t)
	c := e.dial(t, e.params())
	e.lu.SetFaults(srptest.LUFaults{DropResponses: 1})
	must(t, c.Submit(tur(1)))
	session(t, e).SendTLogout(0)
	var out [1]srp.Result
	r := waitResults(t, c, out[:0], 1)[0]
	if !errors.Is(r.Err, srp.ErrFlushed) || !errors.Is(c.Err(), srp.ErrTargetLogout) {
		t.Fatalf("result %+v, channel err %v", r, c.Err())
	}
}

// TestCredReqAerReq: CRED_REQ and AER_REQ add their credits and are
// answered without spending one.
func TestCredReqAerReq(t *testing.T) {
	e := newEnv(t)
	c := e.dial(t, e.params())
	s := session(t, e)
	s.SendCredReq(5)
	var out [1]srp.Result
	c.Poll(out[:])
	s.SendAerReq(testLUN, 2, []byte{0x70, 0, 6, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x2a, 0x09, 0, 0, 0, 0})
	c.Poll(out[:])
	info := c.Info()
	if info.ReqLim != 128+5+2 || info.CredReqs != 1 || info.AERs != 1 {
		t.Fatalf("info %+v", info)
	}
	s.Sync()
	if st := s.Stats(); st.CredRsps != 1 || st.AerRsps != 1 || st.CreditViolations != 0 {
		t.Fatalf("target stats %+v", st)
	}
	if got := s.Credits(); got != 128+5+2 {
		t.Fatalf("target accounts %d credits", got)
	}
}

// TestSessionKill: the target removing the session (DREQ) fails the channel
// without anyone polling, and the next Poll flushes what was in flight.
func TestSessionKill(t *testing.T) {
	e := newEnv(t)
	c := e.dial(t, e.params())
	e.lu.SetFaults(srptest.LUFaults{DropResponses: 1})
	must(t, c.Submit(tur(1)))
	session(t, e).Sync()
	if n := e.port.KillSessions(); n != 1 {
		t.Fatalf("killed %d sessions", n)
	}
	<-c.Failed()
	if !errors.Is(c.Err(), srp.ErrDisconnected) {
		t.Fatalf("err %v", c.Err())
	}
	var out [2]srp.Result
	if n := c.Poll(out[:]); n != 1 || out[0].ID != 1 || !errors.Is(out[0].Err, srp.ErrFlushed) {
		t.Fatalf("poll after kill: %d %+v", n, out[0])
	}
	if c.Outstanding() != 0 {
		t.Fatal("outstanding after flush")
	}
}

// TestProtocolErrors: malformed IUs from the target reset the channel and
// never panic.
func TestProtocolErrors(t *testing.T) {
	for _, f := range []srptest.ProtocolFault{srptest.FaultUnknownTag, srptest.FaultBadLength, srptest.FaultCreditOverflow, srptest.FaultBadOpcode} {
		t.Run(f.String(), func(t *testing.T) {
			e := newEnv(t)
			c := e.dial(t, e.params())
			e.lu.SetFaults(srptest.LUFaults{DropResponses: 1})
			must(t, c.Submit(tur(1)))
			session(t, e).InjectProtocolFault(f)
			var out [1]srp.Result
			r := waitResults(t, c, out[:0], 1)[0]
			want := srp.ErrFlushed
			if f == srptest.FaultBadLength { // the malformed response named this command
				want = srp.ErrProtocol
			}
			if !errors.Is(r.Err, want) || !errors.Is(c.Err(), srp.ErrProtocol) {
				t.Fatalf("result %+v, channel err %v", r, c.Err())
			}
		})
	}
}

// TestForceErrorAndClose: ForceError flushes in-flight commands; Close is
// idempotent and later calls fail cleanly.
func TestForceErrorAndClose(t *testing.T) {
	e := newEnv(t)
	c := e.dial(t, e.params())
	e.lu.SetFaults(srptest.LUFaults{DropResponses: 2})
	must(t, c.Submit(tur(1)))
	must(t, c.Submit(tur(2)))
	must(t, c.ForceError())
	var out [4]srp.Result
	if n := c.Poll(out[:]); n != 2 || !errors.Is(out[0].Err, srp.ErrFlushed) || !errors.Is(out[1].Err, srp.ErrFlushed) {
		t.Fatalf("poll after ForceError: %d %+v", n, out[:n])
	}
	if !errors.Is(c.Err(), srp.ErrForced) {
		t.Fatal(c.Err())
	}
	if err := c.Submit(tur(3)); !errors.Is(err, srp.ErrChannelFailed) {
		t.Fatal(err)
	}
	if _, err := c.Heartbeat(); !errors.Is(err, srp.ErrChannelFailed) {
		t.Fatal(err)
	}
	must(t, c.Close())
	must(t, c.Close())
	if n := c.Poll(out[:]); n != 0 {
		t.Fatalf("poll after close: %d", n)
	}
}

// TestCloseFlushes: Close with commands in flight flushes them.
func TestCloseFlushes(t *testing.T) {
	e := newEnv(t)
	c := e.dial(t, e.params())
	e.lu.SetFaults(srptest.LUFaults{DropResponses: 1})
	must(t, c.Submit(tur(1)))
	must(t, c.Close())
	var out [2]srp.Result
	if n := c.Poll(out[:]); n != 1 || !errors.Is(out[0].Err, srp.ErrFlushed) {
		t.Fatalf("poll after close: %d %+v", n, out[0])
	}
	if !errors.Is(c.Err(), srp.ErrChannelClosed) {
		t.Fatal(c.Err())
	}
}

// TestHeartbeat: the zero-length RDMA WRITE is acknowledged without credit;
// over a dead link it fails the channel.
func TestHeartbeat(t *testing.T) {
	e := newEnv(t)
	c := e.dial(t, e.params())
	seq, err := c.Heartbeat()
	must(t, err)
	var out [1]srp.Result
	c.Poll(out[:])
	if c.HeartbeatAcked() != seq || c.Info().ReqLim != 128 {
		t.Fatalf("acked %d want %d, req_lim %d", c.HeartbeatAcked(), seq, c.Info().ReqLim)
	}
}

// TestHeartbeatDeadLink: over a dead link the heartbeat exhausts its
// transport retries and fails the channel (research §2.7), flushing the
// commands in flight.
func TestHeartbeatDeadLink(t *testing.T) {
	clk := clock.NewManual(time.Unix(1000, 0))
	e := newEnvSim(t, sim.Config{Seed: 1, Clock: clk})
	p := e.params()
	p.AckTimeout = 14 // 67 ms per try
	p.RetryCount = 2
	c := e.dial(t, p)
	e.lu.SetFaults(srptest.LUFaults{DropResponses: 1})
	must(t, c.Submit(tur(1)))
	session(t, e).Sync()
	e.link.Blackhole(true)
	seq, err := c.Heartbeat()
	must(t, err)
	var out [1]srp.Result
	if n := c.Poll(out[:]); n != 0 || c.HeartbeatAcked() == seq {
		t.Fatal("heartbeat acknowledged over a blackhole")
	}
	clk.Advance(time.Second) // > (2+1) × 67 ms
	r := waitResults(t, c, out[:0], 1)[0]
	if !errors.Is(r.Err, srp.ErrFlushed) {
		t.Fatalf("result %+v", r)
	}
	var ce *srp.CompletionError
	if !errors.As(c.Err(), &ce) || ce.Status != verbs.StatusRetryExcErr {
		t.Fatalf("channel err %v, want a retry-exceeded completion", c.Err())
	}
	if c.HeartbeatAcked() == seq {
		t.Fatal("heartbeat acknowledged")
	}
}

// TestAbortRacesResponse: an abort sent after the target already answered
// the command gets a failure code; the command keeps its own result and is
// delivered once.
func TestAbortRacesResponse(t *testing.T) {
	e := newEnv(t)
	c := e.dial(t, e.params())
	must(t, c.Submit(tur(5)))
	session(t, e).Sync() // the response is in our CQ, not yet polled
	must(t, c.Abort(5))
	session(t, e).Sync()
	var out [4]srp.Result
	n := c.Poll(out[:])
	if n != 1 || out[0].ID != 5 || out[0].Aborted || out[0].Err != nil {
		t.Fatalf("poll: %d %+v", n, out[:n])
	}
	if c.Outstanding() != 0 || c.Info().ReqLim != 128 || c.Err() != nil {
		t.Fatalf("outstanding %d req_lim %d err %v", c.Outstanding(), c.Info().ReqLim, c.Err())
	}
	if r := do(t, c, tur(6)); r.Err != nil {
		t.Fatalf("%+v", r)
	}
}

// TestTargetTaskExhaustion: commands beyond the target's task pool wait in
// its receive ring (ib_srpt's cmd_wait_list) and are served as tasks free
// up; the initiator just sees them complete later.
func TestTargetTaskExhaustion(t *testing.T) {
	clk := clock.NewManual(time.Unix(1000, 0))
	e := newEnv(t, func(c *srptest.Config, _ *srptest.LUConfig) { c.RQSize = 4; c.Clock = clk })
	p := e.params()
	p.QueueDepth = 40
	c := e.dial(t, p)
	s := session(t, e)
	s.SendCredReq(36) // a window of 40 for a target with 4+16 tasks
	var out [40]srp.Result
	c.Poll(out[:])
	e.lu.SetFaults(srptest.LUFaults{Delay: time.Second})
	for i := range 30 {
		must(t, c.Submit(tur(uint64(i))))
	}
	got := 0
	for round := 0; got < 30; round++ {
		if round > 5 {
			t.Fatalf("%d of 30 after %d rounds", got, round)
		}
		s.Sync()
		clk.Advance(time.Second)
		s.Sync()
		n := c.Poll(out[:])
		if round == 0 && n != 4+16 {
			t.Fatalf("first round completed %d, want the task pool (20)", n)
		}
		got += n
	}
	if st := s.Stats(); st.CreditViolations != 0 || st.Commands != 30 {
		t.Fatalf("target stats %+v", st)
	}
}
