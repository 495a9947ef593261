//go:build lab

package scenarios

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/daemon"
	"github.com/srp-mpathd/srp-mpathd/internal/fsm"
	"github.com/srp-mpathd/srp-mpathd/test/lab/daemonlab"
	"github.com/srp-mpathd/srp-mpathd/test/lab/labkit"
	"github.com/srp-mpathd/srp-mpathd/test/lab/srplab"
)

// The path-loss scenarios of issue 7 on the daemon: every path down for a
// while (I/O waits), every path down past dev_loss_tmo (I/O fails, the
// device stays, I/O resumes when the daemon logs in again), and 20 flaps of
// the active path under a verified load.

const (
	// allPathsShortOutage: both links down this long with the default
	// fast_io_fail_tmo (15 s) and dev_loss_tmo (600 s): I/O waits.
	allPathsShortOutage = 30 * time.Second
	// allPathsLong*: short path timers, and an outage well past them.
	allPathsLongFastIOFail = 4 * time.Second
	allPathsLongDevLoss    = 8 * time.Second
	allPathsLongOutage     = 16 * time.Second
	// allPathsAfterLoad: the verified load after the paths returned.
	allPathsAfterLoad = 8 * time.Second
	// allPathsReturnCap bounds the wait for the paths after the links
	// return (a lost path is a new login: probe, identity, admission).
	allPathsReturnCap = 60 * time.Second

	// Flaps: flapCount link down/up cycles of the active path; each waits
	// until the daemon took the path out of service, keeps the link down
	// flapDownFor more, and waits (at most flapReturnCap) until the path
	// is logged in again before the next flap. flapHoldDown replaces the
	// default 60 s flap damping so a damped path returns within the run.
	flapCount     = 20
	flapDownFor   = 500 * time.Millisecond
	flapNoticeCap = 10 * time.Second
	flapReturnCap = 30 * time.Second
	flapSettle    = time.Second
	flapHoldDown  = 3 * time.Second
)

// allLinks runs f on every lab path.
func allLinks(lab *srplab.Lab, f func(int) error) error {
	for i := range lab.Paths {
		if err := f(i); err != nil {
			return err
		}
	}
	return nil
}

// startVerifiedLoad starts the failover load (kernel_lab_test.go's) on
// block; the test stops it at its end if the caller did not.
func startVerifiedLoad(t *testing.T, block string, seed uint64) *labkit.IORun {
	t.Helper()
	load, err := labkit.StartIOLoad(labkit.IOLoad{Path: block, Depth: failoverDepth, WritePercent: failoverWrites, Verify: true, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), e2eStopCap)
		defer cancel()
		_, _ = load.Stop(ctx)
	})
	return load
}

func stopLoad(t *testing.T, load *labkit.IORun) labkit.IOStats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eStopCap)
	defer cancel()
	st, err := load.Stop(ctx)
	if err != nil {
		t.Error(err)
	}
	return st
}

// rdmaQPs lists the RDMA QPs with their states: a GSI QP (QP 1) in ERR
// means no CM message leaves that device any more (srplab.LinkDown).
func rdmaQPs() string {
	out, err := exec.Command("rdma", "res", "show", "qp").CombinedOutput()
	if err != nil {
		return fmt.Sprintf("rdma res show qp: %v\n%s", err, out)
	}
	return string(out)
}

// pathsRun starts a scenario of this file: the daemon (o) on the e2e lab,
// its one device served over every path, and the verified load (seed)
// running on it for e2eFaultAfter, so the fault comes next.
func pathsRun(t *testing.T, name string, o daemonlab.Options, seed uint64) (*labkit.Scenario, *srplab.Lab, *daemonlab.Daemon, daemon.DeviceView, *labkit.IORun) {
	t.Helper()
	labkit.RequireVM(t)
	labkit.RequireModule(t, "ublk_drv")
	sc := labkit.Begin(t, name)
	lab := e2eLab(t)
	d := daemonlab.Start(t, lab, o)
	devs, err := d.WaitDevices(1, len(lab.Paths))
	if err != nil {
		t.Fatal(err)
	}
	load := startVerifiedLoad(t, devs[0].Block, seed)
	time.Sleep(e2eFaultAfter)
	return sc, lab, d, devs[0], load
}

// markAt writes mark ("<what> inject" or "<what> restore") to the kernel
// log and as the load's marker kind, and returns the time.
func markAt(t *testing.T, load *labkit.IORun, what, kind string) time.Time {
	t.Helper()
	msg := what + " inject"
	if kind == labkit.MarkRestore {
		msg = what + " restore"
	}
	if err := srplab.Mark(msg); err != nil {
		t.Fatal(err)
	}
	load.Mark(kind)
	return time.Now()
}

// waitAllUsable waits up to limit for all n paths of the daemon to be
// usable and returns the path list last read and the milliseconds since
// since when they were (-1 when they were not).
func waitAllUsable(d *daemonlab.Daemon, n int, limit time.Duration, since time.Time) ([]daemon.PathView, float64, error) {
	after, err := d.WaitPaths(limit, func(ps []daemon.PathView) bool { return daemonlab.Usable(ps) == n })
	if err != nil {
		return after, -1, err
	}
	return after, ms(time.Since(since)), nil
}

// connected: the path is logged in (carrying I/O, or held down before it
// does).
func connected(p daemon.PathView) bool {
	return p.State == fsm.Running.String() || p.State == fsm.HeldDown.String()
}

// TestE2EAllPathsShort (e2e-allpaths-short): both links down for 30 s
// under the verified load, then up. With the default timers no path is
// lost, no_path_retry is queue: the I/O waits and completes.
//
// Figures: outage_ms, errors and verify_errors (whole run), stall_ms
// (the longest time an application waited; about the outage), resume_ms
// (links up to I/O flowing again; -1: not within e2eStallCap),
// paths_back_ms (links up to both paths usable; -1: not within
// allPathsReturnCap), queued_max (the daemon's largest queued count seen
// during the outage).
func TestE2EAllPathsShort(t *testing.T) {
	sc, lab, d, _, load := pathsRun(t, "e2e-allpaths-short", daemonlab.Options{RemoveDevices: true}, 11)
	tDown := markAt(t, load, "allpaths-short", labkit.MarkFault)
	if err := allLinks(lab, lab.LinkDown); err != nil {
		t.Fatal(err)
	}
	var queuedMax int64
	for time.Since(tDown) < allPathsShortOutage {
		if vs, err := d.Devices(); err == nil && len(vs) > 0 {
			queuedMax = max(queuedMax, vs[0].Queued)
		}
		if st := load.Stats(); st.Errors != 0 {
			t.Errorf("I/O failed during a %v outage with no_path_retry queue: %s", allPathsShortOutage, st.FirstError)
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	during, _ := d.Paths()
	tUp := markAt(t, load, "allpaths-short", labkit.MarkRestore)
	outage := tUp.Sub(tDown)
	if err := allLinks(lab, lab.LinkUp); err != nil {
		t.Fatal(err)
	}
	resume, flowErr := waitResume(context.Background(), load, tUp, tUp, e2eStallCap, e2eStuckAge, e2eFlowSettle)
	after, back, backErr := waitAllUsable(d, len(lab.Paths), allPathsReturnCap, tUp)
	st := stopLoad(t, load)
	labkit.SaveTimeline(sc, "", st)
	sc.Figures(map[string]float64{
		"outage_ms": ms(outage), "errors": float64(st.Errors), "verify_errors": float64(st.VerifyErrors),
		"stall_ms": ms(st.Stall()), "resume_ms": resume, "paths_back_ms": back, "queued_max": float64(queuedMax),
		"load_iops": st.IOPS(),
	})
	sc.Notef("outage of both paths: %v; load %v", outage.Round(time.Millisecond), st)
	sc.Notef("paths during the outage: %s; after: %s", daemonlab.PathsString(during), daemonlab.PathsString(after))
	if trs, err := d.Transitions(0); err == nil {
		sc.Notef("path transitions since the fault: %s", transitionsString(trs, tDown))
	}
	if flowErr != nil {
		t.Errorf("I/O did not flow again within %v of the links' return: %v", e2eStallCap, flowErr)
	}
	if backErr != nil {
		sc.Notef("rdma res show qp:\n%s\nkernel log:\n%s", rdmaQPs(), srplab.KernelLog("allpaths-short inject", "rxe", "srpt", "BUG", "WARNING"))
		t.Errorf("both paths not usable within %v of the links' return: %v: %s", allPathsReturnCap, backErr, daemonlab.PathsString(after))
	}
	if st.Errors != 0 || st.VerifyErrors != 0 {
		t.Errorf("%d I/O errors, %d verify errors: %s", st.Errors, st.VerifyErrors, st.FirstError)
	}
	if err := d.Stop(); err != nil {
		t.Error(err)
	}
}

// TestE2EAllPathsLong (e2e-allpaths-long): fast_io_fail_tmo 4 s and
// dev_loss_tmo 8 s; both links down for 16 s under the verified load. At
// dev_loss_tmo both paths are lost, the device is lost and its I/O gets
// EIO; the block device stays (same device number). When the links return
// the daemon logs in again (a new login, identity checked) and a fresh
// verified load runs without an error.
//
// Figures: errors_during (I/O errors while the paths were lost; must be
// > 0), eio_ms (links down to the first I/O error; about dev_loss_tmo),
// lost_seen (1: the daemon's device view said lost), device_kept (1: the
// block device kept its node and number through the outage),
// readmit_ms (links up to both paths usable; -1: not within
// allPathsReturnCap), errors_after_return and verify_errors_after_return
// (the fresh load's), load_iops_after_return.
func TestE2EAllPathsLong(t *testing.T) {
	sc, lab, d, dev, load := pathsRun(t, "e2e-allpaths-long", daemonlab.Options{RemoveDevices: true, Defaults: map[string]string{
		"fast_io_fail_tmo": allPathsLongFastIOFail.String(),
		"dev_loss_tmo":     allPathsLongDevLoss.String(),
	}}, 12)
	rdev := blockRdev(dev.Block)
	tDown := markAt(t, load, "allpaths-long", labkit.MarkFault)
	if err := allLinks(lab, lab.LinkDown); err != nil {
		t.Fatal(err)
	}
	eio := -1.0
	lostSeen, kept := false, true
	for time.Since(tDown) < allPathsLongOutage {
		if eio < 0 && load.Stats().Errors > 0 {
			eio = ms(time.Since(tDown))
		}
		if vs, err := d.Devices(); err == nil && len(vs) > 0 && vs[0].Lost {
			lostSeen = true
		}
		if blockRdev(dev.Block) != rdev {
			kept = false
		}
		time.Sleep(200 * time.Millisecond)
	}
	during, _ := d.Paths()
	tUp := markAt(t, load, "allpaths-long", labkit.MarkRestore)
	if err := allLinks(lab, lab.LinkUp); err != nil {
		t.Fatal(err)
	}
	after, readmit, readmitErr := waitAllUsable(d, len(lab.Paths), allPathsReturnCap, tUp)
	st := stopLoad(t, load)
	labkit.SaveTimeline(sc, "", st)
	if blockRdev(dev.Block) != rdev {
		kept = false
	}
	// The fresh load: the blocks the first one failed to write hold
	// unknown data, a new seed and generation table start from scratch.
	st2 := labkit.IOStats{}
	if readmitErr == nil {
		load2 := startVerifiedLoad(t, dev.Block, 13)
		time.Sleep(allPathsAfterLoad)
		st2 = stopLoad(t, load2)
	}
	sc.Figures(map[string]float64{
		"errors_during": float64(st.Errors), "eio_ms": eio, "lost_seen": b2f(lostSeen), "device_kept": b2f(kept),
		"readmit_ms": readmit, "errors_after_return": float64(st2.Errors), "verify_errors_after_return": float64(st2.VerifyErrors),
		"verify_errors": float64(st.VerifyErrors), "load_iops_after_return": st2.IOPS(),
	})
	sc.Notef("outage %v (fast_io_fail_tmo %v, dev_loss_tmo %v): %v", allPathsLongOutage, allPathsLongFastIOFail, allPathsLongDevLoss, st)
	sc.Notef("after the return: %v", st2)
	sc.Notef("paths during the outage: %s; after: %s", daemonlab.PathsString(during), daemonlab.PathsString(after))
	if trs, err := d.Transitions(0); err == nil {
		sc.Notef("path transitions since the fault: %s", transitionsString(trs, tDown))
	}
	switch {
	case st.Errors == 0:
		t.Errorf("no I/O error with every path lost past dev_loss_tmo %v", allPathsLongDevLoss)
	case eio < ms(allPathsLongDevLoss)-500:
		t.Errorf("first I/O error %.0f ms after the links went down, before dev_loss_tmo %v", eio, allPathsLongDevLoss)
	}
	if !lostSeen {
		t.Error("the daemon's device view never said lost")
	}
	if !kept {
		t.Errorf("%s changed or vanished during the outage", dev.Block)
	}
	if readmitErr != nil {
		sc.Notef("rdma res show qp:\n%s\nkernel log:\n%s", rdmaQPs(), srplab.KernelLog("allpaths-long inject", "rxe", "srpt", "BUG", "WARNING"))
		t.Fatalf("both paths not usable within %v of the links' return: %v: %s", allPathsReturnCap, readmitErr, daemonlab.PathsString(after))
	}
	if st2.Errors != 0 || st2.VerifyErrors != 0 || st2.IOs() == 0 {
		t.Errorf("after the paths returned: %v", st2)
	}
	if st.VerifyErrors != 0 {
		t.Errorf("%d verify errors (a failed write leaves its block unverified): %s", st.VerifyErrors, st.FirstError)
	}
	if err := d.Stop(); err != nil {
		t.Error(err)
	}
}

// activeLabPath is the lab index of the path that carries I/O.
func activeLabPath(lab *srplab.Lab, ps []daemon.PathView) (int, bool) {
	for i := range lab.Paths {
		if p, ok := daemonlab.PathOf(ps, i); ok && p.Active && p.Usable {
			return i, true
		}
	}
	return 0, false
}

// TestE2EFlaps (e2e-flaps): 20 consecutive flaps of the active path (its
// link down, then up) under the verified load: no I/O error, no verify
// error. Flap damping is on (3 failures in 60 s) with a 3 s hold-down, so
// the later flaps hit a path that comes back damped.
//
// Figures: flaps, errors, verify_errors, stall_ms (the whole run's longest
// wait), notice_ms_max (link down to the daemon taking the path out of
// service), relogin_ms_max and relogin_ms_mean (link up to the path logged
// in again), relogin_timeouts (flaps whose path did not return within
// flapReturnCap), held_down (flaps after which the path came back held
// down), load_iops.
func TestE2EFlaps(t *testing.T) {
	sc, lab, d, _, load := pathsRun(t, "e2e-flaps", daemonlab.Options{RemoveDevices: true, Defaults: map[string]string{
		"flap_hold_down": flapHoldDown.String(),
	}}, 14)
	tStart := time.Now()
	var relogins []float64
	var noticeMax float64
	timeouts, held := 0, 0
	var log strings.Builder
	for n := range flapCount {
		ps, err := d.WaitPaths(flapReturnCap, func(ps []daemon.PathView) bool { _, ok := activeLabPath(lab, ps); return ok })
		if err != nil {
			t.Fatalf("flap %d: no active path: %v", n+1, err)
		}
		victim, _ := activeLabPath(lab, ps)
		p, _ := daemonlab.PathOf(ps, victim)
		if err := srplab.Mark(fmt.Sprintf("flap %d path %d inject", n+1, victim)); err != nil {
			t.Fatal(err)
		}
		tDown := time.Now()
		if err := lab.LinkDown(victim); err != nil {
			t.Fatal(err)
		}
		if _, err := d.WaitPaths(flapNoticeCap, func(ps []daemon.PathView) bool {
			q, ok := daemonlab.PathOf(ps, victim)
			return ok && !connected(q)
		}); err != nil {
			t.Errorf("flap %d: path %s still in service %v after its link went down", n+1, p.ID, flapNoticeCap)
		}
		noticeMax = max(noticeMax, ms(time.Since(tDown)))
		time.Sleep(flapDownFor)
		tUp := time.Now()
		if err := lab.LinkUp(victim); err != nil {
			t.Fatal(err)
		}
		back, err := d.WaitPaths(flapReturnCap, func(ps []daemon.PathView) bool {
			q, ok := daemonlab.PathOf(ps, victim)
			return ok && connected(q)
		})
		if err != nil {
			timeouts++
			fmt.Fprintf(&log, "flap %d: path %d not back within %v: %s\nrdma res show qp:\n%s\n", n+1, victim, flapReturnCap, daemonlab.PathsString(back), rdmaQPs())
			continue
		}
		r := ms(time.Since(tUp))
		relogins = append(relogins, r)
		if q, _ := daemonlab.PathOf(back, victim); q.State == fsm.HeldDown.String() {
			held++
		}
		fmt.Fprintf(&log, "flap %d: path %d down %.0f ms, back in %.0f ms\n", n+1, victim, ms(tUp.Sub(tDown)), r)
		time.Sleep(flapSettle)
	}
	st := stopLoad(t, load)
	labkit.SaveTimeline(sc, "", st)
	mean, maxR := 0.0, 0.0
	if len(relogins) > 0 {
		for _, r := range relogins {
			mean += r
		}
		mean /= float64(len(relogins))
		maxR = slices.Max(relogins)
	}
	sc.Figures(map[string]float64{
		"flaps": flapCount, "errors": float64(st.Errors), "verify_errors": float64(st.VerifyErrors),
		"stall_ms": ms(st.Stall()), "notice_ms_max": noticeMax, "relogin_ms_max": maxR, "relogin_ms_mean": mean,
		"relogin_timeouts": float64(timeouts), "held_down": float64(held), "load_iops": st.IOPS(),
	})
	sc.Notef("%d flaps in %v: %v\n%s", flapCount, time.Since(tStart).Round(time.Second), st, log.String())
	if trs, err := d.Transitions(0); err == nil {
		sc.Notef("path transitions: %s", transitionsString(trs, tStart))
	}
	if timeouts > 0 {
		sc.Notef("kernel log:\n%s", srplab.KernelLog("flap 1 ", "rxe", "srpt", "ublk", "BUG", "Oops", "WARNING"))
		t.Errorf("%d of %d flaps: the path did not log in again within %v", timeouts, flapCount, flapReturnCap)
	}
	if st.Errors != 0 || st.VerifyErrors != 0 {
		t.Errorf("%d I/O errors, %d verify errors over %d flaps: %s", st.Errors, st.VerifyErrors, flapCount, st.FirstError)
	}
	if err := d.Stop(); err != nil {
		t.Error(err)
	}
}

// restartQueuedFor is how long the I/O waits for a path before the daemon
// is stopped in e2e-allpaths-restart.
const restartQueuedFor = 3 * time.Second

// TestE2EAllPathsRestart (e2e-allpaths-restart): both paths blackholed
// under the verified load (the heartbeats take them out of service), then
// the daemon is stopped (SIGTERM) while its I/O waits for a path. It must
// exit: past its drain timeout it leaves the waiting requests to the kernel
// and the device stays, quiesced. A new daemon starts while the paths are
// still dead; when they return it logs in, recovers the same device (ublk
// user recovery reissues the requests) and the waiting I/O completes
// without an error.
//
// A blackhole, not a link down: an exiting process's CM ids send their
// DREQs at once, and soft-RoCE answers a CM message on a netdev that is
// down by killing its GSI QP for good (srplab.LinkDown), after which no
// login succeeds in the lab. A hardware HCA does not; a silent loss keeps
// the lab's devices usable.
//
// Figures: queued (I/O waiting when the stop came), stop_ms (SIGTERM to
// exit), device_kept (1: same node and device number through both
// daemons), errors, verify_errors, resume_ms (paths back to I/O flowing
// again; -1: not within e2eStallCap), stall_ms.
func TestE2EAllPathsRestart(t *testing.T) {
	sc, lab, d, dev, load := pathsRun(t, "e2e-allpaths-restart", daemonlab.Options{}, 15)
	rdev := blockRdev(dev.Block)
	markAt(t, load, "allpaths-restart", labkit.MarkFault)
	if err := allLinks(lab, func(i int) error { return lab.Blackhole(i, true) }); err != nil {
		t.Fatal(err)
	}
	time.Sleep(restartQueuedFor)
	var queued int64
	if vs, err := d.Devices(); err == nil && len(vs) > 0 {
		queued = vs[0].Queued
	}
	tStop := time.Now()
	stopErr := d.Stop()
	stopMs := ms(time.Since(tStop))
	kept := blockRdev(dev.Block) == rdev
	d2 := d.Restart()
	time.Sleep(2 * time.Second) // the new daemon starts; its logins time out
	tUp := markAt(t, load, "allpaths-restart", labkit.MarkRestore)
	if err := allLinks(lab, func(i int) error { return lab.Blackhole(i, false) }); err != nil {
		t.Fatal(err)
	}
	devs2, waitErr := d2.WaitDevices(1, len(lab.Paths))
	resume, flowErr := waitResume(context.Background(), load, tUp, tUp, e2eStallCap, e2eStuckAge, e2eFlowSettle)
	st := stopLoad(t, load)
	labkit.SaveTimeline(sc, "", st)
	kept = kept && blockRdev(dev.Block) == rdev && waitErr == nil && len(devs2) == 1 && devs2[0].Block == dev.Block
	sc.Figures(map[string]float64{
		"queued": float64(queued), "stop_ms": stopMs, "device_kept": b2f(kept), "errors": float64(st.Errors),
		"verify_errors": float64(st.VerifyErrors), "resume_ms": resume, "stall_ms": ms(st.Stall()),
	})
	sc.Notef("stop with %d I/O waiting took %.0f ms (%v); load %v", queued, stopMs, stopErr, st)
	if stopErr != nil {
		t.Errorf("daemon stop with I/O waiting for a path: %v", stopErr)
	}
	if queued == 0 {
		t.Error("no I/O was waiting for a path when the daemon was stopped")
	}
	if waitErr != nil {
		t.Errorf("the new daemon: %v", waitErr)
	}
	if !kept {
		t.Errorf("%s changed or vanished across the restart (new daemon's devices %+v)", dev.Block, devs2)
	}
	if flowErr != nil {
		t.Errorf("I/O did not flow again within %v of the paths' return: %v", e2eStallCap, flowErr)
	}
	if st.Errors != 0 || st.VerifyErrors != 0 {
		t.Errorf("%d I/O errors, %d verify errors: %s", st.Errors, st.VerifyErrors, st.FirstError)
	}
	if err := d2.Stop(); err != nil {
		t.Error(err)
	}
}
