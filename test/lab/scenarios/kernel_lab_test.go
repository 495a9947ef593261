//go:build lab

package scenarios

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/srp-mpathd/srp-mpathd/test/lab/labkit"
	"github.com/srp-mpathd/srp-mpathd/test/lab/srplab"
)

// The kernel baseline (issue 7): the kernel's own ib_srp, logged in on both
// paths of the srplab fabric, with dm-multipath (multipathd) on top, under
// the same load srp-mpathd's e2e scenarios run on /dev/ublkbN. The path that
// fails is path 0, kernel defaults throughout (fast_io_fail_tmo 15 s,
// dev_loss_tmo 600 s, reconnect_delay 10 s, SCSI timeout 30 s). Each
// scenario has a VM of its own: the testbed saw a kernel BUG in ib_srp's
// reconnect after a path came back.

const (
	kernelLUSize = 64 << 20
	// failoverDepth and failoverWrites: the failover load, 4 KiB random
	// O_DIRECT I/O, 30 % writes with verification, 16 in flight.
	failoverDepth  = 16
	failoverWrites = 30
	// faultAfter is how long the load runs before the active path fails.
	faultAfter = 5 * time.Second
	// stuckAge: an I/O in flight longer than this is caught by the fault;
	// the stall is over when none is and I/O completes again.
	stuckAge = time.Second
	// flowSettle: how long I/O must flow without a stuck I/O for the stall
	// to count as over.
	flowSettle = 4 * time.Second
	// stallCap bounds the wait for the end of the stall. The testbed
	// measured up to 88 s for a blackhole on 6.12.
	stallCap = 120 * time.Second
	// reinstateCap bounds the wait for multipathd to use path 0 again
	// after it is restored (figure only; the testbed saw it not come back).
	reinstateCap = 30 * time.Second
	// stopCap bounds the wait for the load's last I/Os after the stall.
	stopCap = 30 * time.Second
	// iopsDepth and iopsRuntime: the throughput figure, fio 4 KiB random
	// reads at QD 32.
	iopsDepth   = 32
	iopsRuntime = 5 * time.Second
)

// failKind is how path 0 dies.
type failKind int

const (
	failLinkDown  failKind = iota // ip link set down: port error, QP flush
	failBlackhole                 // 100 % loss both ways: only timeouts tell
	failDREQ                      // the target ends path 0's session (DREQ)
	failRestart                   // the target restarts (module reload): every path
)

// restartDown is how long the target stays unloaded in failRestart.
const restartDown = 2 * time.Second

func (k failKind) String() string {
	switch k {
	case failLinkDown:
		return "linkdown"
	case failBlackhole:
		return "blackhole"
	case failDREQ:
		return "dreq"
	case failRestart:
		return "restart"
	}
	return fmt.Sprintf("failKind(%d)", int(k))
}

// victim names what the fault hits.
func (k failKind) victim() string {
	if k == failRestart {
		return "the target (both paths)"
	}
	return "path 0"
}

// kernelStack is the kernel initiator on both paths with multipathd on top.
type kernelStack struct {
	lab   *srplab.Lab
	lu    srplab.LU
	paths []*srplab.KernelPath
	dev   string // /dev/mapper/<wwid>
}

func setupKernelStack(t *testing.T, sc *labkit.Scenario) *kernelStack {
	t.Helper()
	start := time.Now()
	lab := srplab.Setup(t, srplab.Options{Paths: 2, LUs: 1, LUSize: kernelLUSize})
	k := &kernelStack{lab: lab, lu: lab.Targets[0].LUs[0]}
	t0 := time.Now()
	for i := range lab.Paths {
		kp, err := lab.KernelLogin(i, "")
		if err != nil {
			t.Fatal(err)
		}
		k.paths = append(k.paths, kp)
		p := &lab.Paths[i]
		sc.Notef("path %d: %s %v -> %s %v (tport %s), ACL %s, scsi host%d %s, rport %s: fast_io_fail_tmo=%s dev_loss_tmo=%s reconnect_delay=%s",
			i, p.IniDev, p.IniAddr, p.TgtDev, p.TgtAddr, p.TPort, p.InitiatorPortID(0), kp.Host, kp.Disk(k.lu),
			kp.RPort, kp.RPortAttr("fast_io_fail_tmo"), kp.RPortAttr("dev_loss_tmo"), kp.RPortAttr("reconnect_delay"))
	}
	t1 := time.Now()
	dev, err := lab.StartMultipath(k.lu, len(lab.Paths))
	if err != nil {
		t.Fatal(err)
	}
	k.dev = dev
	setup := time.Since(start)
	sc.Figure("setup_ms", float64(setup.Milliseconds()))
	sc.Notef("setup %v: fabric and target %v, ib_srp logins %v, multipathd %v", setup.Round(time.Millisecond),
		t0.Sub(start).Round(time.Millisecond), t1.Sub(t0).Round(time.Millisecond), time.Since(t1).Round(time.Millisecond))
	sc.Notef("LU serial %s, WWID %s; target port %s; multipath %s (%s)", k.lu.Serial, k.lu.WWID(), lab.TargetPortID(), dev, srplab.MultipathSettings)
	return k
}

func (k *kernelStack) fail(kind failKind) error    { return injectFault(k.lab, kind) }
func (k *kernelStack) restore(kind failKind) error { return undoFault(k.lab, kind) }

// injectFault makes path 0 (or, for failRestart, the target) fail the way
// kind says; both stacks' scenarios use it.
func injectFault(lab *srplab.Lab, kind failKind) error {
	switch kind {
	case failLinkDown:
		return lab.LinkDown(0)
	case failBlackhole:
		return lab.Blackhole(0, true)
	case failDREQ:
		return lab.KillSessions(0)
	case failRestart:
		return lab.RestartTarget(restartDown)
	}
	return fmt.Errorf("unknown failure %v", kind)
}

// undoFault undoes injectFault.
func undoFault(lab *srplab.Lab, kind failKind) error {
	switch kind {
	case failLinkDown:
		return lab.LinkUp(0)
	case failBlackhole:
		return lab.Blackhole(0, false)
	case failDREQ, failRestart:
		return nil // the target side heals itself
	}
	return fmt.Errorf("unknown failure %v", kind)
}

// TestKernelLinkDown: figures kernel_iops (fio randread QD 32 on the
// multipath device), then the failover figures with path 0's link down.
func TestKernelLinkDown(t *testing.T) {
	labkit.RequireVM(t)
	sc := labkit.Begin(t, "kernel-linkdown")
	k := setupKernelStack(t, sc)
	res, err := labkit.FioRandReadIOPS(context.Background(), k.dev, iopsDepth, iopsRuntime)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.ReadIOPS <= 0 {
		t.Errorf("fio randread QD %d on %s: %.0f IOPS, %d errors\n%s", iopsDepth, k.dev, res.ReadIOPS, res.Errors, res.Log)
	}
	sc.Figure("kernel_iops", res.ReadIOPS)
	kernelFailover(t, sc, k, failLinkDown, "")
}

// TestKernelBlackhole: the failover figures with path 0 silently dropping
// every packet.
func TestKernelBlackhole(t *testing.T) {
	labkit.RequireVM(t)
	sc := labkit.Begin(t, "kernel-blackhole")
	k := setupKernelStack(t, sc)
	kernelFailover(t, sc, k, failBlackhole, "")
}

// TestKernelDREQ: the target ends path 0's session (srplab KillSessions:
// a DREQ), then, once both paths are back, the target restarts (ib_srpt
// unloaded for restartDown and configured again). Figures as in
// kernelFailover, for the restart with the prefix "restart_".
func TestKernelDREQ(t *testing.T) {
	labkit.RequireVM(t)
	sc := labkit.Begin(t, "kernel-dreq")
	k := setupKernelStack(t, sc)
	kernelFailover(t, sc, k, failDREQ, "")
	if k.lab.MultipathActive(k.lu) != len(k.paths) {
		// The baseline's own limit (ib_srp did not log in again), recorded
		// rather than failed: restart_ figures are absent from results.json.
		sc.Figure("restart_measured", 0)
		sc.Notef("restart not measured: path 0 did not come back after the DREQ: %s", oneLine(k.lab.MultipathState(k.lu)))
		return
	}
	sc.Figure("restart_measured", 1)
	kernelFailover(t, sc, k, failRestart, "restart_")
}

// kernelFailover runs the failover load, fails path 0 faultAfter into it,
// waits (at most stallCap) until I/O flows again, restores path 0 and waits
// (at most reinstateCap) for multipathd to use it again.
//
// Figures: stall_ms (the longest time an application waited: labkit's
// IOStats.Stall, the longest of the longest gap between completions, the
// longest single I/O and the oldest I/O still in flight at the end — the
// same definition as srp-mpathd's e2e scenarios; with multibus the gap
// stays short while single I/Os hang on the failed path), max_gap_ms,
// max_io_ms, gap_start_ms and max_io_start_ms (when they began, relative to
// the fault), io_errors, verify_errors, load_iops, recovered (1: I/O flowed
// again within stallCap), resume_ms (from the fault until I/O flowed without
// a stuck I/O; -1: not within stallCap), reinstate_ms (from the restore until
// multipathd used path 0 again; -1: not within reinstateCap).
func kernelFailover(t *testing.T, sc *labkit.Scenario, k *kernelStack, kind failKind, prefix string) {
	t.Helper()
	load, err := labkit.StartIOLoad(labkit.IOLoad{Path: k.dev, Depth: failoverDepth, WritePercent: failoverWrites, Verify: true, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped { // a Fatal below: do not leave goroutines on the device
			ctx, cancel := context.WithTimeout(context.Background(), stopCap)
			defer cancel()
			_, _ = load.Stop(ctx)
		}
	}()
	select {
	case <-time.After(faultAfter):
	case <-t.Context().Done():
		t.Fatal(t.Context().Err())
	}
	if err := srplab.Mark(kind.String() + " inject"); err != nil {
		t.Fatal(err)
	}
	tFail := time.Now()
	if err := k.fail(kind); err != nil {
		t.Fatal(err)
	}
	resume, flowErr := waitResume(context.Background(), load, tFail, tFail.Add(flowSettle), stallCap, stuckAge, flowSettle)
	flowing := time.Since(tFail)
	during := fmt.Sprintf("rport of path 0: state=%s failed_reconnects=%s; %s",
		k.paths[0].RPortAttr("state"), k.paths[0].RPortAttr("failed_reconnects"), oneLine(k.lab.MultipathState(k.lu)))
	recovered := flowErr == nil
	if !recovered {
		sc.Notef("I/O did not flow again within %v of the fault: %v", stallCap, flowErr)
	}

	if err := srplab.Mark(kind.String() + " restore"); err != nil {
		t.Fatal(err)
	}
	tRestore := time.Now()
	if err := k.restore(kind); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), stopCap)
	st, stopErr := load.Stop(ctx)
	cancel()
	stopped = true
	if stopErr != nil {
		t.Error(stopErr)
	}
	labkit.SaveTimeline(sc, strings.TrimSuffix(prefix, "_"), st, labkit.Marker{Name: labkit.MarkFault, At: tFail}, labkit.Marker{Name: labkit.MarkRestore, At: tRestore})

	figs := map[string]float64{
		"stall_ms":            ms(st.Stall()),
		"max_gap_ms":          ms(st.MaxGap),
		"max_io_ms":           ms(st.MaxLatency),
		"oldest_in_flight_ms": ms(st.OldestInFlight),
		"gap_start_ms":        ms(st.GapFrom.Sub(tFail)),
		"max_io_start_ms":     ms(st.MaxLatencyFrom.Sub(tFail)),
		"io_errors":           float64(st.Errors),
		"verify_errors":       float64(st.VerifyErrors),
		"load_iops":           st.IOPS(),
		"recovered":           b2f(recovered),
		"resume_ms":           resume,
	}
	for name, v := range figs {
		sc.Figure(prefix+name, v)
	}
	sc.Notef("%s of %s at %s: %v", kind, kind.victim(), tFail.Format("15:04:05.000"), st)
	sc.Notef("I/O flowed again (no I/O older than %v for %v) %v after the fault: %s", stuckAge, flowSettle, flowing.Round(time.Millisecond), during)

	reinstate := -1.0
	err = waitUntil(reinstateCap, func() bool { return k.lab.MultipathActive(k.lu) == len(k.paths) })
	if err == nil {
		reinstate = ms(time.Since(tRestore))
	}
	sc.Figure(prefix+"reinstate_ms", reinstate)
	sc.Notef("after restore (reinstated: %v): rport of path 0 state=%s; %s", err == nil,
		k.paths[0].RPortAttr("state"), oneLine(k.lab.MultipathState(k.lu)))
	sc.Notef("kernel log since the fault:\n%s", srplab.KernelLog(kind.String()+" inject",
		"srp", "rxe", "multipath", "device-mapper", "sd ", "scsi", "BUG", "Oops", "WARNING"))

	// The kernel stack is the baseline we measure, not the code under test:
	// when it does not resume within stallCap (a slow TCG host stretches its
	// timers), recovered=0 and resume_ms=-1 say so in results.json and
	// stall_ms is a lower bound; the scenario still passes. Corrupted data
	// would mean a broken lab, so verify errors fail it.
	if st.VerifyErrors != 0 {
		t.Errorf("%d verify errors: %s", st.VerifyErrors, st.FirstError)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// waitResume waits at most limit for the load's I/O to flow again
// (labkit.IORun.WaitFlowing from notBefore, with stuck and settle) and
// returns the milliseconds from ref to the moment it flowed from, or -1 and
// the error when it did not.
func waitResume(ctx context.Context, load *labkit.IORun, ref, notBefore time.Time, limit, stuck, settle time.Duration) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	from, err := load.WaitFlowing(ctx, notBefore, stuck, settle)
	if err != nil {
		return -1, err
	}
	return ms(from.Sub(ref)), nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// waitUntil polls cond (kernel state with no event to wait on) for at most
// limit.
func waitUntil(limit time.Duration, cond func() bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return errors.New("timed out")
		case <-tick.C:
		}
	}
	return nil
}
