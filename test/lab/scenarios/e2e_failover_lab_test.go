//go:build lab

package scenarios

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/daemon"
	"github.com/srp-mpathd/srp-mpathd/internal/fsm"
	"github.com/srp-mpathd/srp-mpathd/internal/store"
	"github.com/srp-mpathd/srp-mpathd/test/lab/daemonlab"
	"github.com/srp-mpathd/srp-mpathd/test/lab/labkit"
	"github.com/srp-mpathd/srp-mpathd/test/lab/srplab"
)

// The e2e scenarios of issue 7 item 3 on srp-mpathd itself: `srp-mpathd
// daemon --fabric rdma` (daemonlab: the test binary re-executed as the
// daemon, one static target per srplab path, the lab's timers) serving
// LIO's LU as /dev/ublkb<id>. The test drives I/O on the block device and
// the faults on the fabric, and reads the daemon's view over its control
// socket.

const (
	// e2ePatternSize bytes at offset 0 are written through the first
	// daemon and read back through the restarted one.
	e2ePatternSize = 1 << 20
	// Failover load and timing: the kernel baseline's load
	// (kernel_lab_test.go). e2eFaultAfter is shorter than the kernel
	// baseline's 5 s: TCG hiccups of 0.5-0.9 s without any fault were
	// seen, and every one before the fault counts in the load's maxima.
	e2eFaultAfter   = 2 * time.Second
	e2eWarmUp       = 2 * time.Second
	e2eStuckAge     = time.Second
	e2eFlowSettle   = 4 * time.Second
	e2eStallCap     = 60 * time.Second
	e2eReinstateCap = 30 * time.Second
	e2eStopCap      = 30 * time.Second
	// Targets (issue 7) for stall_ms, the longest time an application
	// waited (labkit's IOStats.Stall). A DREQ is an explicit event like a
	// port error: it gets the link-down target.
	e2eLinkDownTarget  = 500 * time.Millisecond
	e2eBlackholeTarget = 1500 * time.Millisecond
	e2eDREQTarget      = 500 * time.Millisecond
	// e2eMinRatio: our stall must be at least this many times shorter
	// than the kernel stack's in the same run.
	e2eMinRatio = 10
	// e2eOtherWWID is an LU the identity scenario's store knows already.
	e2eOtherWWID = "36001405000000000000000000000dead"
	// e2eKernelIOPSScenario records kernel_iops (the kernel stack's
	// multipath device under the same fio job) in the same lab run.
	e2eKernelIOPSScenario = "kernel-linkdown"
)

// e2eLab is the srplab fabric for the daemon: two paths to one LU.
func e2eLab(t *testing.T) *srplab.Lab {
	t.Helper()
	return srplab.Setup(t, srplab.Options{Paths: 2, LUs: 1, LUSize: e2eLUSize, InitiatorExts: []uint64{daemonlab.InitiatorExt}})
}

// directIO writes (write) or reads n bytes at off of the block device
// through O_DIRECT with a page-aligned buffer.
func directIO(dev string, write bool, off int64, data []byte) error {
	flag := os.O_RDONLY
	if write {
		flag = os.O_WRONLY
	}
	f, err := os.OpenFile(dev, flag|syscall.O_DIRECT, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	buf, err := syscall.Mmap(-1, 0, len(data), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return err
	}
	defer syscall.Munmap(buf)
	if write {
		copy(buf, data)
		_, err = f.WriteAt(buf, off)
		return err
	}
	if _, err = f.ReadAt(buf, off); err != nil {
		return err
	}
	copy(data, buf)
	return nil
}

func deviceSize(dev string) (int64, error) {
	f, err := os.Open(dev)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return f.Seek(0, io.SeekEnd)
}

// blockRdev is the device number of a block device node (0 if absent).
func blockRdev(path string) uint64 {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0
	}
	return st.Rdev
}

// kernelFigures reads the kernel baseline's fragment of the same lab run.
// A fragment that is not final still counts: the kernel scenarios record a
// figure only once its measurement ended (stall_ms after the load stopped,
// kernel_iops after fio), and ib_srp's reconnect after a path returns has
// oopsed the guest afterwards (kernel BUG in srp_reconnect_work), which
// leaves the fragment unfinished. The caller notes why.
func kernelFigures(scenario string) (*labkit.Fragment, bool) {
	k, err := labkit.ReadFragment(filepath.Join(os.Getenv(labkit.EnvOut), labkit.FragmentDir, scenario+".json"))
	if err != nil {
		return nil, false
	}
	return k, true
}

// kernelNote says how far the kernel baseline's scenario got.
func kernelNote(k *labkit.Fragment) string {
	switch {
	case !k.Final:
		return fmt.Sprintf("the kernel baseline %s did not finish (its VM stopped after it recorded the figure)", k.Name)
	case !k.OK:
		return fmt.Sprintf("the kernel baseline %s failed after it recorded the figure", k.Name)
	}
	return ""
}

// TestE2ELoginIdentity (e2e-login-identity, and e2e-iops on the same
// daemon): the daemon logs in over both paths, checks the LU's identity on
// each (a path reporting another WWID or geometry is refused), binds the
// WWID to a ublk id in its store (another WWID holds id 0 already, so the
// id is not the first free one by accident) and serves /dev/ublkb<id>; a
// pattern is written through it; SIGTERM stops the daemon (the device
// stays, quiesced, for recovery); the store holds the id; a restarted
// daemon recovers the same id and block device and the pattern reads back.
// Then e2e-iops: fio 4 KiB randread QD 32 through the restarted daemon's
// device (here, because the device is served already: no extra lab setup).
//
// Figures (e2e-login-identity): dev_id, wwid_equal (1: the device's WWID
// is the LU's and both paths were admitted to it), paths, paths_usable,
// serve_ms and restart_ms (daemon start to the device served with every
// path usable), stop_ms, device_kept (1: the block device outlived the
// daemon), store_dev_id, same_id, same_block (same node, same device
// number), recovered (1: the restarted daemon recovered the kernel's
// device rather than adding one), data_kept.
// Figures (e2e-iops): iops, errors, kernel_iops and ratio (ours ÷ the
// kernel stack's) when kernel-linkdown ran in the same lab run.
func TestE2ELoginIdentity(t *testing.T) {
	labkit.RequireVM(t)
	labkit.RequireModule(t, "ublk_drv")
	sc := labkit.Begin(t, "e2e-login-identity")
	lab := e2eLab(t)
	lu := lab.Targets[0].LUs[0]
	dir := t.TempDir()
	storePath := filepath.Join(dir, "store.db")
	{
		s, err := store.Open(storePath, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		other, _, err := s.Bind(e2eOtherWWID, store.Identity{Capacity: 1 << 20, LogicalBlockSize: 512, PhysicalBlockSize: 512})
		if cerr := s.Close(); err == nil {
			err = cerr
		}
		if err != nil || other != 0 {
			t.Fatalf("pre-bind %s: id %d, %v", e2eOtherWWID, other, err)
		}
	}

	d := daemonlab.Start(t, lab, daemonlab.Options{Dir: dir})
	if d.Store != storePath {
		t.Fatalf("daemonlab store %s, pre-bound %s", d.Store, storePath)
	}
	devs, err := d.WaitDevices(1, len(lab.Paths))
	if err != nil {
		t.Fatal(err)
	}
	serve := time.Since(d.Started)
	dev := devs[0]
	ps, err := d.Paths()
	if err != nil {
		t.Fatal(err)
	}
	admitted := 0
	for i := range lab.Paths {
		if _, ok := daemonlab.PathOf(ps, i); ok {
			admitted++
		}
	}
	wwidEqual := dev.WWID == lu.MultipathWWID() && admitted == len(lab.Paths)
	sc.Notef("first daemon: %s (dev %d) WWID %s, %d bytes in %d-byte blocks, %s %s, policy %s; %d paths (%d usable), served %v after start",
		dev.Block, dev.DevID, dev.WWID, dev.SizeBytes, dev.BlockSize, dev.Vendor, dev.Product, dev.Policy, dev.Paths, dev.PathsUsable, serve.Round(time.Millisecond))
	sc.Notef("paths: %s", daemonlab.PathsString(ps))
	if et, err := daemonlab.ExecTime(); err == nil {
		sc.Notef("starting the daemon's process and CLI alone (srp-mpathd version) takes %v", et.Round(time.Millisecond))
	}
	sc.Figures(map[string]float64{
		"dev_id": float64(dev.DevID), "serve_ms": ms(serve), "paths": float64(dev.Paths),
		"paths_usable": float64(dev.PathsUsable), "wwid_equal": b2f(wwidEqual),
	})
	if !wwidEqual {
		t.Errorf("device WWID %s with %d of %d paths admitted; want the LU's %s on every path", dev.WWID, admitted, len(lab.Paths), lu.MultipathWWID())
	}
	if dev.DevID != 1 || dev.Block != fmt.Sprintf("/dev/ublkb%d", dev.DevID) || dev.SizeBytes != uint64(lu.Size) {
		t.Errorf("device %s dev id %d, %d bytes; want /dev/ublkb1 (id 0 is taken), %d bytes", dev.Block, dev.DevID, dev.SizeBytes, lu.Size)
	}
	if dev.PathsUsable != len(lab.Paths) {
		t.Errorf("%d of %d paths usable", dev.PathsUsable, len(lab.Paths))
	}
	if sz, err := deviceSize(dev.Block); err != nil || sz != lu.Size {
		t.Errorf("%s: size %d (%v), want %d", dev.Block, sz, err, lu.Size)
	}
	want := make([]byte, e2ePatternSize)
	pattern(want, 0, 7)
	if err := directIO(dev.Block, true, 0, want); err != nil {
		t.Fatalf("write %s: %v", dev.Block, err)
	}
	rdev := blockRdev(dev.Block)

	t0 := time.Now()
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	stop := time.Since(t0)
	_, statErr := os.Stat(dev.Block)
	kept := statErr == nil
	sc.Figures(map[string]float64{"stop_ms": ms(stop), "device_kept": b2f(kept)})
	if !kept {
		t.Errorf("%s after SIGTERM: %v; want it kept for recovery", dev.Block, statErr)
	}

	s, err := store.Open(storePath, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	ident, lerr := s.Lookup(lu.MultipathWWID())
	if err := s.Close(); err != nil {
		t.Error(err)
	}
	if lerr != nil {
		t.Fatal(lerr)
	}
	sc.Figure("store_dev_id", float64(ident.DevID))
	if ident.DevID != dev.DevID || ident.Capacity != uint64(lu.Size) {
		t.Errorf("store: %+v, want dev id %d, capacity %d", ident, dev.DevID, lu.Size)
	}

	// The last stop of the test removes the device.
	d2 := d.Restart(func(o *daemonlab.Options) { o.RemoveDevices = true })
	devs2, err := d2.WaitDevices(1, len(lab.Paths))
	if err != nil {
		t.Fatal(err)
	}
	restart := time.Since(d2.Started)
	dev2 := devs2[0]
	recovered := strings.Contains(d2.Log(), "block device recovered")
	sameBlock := dev2.Block == dev.Block && rdev != 0 && blockRdev(dev2.Block) == rdev
	sc.Notef("restarted daemon: %s (dev %d), recovered %v, served %v after start", dev2.Block, dev2.DevID, recovered, restart.Round(time.Millisecond))
	got := make([]byte, e2ePatternSize)
	if err := directIO(dev2.Block, false, 0, got); err != nil {
		t.Fatalf("read %s: %v", dev2.Block, err)
	}
	dataKept := bytes.Equal(got, want)
	sc.Figures(map[string]float64{
		"same_id": b2f(dev2.DevID == dev.DevID), "same_block": b2f(sameBlock), "recovered": b2f(recovered),
		"data_kept": b2f(dataKept), "restart_ms": ms(restart),
	})
	if dev2.DevID != dev.DevID || !sameBlock {
		t.Errorf("restarted daemon: %s dev %d; want %s dev %d, the same device number", dev2.Block, dev2.DevID, dev.Block, dev.DevID)
	}
	if !recovered {
		t.Errorf("restarted daemon did not log a recovered block device")
	}
	if !dataKept {
		t.Errorf("the %d bytes written through the first daemon do not read back through the second", e2ePatternSize)
	}

	e2eIOPS(t, d2, dev2.Block)

	if err := d2.Stop(); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(dev2.Block); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s after a stop with --remove-devices: %v, want it deleted", dev2.Block, err)
	}
}

// e2eIOPS records e2e-iops: the kernel stack's throughput figure (fio 4 KiB
// randread QD 32, kernel_lab_test.go) on the daemon's device.
func e2eIOPS(t *testing.T, d *daemonlab.Daemon, block string) {
	t.Helper()
	sc := labkit.Begin(t, "e2e-iops")
	cpu0, cpuErr := d.CPUTime()
	t0 := time.Now()
	res, err := labkit.FioRandReadIOPS(context.Background(), block, iopsDepth, iopsRuntime)
	if err != nil {
		t.Errorf("fio randread QD %d on %s: %v", iopsDepth, block, err)
		return
	}
	figs := map[string]float64{"iops": res.ReadIOPS, "errors": float64(res.Errors)}
	if cpu1, err := d.CPUTime(); err == nil && cpuErr == nil {
		figs["daemon_cpu_pct"] = 100 * float64(cpu1-cpu0) / float64(time.Since(t0))
	}
	if k, ok := kernelFigures(e2eKernelIOPSScenario); ok && k.Figures["kernel_iops"] > 0 {
		figs["kernel_iops"] = k.Figures["kernel_iops"]
		figs["ratio"] = res.ReadIOPS / k.Figures["kernel_iops"]
		if n := kernelNote(k); n != "" {
			sc.Notef("%s", n)
		}
	} else {
		sc.Notef("no kernel_iops: %s recorded none in this lab run", e2eKernelIOPSScenario)
	}
	sc.Figures(figs)
	if res.Errors != 0 || res.ReadIOPS <= 0 {
		t.Errorf("fio randread QD %d on %s: %.0f IOPS, %d errors\n%s", iopsDepth, block, res.ReadIOPS, res.Errors, res.Log)
	}
}

// TestE2ELinkDown (e2e-linkdown): the failover load on /dev/ublkb<id>
// while path 0's link goes down, then up.
func TestE2ELinkDown(t *testing.T) {
	e2eFailover(t, "e2e-linkdown", failLinkDown, e2eLinkDownTarget, "kernel-linkdown")
}

// TestE2EBlackhole (e2e-blackhole): the failover load while path 0 drops
// every packet both ways, then passes them again.
func TestE2EBlackhole(t *testing.T) {
	e2eFailover(t, "e2e-blackhole", failBlackhole, e2eBlackholeTarget, "kernel-blackhole")
}

// TestE2EDREQ (e2e-dreq): the failover load while the target ends path 0's
// session (a DREQ); the target takes logins again at once.
func TestE2EDREQ(t *testing.T) {
	e2eFailover(t, "e2e-dreq", failDREQ, e2eDREQTarget, "kernel-dreq")
}

// leftService is when path id first left the running state at or after
// from, or the zero time.
func leftService(trs []daemon.TransitionView, id string, from time.Time) time.Time {
	for _, tr := range trs {
		if tr.Path == id && tr.From == fsm.Running.String() && !tr.At.Before(from) {
			return tr.At
		}
	}
	return time.Time{}
}

func transitionsString(trs []daemon.TransitionView, from time.Time) string {
	var b strings.Builder
	for _, tr := range trs {
		if tr.At.Before(from) {
			continue
		}
		fmt.Fprintf(&b, "[%s %s %s->%s %s] ", tr.At.Format("15:04:05.000"), tr.Path, tr.From, tr.To, tr.Reason)
	}
	return b.String()
}

// e2eFailover runs the kernel baseline's failover load (verified 4 KiB
// random I/O, 30 % writes, QD 16) on the daemon's device, fails path 0
// e2eFaultAfter into it, waits until I/O flows again, undoes the fault
// and waits for path 0 to be usable again.
//
// Figures: stall_ms (the longest time an application waited, labkit's
// IOStats.Stall: the longest of max_gap_ms, max_io_ms and
// oldest_in_flight_ms, the kernel baseline's definition), max_gap_ms,
// max_io_ms, oldest_in_flight_ms, gap_start_ms and max_io_start_ms (when
// they began, relative to the fault; negative: a hiccup before the fault),
// errors, verify_errors, load_iops, recovered, resume_ms, p0_out_ms (fault
// to path 0 leaving the running state, whatever told the daemon: port
// event, QP error, DREQ or a missed heartbeat), daemon_cpu_pct (during the load),
// reinstate_ms (undo to path 0 usable again; -1: not within
// e2eReinstateCap), target_ms, target_met; kernel_stall_ms and ratio
// (kernel_stall_ms ÷ stall_ms), kernel_max_io_ms and kernel_max_gap_ms when
// the kernel baseline recorded its stall in the same lab run.
//
// Acceptance: I/O resumed, errors = 0, verify_errors = 0, stall_ms within
// target, ratio ≥ e2eMinRatio when the kernel figure exists. reinstate_ms
// is a figure only.
func e2eFailover(t *testing.T, name string, kind failKind, target time.Duration, kernelScenario string) {
	t.Helper()
	labkit.RequireVM(t)
	labkit.RequireModule(t, "ublk_drv")
	sc := labkit.Begin(t, name)
	lab := e2eLab(t)
	d := daemonlab.Start(t, lab, daemonlab.Options{RemoveDevices: true})
	devs, err := d.WaitDevices(1, len(lab.Paths))
	if err != nil {
		t.Fatal(err)
	}
	dev := devs[0]
	sc.Notef("daemon serves %s (dev %d) WWID %s over %d paths, policy %s; reconnect_delay %v, heartbeat_timeout %v, hold_down %v, login timeout %v; served %v after start",
		dev.Block, dev.DevID, dev.WWID, dev.Paths, dev.Policy, daemonlab.ReconnectDelay, daemonlab.HeartbeatTimeout,
		daemonlab.HoldDown, daemonlab.LoginTimeout, time.Since(d.Started).Round(time.Millisecond))

	// Warm-up: the first I/Os on a fresh device are slow under TCG (a
	// 0.9 s I/O at load start was seen), which is not what the fault costs.
	warm, err := labkit.StartIOLoad(labkit.IOLoad{Path: dev.Block, Depth: failoverDepth, WritePercent: failoverWrites, Verify: true, Seed: 6, TimelineCap: -1})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(e2eWarmUp)
	ctx, cancel := context.WithTimeout(context.Background(), e2eStopCap)
	ws, err := warm.Stop(ctx)
	cancel()
	if err != nil || ws.Errors != 0 || ws.VerifyErrors != 0 {
		t.Fatalf("warm-up load: %v; %v", err, ws)
	}
	sc.Notef("warm-up: %v", ws)

	cpu0, cpuErr := d.CPUTime()
	load, err := labkit.StartIOLoad(labkit.IOLoad{Path: dev.Block, Depth: failoverDepth, WritePercent: failoverWrites, Verify: true, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			ctx, cancel := context.WithTimeout(context.Background(), e2eStopCap)
			defer cancel()
			_, _ = load.Stop(ctx)
		}
	}()
	select {
	case <-time.After(e2eFaultAfter):
	case <-t.Context().Done():
		t.Fatal(t.Context().Err())
	}
	if err := srplab.Mark(name + " inject"); err != nil {
		t.Fatal(err)
	}
	load.Mark(labkit.MarkFault)
	tFail := time.Now()
	if err := injectFault(lab, kind); err != nil {
		t.Fatal(err)
	}
	resume, flowErr := waitResume(context.Background(), load, tFail, tFail.Add(e2eFlowSettle), e2eStallCap, e2eStuckAge, e2eFlowSettle)
	recovered := flowErr == nil
	if !recovered {
		sc.Notef("I/O did not flow again within %v of the fault: %v", e2eStallCap, flowErr)
	}
	during, err := d.Paths()
	if err != nil {
		t.Error(err)
	}

	if err := srplab.Mark(name + " restore"); err != nil {
		t.Fatal(err)
	}
	load.Mark(labkit.MarkRestore)
	tRestore := time.Now()
	if err := undoFault(lab, kind); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), e2eStopCap)
	stats, stopErr := load.Stop(ctx)
	cancel()
	stopped = true
	if stopErr != nil {
		t.Error(stopErr)
	}
	labkit.SaveTimeline(sc, "", stats)
	stall := stats.Stall()
	if cpu1, err := d.CPUTime(); err == nil && cpuErr == nil {
		sc.Figure("daemon_cpu_pct", 100*float64(cpu1-cpu0)/float64(stats.End.Sub(stats.Start)))
	}
	trs, err := d.Transitions(0)
	if err != nil {
		t.Error(err)
	}
	if p0, ok := daemonlab.PathOf(during, 0); ok {
		if at := leftService(trs, p0.ID, tFail); !at.IsZero() {
			sc.Figure("p0_out_ms", ms(at.Sub(tFail)))
		}
	}
	figs := map[string]float64{
		"stall_ms": ms(stall), "max_gap_ms": ms(stats.MaxGap), "max_io_ms": ms(stats.MaxLatency),
		"oldest_in_flight_ms": ms(stats.OldestInFlight),
		"gap_start_ms":        ms(stats.GapFrom.Sub(tFail)), "max_io_start_ms": ms(stats.MaxLatencyFrom.Sub(tFail)),
		"errors": float64(stats.Errors), "verify_errors": float64(stats.VerifyErrors), "load_iops": stats.IOPS(),
		"recovered": b2f(recovered), "resume_ms": resume,
		"target_ms": ms(target), "target_met": b2f(stall <= target),
	}
	var ratio float64
	k, haveKernel := kernelFigures(kernelScenario)
	if haveKernel && k.Figures["stall_ms"] > 0 && stall > 0 {
		ratio = k.Figures["stall_ms"] / ms(stall)
		figs["kernel_stall_ms"] = k.Figures["stall_ms"]
		figs["ratio"] = ratio
		figs["kernel_max_io_ms"] = k.Figures["max_io_ms"]
		figs["kernel_max_gap_ms"] = k.Figures["max_gap_ms"]
		if n := kernelNote(k); n != "" {
			sc.Notef("%s; its stall_ms is what its load saw", n)
		}
	} else {
		haveKernel = false
		sc.Notef("no kernel_stall_ms: %s recorded no stall in this lab run", kernelScenario)
	}
	sc.Figures(figs)
	sc.Notef("%s of path 0 at %s: %v", kind, tFail.Format("15:04:05.000"), stats)
	sc.Notef("paths while I/O flowed again: %s", daemonlab.PathsString(during))

	after, reinstate, err := waitAllUsable(d, len(lab.Paths), e2eReinstateCap, tRestore)
	if err != nil {
		// The RDMA resources tell whether the CM can still send on the
		// path's device (rxe's GSI QP, QP 1, in state ERR: no login can
		// succeed on that device any more).
		sc.Notef("path 0 not usable again within %v of the restore: %v; rdma res show qp:\n%s", e2eReinstateCap, err, rdmaQPs())
	}
	sc.Figure("reinstate_ms", reinstate)
	sc.Notef("after restore: %s", daemonlab.PathsString(after))
	if trs, err := d.Transitions(0); err == nil {
		sc.Notef("path transitions since the fault: %s", transitionsString(trs, tFail))
	}
	sc.Notef("kernel log since the fault:\n%s", srplab.KernelLog(name+" inject", "srpt", "rxe", "ublk", "BUG", "Oops", "WARNING"))

	if !recovered {
		t.Errorf("I/O did not resume within %v of the %s", e2eStallCap, kind)
	}
	if stats.Errors != 0 || stats.VerifyErrors != 0 {
		t.Errorf("%d I/O errors, %d verify errors (a second path was usable throughout): %s", stats.Errors, stats.VerifyErrors, stats.FirstError)
	}
	if stall > target {
		t.Errorf("stall %v (longest gap %v, longest I/O %v, oldest in flight %v) is above the target %v",
			stall.Round(time.Millisecond), stats.MaxGap.Round(time.Millisecond), stats.MaxLatency.Round(time.Millisecond),
			stats.OldestInFlight.Round(time.Millisecond), target)
	}
	if haveKernel && ratio < e2eMinRatio {
		t.Errorf("ratio %.1f (kernel %.0f ms ÷ ours %.0f ms) is below %d", ratio, k.Figures["stall_ms"], ms(stall), e2eMinRatio)
	}
	if err := d.Stop(); err != nil {
		t.Error(err)
	}
}
