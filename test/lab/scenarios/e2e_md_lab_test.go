//go:build lab

package scenarios

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/cli"
	"github.com/srp-mpathd/srp-mpathd/internal/daemon"
	"github.com/srp-mpathd/srp-mpathd/test/lab/daemonlab"
	"github.com/srp-mpathd/srp-mpathd/test/lab/labkit"
	"github.com/srp-mpathd/srp-mpathd/test/lab/srplab"
)

// md RAID1 across two LUs served by the real daemon (issue 7): srplab with
// two targets of one LU each, two paths per target, srp-mpathd (daemonlab)
// serving each LU as /dev/ublkbN over its two paths, and md RAID1 with one
// leg on each. e2e-md-kill9 kills the daemon under an ext4 write load and
// restarts it (ublk user recovery); demo fails the active path of one leg
// under the failover load, as `make demo` shows it.

const (
	mdDevice = "/dev/md0"
	// mdLegs: one leg per srplab target.
	mdLegs = 2
	// mdStartWait bounds array assembly (mdadm returns at once with
	// --assume-clean; the kernel may take a moment to show both legs).
	mdStartWait = 30 * time.Second
	// mdCheckWait bounds md's check of both 64 MiB legs after the load.
	mdCheckWait = 2 * time.Minute

	// The e2e-md-kill9 write load: mdWriters goroutines, each rewriting
	// its mdFilesPerWriter files of mdFileSize bytes in turn (write,
	// fsync, close), about 8 MiB live on the 64 MiB file system.
	mdWriters        = 4
	mdFilesPerWriter = 16
	mdFileSize       = 128 << 10
	// mdKillAfterFiles: the kill comes once this many files were written
	// and fsynced, so the load is in full swing (and the journal busy).
	mdKillAfterFiles = 24
	// mdLoadWait bounds the wait for those files (fresh ext4 under TCG).
	mdLoadWait = 2 * time.Minute
	// mdRecoverCap bounds kill -9 to the first fsync completed after it.
	mdRecoverCap = 3 * time.Minute
	// mdAfterRecover: the load keeps running this long once I/O flows
	// again, so the restarted daemon carries a stretch of it.
	mdAfterRecover = 3 * time.Second
	mdLoadStopCap  = time.Minute

	// The demo's failover timing (as e2e-linkdown's, e2e_failover_lab_test.go).
	demoWarmUp       = 2 * time.Second
	demoFaultAfter   = 2 * time.Second
	demoStuckAge     = time.Second
	demoFlowSettle   = 4 * time.Second
	demoStallCap     = time.Minute
	demoReinstateCap = 30 * time.Second
	// demoAfterReinstate: the load keeps running this long once the
	// failed path is usable again, across the failback.
	demoAfterReinstate = 2 * time.Second
	demoStopCap        = 30 * time.Second
	demoLinkDownLimit  = 500 * time.Millisecond // issue 7: our stall on link down
	// demoKernel is the kernel baseline of the same run: its fragment
	// gives kernel_stall_ms, and labrun plots its timeline against the
	// demo's (pair "demo" in labrun's plot.go).
	demoKernel = "kernel-linkdown"
)

// mdStack is the daemon serving one LU per target and md RAID1 over them.
type mdStack struct {
	lab *srplab.Lab
	d   *daemonlab.Daemon
	// legs[k] is the device of target k's LU.
	legs  [mdLegs]daemon.DeviceView
	devno [mdLegs]string // major:minor of legs[k].Block
	// mdUp: the array is assembled (stopMD stops it once).
	mdUp bool
}

// setupMDStack builds the lab, starts the daemon (devices removed on its
// graceful stop), waits for both devices with both paths usable and
// assembles md RAID1 over them. Cleanups stop md before the daemon and the
// daemon before the lab.
func setupMDStack(t *testing.T, sc *labkit.Scenario) *mdStack {
	t.Helper()
	labkit.RequireVM(t)
	labkit.RequireModule(t, "ublk_drv")
	labkit.RequireModule(t, "raid1")
	lab := srplab.Setup(t, srplab.Options{Targets: mdLegs, Paths: 2, LUs: 1, InitiatorExts: []uint64{daemonlab.InitiatorExt}})
	s := &mdStack{lab: lab}
	t0 := time.Now()
	s.d = daemonlab.Start(t, lab, daemonlab.Options{RemoveDevices: true})
	devs, err := s.d.WaitDevices(mdLegs, 2)
	if err != nil {
		t.Fatal(err)
	}
	sc.Figure("serve_ms", ms(time.Since(t0)))
	for k := range mdLegs {
		wwid := lab.Targets[k].LUs[0].MultipathWWID()
		found := false
		for _, dv := range devs {
			if dv.WWID == wwid {
				s.legs[k], found = dv, true
			}
		}
		if !found {
			t.Fatalf("no device serves target %d's LU %s: %+v", k, wwid, devs)
		}
		s.devno[k] = devNumber(t, s.legs[k].Block)
	}
	labkit.Run(t, "mdadm", "--create", mdDevice, "--run", "--level=1", "--raid-devices=2", "--metadata=1.2",
		"--assume-clean", "--bitmap=none", s.legs[0].Block, s.legs[1].Block)
	s.mdUp = true
	t.Cleanup(func() { s.stopMD(t) })
	ctx, cancel := context.WithTimeout(t.Context(), mdStartWait)
	defer cancel()
	if err := waitFor(ctx, func() bool { d, st, err := mdState(); return err == nil && d == 0 && strings.Contains(st, "[UU]") }); err != nil {
		_, st, _ := mdState()
		t.Fatalf("md RAID1 over %s and %s not [UU] within %v:\n%s", s.legs[0].Block, s.legs[1].Block, mdStartWait, st)
	}
	sc.Notef("md RAID1 %s over %s (%s, target 0) and %s (%s, target 1), served by srp-mpathd pid %d, ready %v after its start",
		mdDevice, s.legs[0].Block, s.devno[0], s.legs[1].Block, s.devno[1], s.d.PID(), time.Since(t0).Round(time.Millisecond))
	return s
}

// stopMD stops the array (once): DEL_DEV of a leg waits as long as md
// holds it open, so md goes before the daemon's graceful stop.
func (s *mdStack) stopMD(t *testing.T) {
	t.Helper()
	if !s.mdUp {
		return
	}
	s.mdUp = false
	if out, err := exec.Command("mdadm", "--stop", mdDevice).CombinedOutput(); err != nil {
		t.Errorf("mdadm --stop %s: %v\n%s", mdDevice, err, out)
	}
}

// teardown stops md, then the daemon (which deletes its ublk devices), and
// checks the devices are gone; srplab's cleanup removes the lab.
func (s *mdStack) teardown(t *testing.T) {
	t.Helper()
	s.stopMD(t)
	if err := s.d.Stop(); err != nil {
		t.Errorf("daemon stop (--remove-devices): %v", err)
	}
	for _, dv := range s.legs {
		if _, err := os.Stat(filepath.Join("/sys/block", filepath.Base(dv.Block))); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still exists after the daemon's stop with --remove-devices (%v)", dv.Block, err)
		}
	}
}

// mdState reads md's degraded count and /proc/mdstat.
func mdState() (int, string, error) {
	mdstat, err := os.ReadFile("/proc/mdstat")
	if err != nil {
		return 0, "", err
	}
	b, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(mdDevice), "md/degraded"))
	if err != nil {
		return 0, string(mdstat), err
	}
	d, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return d, string(mdstat), err
}

// checkMD records md_degraded (0 or 1) and fails t unless both legs are in
// sync ([UU], degraded 0).
func checkMD(t *testing.T, sc *labkit.Scenario, when string) {
	t.Helper()
	d, mdstat, err := mdState()
	if err != nil {
		t.Errorf("md state %s: %v", when, err)
		sc.Figure("md_degraded", 1)
		return
	}
	sc.Figure("md_degraded", b2f(d != 0 || !strings.Contains(mdstat, "[UU]")))
	sc.Notef("/proc/mdstat %s:\n%s", when, mdstat)
	if d != 0 || !strings.Contains(mdstat, "[UU]") {
		t.Errorf("md %s degraded=%d %s, want [UU]:\n%s", mdDevice, d, when, mdstat)
	}
}

// mdMismatches runs md's check of both legs and returns mismatch_cnt.
func mdMismatches(ctx context.Context) (int64, error) {
	dir := filepath.Join("/sys/block", filepath.Base(mdDevice), "md")
	if err := os.WriteFile(filepath.Join(dir, "sync_action"), []byte("check"), 0); err != nil {
		return 0, err
	}
	idle := func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "sync_action"))
		return err == nil && strings.TrimSpace(string(b)) == "idle"
	}
	if err := waitFor(ctx, idle); err != nil {
		_ = os.WriteFile(filepath.Join(dir, "sync_action"), []byte("idle"), 0)
		return 0, fmt.Errorf("md check not done: %w", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "mismatch_cnt"))
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// pathTable is `srp-mpathd paths` against the daemon (the CLI in-process,
// over the control socket, as an operator would run it).
func pathTable(d *daemonlab.Daemon) string {
	var out bytes.Buffer
	if code := cli.Main([]string{"paths", "--socket", d.Socket}, strings.NewReader(""), &out, &out); code != 0 {
		fmt.Fprintf(&out, "(srp-mpathd paths exited %d)\n", code)
	}
	return out.String()
}

// daemonRecovered counts "block device recovered" in the log of the
// newest daemon run in d's directory.
func daemonRecovered(d *daemonlab.Daemon) (int, error) {
	b, err := os.ReadFile(filepath.Join(d.Dir, "daemon.log"))
	if err != nil {
		return 0, err
	}
	const runMark = "==== daemonlab: start"
	if i := bytes.LastIndex(b, []byte(runMark)); i >= 0 {
		b = b[i:]
	}
	return bytes.Count(b, []byte(`msg="block device recovered"`)), nil
}

// fileLoad writes files on a file system and fsyncs each: writer w owns
// files w-0..w-(n-1) and rewrites them in turn, each time with the content
// of a new generation. A file's last generation whose write, fsync and
// close all succeeded is what a later read must return.
type fileLoad struct {
	dir  string
	seed uint64
	stop chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex
	gens     [mdWriters][mdFilesPerWriter]uint64 // 0: never written; genFailed: unknown
	done     []time.Time                         // completion of every good file
	errors   int64
	firstErr string
	maxLat   time.Duration
}

const genFailed = ^uint64(0)

func startFileLoad(dir string, seed uint64) *fileLoad {
	l := &fileLoad{dir: dir, seed: seed, stop: make(chan struct{})}
	for w := range mdWriters {
		l.wg.Add(1)
		go l.writer(w)
	}
	return l
}

func (l *fileLoad) name(w, i int) string { return filepath.Join(l.dir, fmt.Sprintf("w%d-%02d", w, i)) }

// content is the bytes of generation gen of file (w, i).
func (l *fileLoad) content(w, i int, gen uint64) []byte {
	b := make([]byte, mdFileSize)
	r := rand.New(rand.NewPCG(l.seed^gen, uint64(w)<<32|uint64(i)))
	for off := 0; off < len(b); off += 8 {
		v := r.Uint64()
		for k := range 8 {
			b[off+k] = byte(v >> (8 * k))
		}
	}
	return b
}

func (l *fileLoad) writer(w int) {
	defer l.wg.Done()
	var gen uint64
	for n := 0; ; n++ {
		select {
		case <-l.stop:
			return
		default:
		}
		i := n % mdFilesPerWriter
		gen++
		data := l.content(w, i, gen)
		t0 := time.Now()
		err := writeSync(l.name(w, i), data)
		now := time.Now()
		l.mu.Lock()
		l.maxLat = max(l.maxLat, now.Sub(t0))
		if err != nil {
			l.gens[w][i] = genFailed
			l.errors++
			if l.firstErr == "" {
				l.firstErr = fmt.Sprintf("%s at %s: %v", l.name(w, i), now.Format("15:04:05.000"), err)
			}
		} else {
			l.gens[w][i] = gen
			l.done = append(l.done, now)
		}
		l.mu.Unlock()
	}
}

// writeSync writes data to path (truncating it), fsyncs and closes it.
func writeSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	return errors.Join(werr, serr, f.Close())
}

// completed is the number of good files so far; firstAfter the first good
// file completed after t (zero: none yet).
func (l *fileLoad) completed() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.done)
}

func (l *fileLoad) firstAfter(t time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, at := range l.done {
		if at.After(t) {
			return at
		}
	}
	return time.Time{}
}

// stats are the failed files, the first failure, the good files and the
// longest write+fsync so far.
func (l *fileLoad) stats() (int64, string, int, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.errors, l.firstErr, len(l.done), l.maxLat
}

// Stop ends the load once every writer finished its current file.
func (l *fileLoad) Stop(ctx context.Context) error {
	close(l.stop)
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("file load: writers still in a write or fsync: %w", ctx.Err())
	}
}

// verify reads back every file with a known generation and counts the
// ones whose content differs; it reports how many files it checked.
func (l *fileLoad) verify() (checked, bad int, first string) {
	l.mu.Lock()
	gens := l.gens
	l.mu.Unlock()
	for w := range mdWriters {
		for i := range mdFilesPerWriter {
			g := gens[w][i]
			if g == 0 || g == genFailed {
				continue
			}
			checked++
			got, err := os.ReadFile(l.name(w, i))
			if err == nil && bytes.Equal(got, l.content(w, i, g)) {
				continue
			}
			bad++
			if first == "" {
				first = fmt.Sprintf("%s (generation %d): %d bytes read, err %v", l.name(w, i), g, len(got), err)
			}
		}
	}
	return checked, bad, first
}

// dropCaches writes back and drops the page cache, so a read after it
// comes from the device.
func dropCaches() error {
	syscall.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0)
}

// TestE2EMDKill9 (e2e-md-kill9): md RAID1 across the LUs of the two targets,
// served by srp-mpathd, ext4 on top; writers rewrite files with fsync while
// the daemon is killed with SIGKILL and restarted. The restarted daemon
// recovers both ublk devices (user recovery), so md never sees a leg vanish
// or fail: the array stays [UU], no write or fsync fails, every file reads
// back as last written, and fsck finds the file system clean.
//
// Figures: md_degraded (0), errors (failed write/fsync/close, 0),
// verify_errors (files not as last written, 0), fsck_clean (1),
// same_devices (1: each LU's /dev/ublkbN kept its major:minor), recover_ms
// (kill to the first file fsynced after it), restart_ms (kill to the new
// daemon serving both devices), recovered_devices (2: devices the new
// daemon recovered rather than added), max_write_ms (longest write+fsync of
// one file), files_written, files_verified, md_mismatches (md check of both
// legs after the run), serve_ms.
func TestE2EMDKill9(t *testing.T) {
	sc := labkit.Begin(t, "e2e-md-kill9")
	s := setupMDStack(t, sc)

	labkit.Run(t, "mkfs.ext4", "-q", "-F", mdDevice)
	mnt := t.TempDir()
	labkit.Run(t, "mount", "-t", "ext4", mdDevice, mnt)
	mounted := true
	umount := func() {
		if !mounted {
			return
		}
		mounted = false
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", mnt, err, out)
		}
	}
	t.Cleanup(umount) // runs before stopMD's cleanup

	load := startFileLoad(mnt, 9)
	stopped := false
	stopLoad := func() {
		if stopped {
			return
		}
		stopped = true
		ctx, cancel := context.WithTimeout(context.Background(), mdLoadStopCap)
		defer cancel()
		if err := load.Stop(ctx); err != nil {
			t.Error(err)
		}
	}
	defer stopLoad()
	ctx, cancel := context.WithTimeout(t.Context(), mdLoadWait)
	err := waitFor(ctx, func() bool { return load.completed() >= mdKillAfterFiles })
	cancel()
	if err != nil {
		t.Fatalf("the load wrote %d files in %v, want %d before the kill", load.completed(), mdLoadWait, mdKillAfterFiles)
	}
	if errs, first, _, _ := load.stats(); errs != 0 {
		t.Fatalf("%d write errors before the kill: %s", errs, first)
	}

	if err := srplab.Mark("e2e-md-kill9 kill"); err != nil {
		t.Fatal(err)
	}
	before := load.completed()
	tKill := time.Now()
	if err := s.d.Kill9(); err != nil {
		t.Fatalf("kill -9 of the daemon: %v", err)
	}
	tDead := time.Now()
	s.d = s.d.Restart()
	// Unmount and md before the new daemon's cleanup (last in, first out).
	t.Cleanup(func() { umount(); s.stopMD(t) })
	devs, err := s.d.WaitDevices(mdLegs, 1)
	if err != nil {
		t.Fatal(err)
	}
	sc.Figure("restart_ms", ms(time.Since(tKill)))
	ctx, cancel = context.WithTimeout(t.Context(), mdRecoverCap)
	err = waitFor(ctx, func() bool { return !load.firstAfter(tDead).IsZero() })
	cancel()
	recoverMS := -1.0
	if err == nil {
		recoverMS = ms(load.firstAfter(tDead).Sub(tKill))
	}
	sc.Figure("recover_ms", recoverMS)
	if err != nil {
		t.Errorf("no file was fsynced within %v of the kill (%d before it)", mdRecoverCap, before)
	}
	select {
	case <-time.After(mdAfterRecover):
	case <-t.Context().Done():
		t.Fatal(t.Context().Err())
	}
	stopLoad()

	same := true
	for k, leg := range s.legs {
		var now daemon.DeviceView
		for _, dv := range devs {
			if dv.WWID == leg.WWID {
				now = dv
			}
		}
		after := ""
		if now.Block != "" {
			after = devNumber(t, now.Block)
		}
		if now.Block != leg.Block || after != s.devno[k] {
			same = false
			t.Errorf("target %d's LU was %s (%s) before the kill, %q (%s) after", k, leg.Block, s.devno[k], now.Block, after)
		}
	}
	sc.Figure("same_devices", b2f(same))
	nrec, err := daemonRecovered(s.d)
	if err != nil {
		t.Error(err)
	}
	sc.Figure("recovered_devices", float64(nrec))
	if nrec != mdLegs {
		t.Errorf("the restarted daemon logged %d recovered block devices, want %d", nrec, mdLegs)
	}

	errs, firstErr, written, maxLat := load.stats()
	sc.Figures(map[string]float64{"errors": float64(errs), "files_written": float64(written), "max_write_ms": ms(maxLat)})
	if errs != 0 {
		t.Errorf("%d failed writes/fsyncs across the kill -9: %s", errs, firstErr)
	}
	checkMD(t, sc, "after the restart")

	if err := dropCaches(); err != nil {
		t.Error(err)
	}
	checked, bad, first := load.verify()
	sc.Figures(map[string]float64{"verify_errors": float64(bad), "files_verified": float64(checked)})
	if bad != 0 || checked == 0 {
		t.Errorf("%d of %d files differ from what was last written and fsynced: %s", bad, checked, first)
	}
	sc.Notef("kill -9 at %s: %d files written and fsynced (%d before the kill), longest write+fsync %v, I/O again %.0f ms after the kill; %d files verified",
		tKill.Format("15:04:05.000"), written, before, maxLat.Round(time.Millisecond), recoverMS, checked)

	umount()
	out, err := exec.Command("fsck.ext4", "-fn", mdDevice).CombinedOutput()
	sc.Figure("fsck_clean", b2f(err == nil))
	if err != nil {
		t.Errorf("fsck.ext4 -fn %s: %v\n%s", mdDevice, err, out)
	}
	ctx, cancel = context.WithTimeout(t.Context(), mdCheckWait)
	mism, err := mdMismatches(ctx)
	cancel()
	if err != nil {
		sc.Notef("md check: %v", err)
	} else {
		sc.Figure("md_mismatches", float64(mism))
	}
	sc.Notef("daemon after the restart:\n%s", pathTable(s.d))
	sc.Notef("kernel log since the kill:\n%s", srplab.KernelLog("e2e-md-kill9 kill", "md", "raid1", "ublk", "EXT4", "BUG", "Oops", "WARNING"))
	s.teardown(t)
}

// srplabPath is the srplab path index of a daemon path id (its static
// target "p<i>", the id's suffix ":p<i>").
func srplabPath(id string) (int, bool) {
	i := strings.LastIndex(id, ":p")
	if i < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(id[i+2:])
	return n, err == nil
}

// activePath is the srplab index of the path carrying I/O of the device
// with wwid (the first active one).
func activePath(d *daemonlab.Daemon, wwid string) (int, daemon.PathView, error) {
	topo, err := d.Topology()
	if err != nil {
		return 0, daemon.PathView{}, err
	}
	for _, dev := range topo {
		if dev.WWID != wwid {
			continue
		}
		for _, g := range dev.Groups {
			for _, p := range g.Paths {
				if i, ok := srplabPath(p.ID); ok && p.Active && p.Usable {
					return i, p, nil
				}
			}
		}
		return 0, daemon.PathView{}, fmt.Errorf("device %s has no active usable path: %s", dev.Name, daemonlab.PathsString(flatPaths(dev)))
	}
	return 0, daemon.PathView{}, fmt.Errorf("no device %s in the topology", wwid)
}

func flatPaths(dev daemon.TopologyView) []daemon.PathView {
	var ps []daemon.PathView
	for _, g := range dev.Groups {
		ps = append(ps, g.Paths...)
	}
	return ps
}

// TestDemo (demo): the heart of `make demo`. srp-mpathd serves one LU of
// each of two targets as /dev/ublkbN, md RAID1 runs across them; the path
// table is shown, the verified failover load runs on the md device, and
// the active path of leg 0 loses its link. The link comes back and the
// load runs on until the path is usable again (and 2 s more, across the
// failback), so the stall covers the failure, the restore and the
// failback. The stall is printed beside the kernel stack's
// (kernel-linkdown, same lab run) and everything is torn down.
//
// Figures: stall_ms (labkit's Stall: the longest gap, single I/O or I/O
// still in flight), max_gap_ms, max_io_ms, kernel_stall_ms and ratio
// (kernel ÷ ours) when kernel-linkdown ran before in the same run, errors,
// verify_errors, md_degraded (0), load_iops, resume_ms, target_met (stall
// within 500 ms), victim_path, reinstate_ms (-1: the path did not return
// within 30 s; a missing relogin is noted, not failed), serve_ms.
func TestDemo(t *testing.T) {
	sc := labkit.Begin(t, "demo")
	s := setupMDStack(t, sc)
	sc.Notef("srp-mpathd paths:\n%s", pathTable(s.d))

	// Warm-up: the first I/Os on fresh devices are slow under TCG.
	warm, err := labkit.StartIOLoad(labkit.IOLoad{Path: mdDevice, Depth: failoverDepth, WritePercent: failoverWrites, Verify: true, Seed: 6})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-time.After(demoWarmUp):
	case <-t.Context().Done():
	}
	ctx, cancel := context.WithTimeout(context.Background(), demoStopCap)
	ws, err := warm.Stop(ctx)
	cancel()
	if err != nil || ws.Errors != 0 || ws.VerifyErrors != 0 {
		t.Fatalf("warm-up load on %s: %v; %v", mdDevice, err, ws)
	}

	victim, vp, err := activePath(s.d, s.legs[0].WWID)
	if err != nil {
		t.Fatal(err)
	}
	sc.Figure("victim_path", float64(victim))
	load, err := labkit.StartIOLoad(labkit.IOLoad{Path: mdDevice, Depth: failoverDepth, WritePercent: failoverWrites, Verify: true, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			ctx, cancel := context.WithTimeout(context.Background(), demoStopCap)
			defer cancel()
			_, _ = load.Stop(ctx)
		}
	}()
	select {
	case <-time.After(demoFaultAfter):
	case <-t.Context().Done():
		t.Fatal(t.Context().Err())
	}
	if err := srplab.Mark("demo inject"); err != nil {
		t.Fatal(err)
	}
	load.Mark(labkit.MarkFault)
	tFail := time.Now()
	if err := s.lab.LinkDown(victim); err != nil {
		t.Fatal(err)
	}
	resume, flowErr := waitResume(t.Context(), load, tFail, tFail.Add(demoFlowSettle), demoStallCap, demoStuckAge, demoFlowSettle)
	recovered := flowErr == nil
	during := pathTable(s.d)

	if err := srplab.Mark("demo restore"); err != nil {
		t.Fatal(err)
	}
	load.Mark(labkit.MarkRestore)
	tRestore := time.Now()
	if err := s.lab.LinkUp(victim); err != nil {
		t.Fatal(err)
	}
	// The load runs on while the path returns and I/O fails back to it
	// (failback immediate): that costs nothing either, and the plot shows
	// it.
	reinstate := -1.0
	if _, err := s.d.WaitPaths(demoReinstateCap, func(ps []daemon.PathView) bool {
		p, ok := daemonlab.PathOf(ps, victim)
		return ok && p.Usable
	}); err == nil {
		reinstate = ms(time.Since(tRestore))
		select {
		case <-time.After(demoAfterReinstate):
		case <-t.Context().Done():
		}
	} else {
		sc.Notef("path %d not usable again within %v of its link coming back (relogin after link up: helper H1's fix): %v", victim, demoReinstateCap, err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), demoStopCap)
	st, stopErr := load.Stop(ctx)
	cancel()
	stopped = true
	if stopErr != nil {
		t.Error(stopErr)
	}
	stall := st.Stall()
	figs := map[string]float64{
		"stall_ms": ms(stall), "max_gap_ms": ms(st.MaxGap), "max_io_ms": ms(st.MaxLatency),
		"errors": float64(st.Errors), "verify_errors": float64(st.VerifyErrors), "load_iops": st.IOPS(),
		"recovered": b2f(recovered), "resume_ms": resume, "target_met": b2f(stall <= demoLinkDownLimit),
	}
	kernelLine := "kernel stack: no " + demoKernel + " result in this run (run the suites kernel-linkdown,demo together)"
	if k, err := labkit.ReadFragment(filepath.Join(os.Getenv(labkit.EnvOut), labkit.FragmentDir, demoKernel+".json")); err == nil && k.Final && k.OK && k.Figures["stall_ms"] > 0 && stall > 0 {
		figs["kernel_stall_ms"] = k.Figures["stall_ms"]
		figs["ratio"] = k.Figures["stall_ms"] / ms(stall)
		kernelLine = fmt.Sprintf("kernel ib_srp + dm-multipath, same fault, same load, same run: stall %.0f ms, %.1fx ours", k.Figures["stall_ms"], figs["ratio"])
	}
	sc.Figures(figs)
	// The latency timeline (timelines/demo.csv) labrun plots against
	// kernel-linkdown's as latency-demo.png.
	labkit.SaveTimeline(sc, "", st)
	sc.Notef("link down on path %d (%s, active path of %s) at %s: %v", victim, vp.ID, s.legs[0].Block, tFail.Format("15:04:05.000"), st)
	sc.Notef("srp-mpathd paths while I/O flowed again:\n%s", during)
	sc.Notef("srp-mpathd: stall %.0f ms on md RAID1 (%d errors, %d verify errors); %s", ms(stall), st.Errors, st.VerifyErrors, kernelLine)

	sc.Figure("reinstate_ms", reinstate)
	sc.Notef("srp-mpathd paths after the link came back:\n%s", pathTable(s.d))
	checkMD(t, sc, "after the failover")
	sc.Notef("kernel log since the fault:\n%s", srplab.KernelLog("demo inject", "srpt", "rxe", "ublk", "md", "raid1", "BUG", "Oops", "WARNING"))

	if !recovered {
		t.Errorf("I/O on %s did not flow again within %v of the link down: %v", mdDevice, demoStallCap, flowErr)
	}
	if st.Errors != 0 || st.VerifyErrors != 0 {
		t.Errorf("%d I/O errors, %d verify errors on %s (the other path of the leg was usable): %s", st.Errors, st.VerifyErrors, mdDevice, st.FirstError)
	}
	if stall > demoLinkDownLimit {
		sc.Notef("stall %v is above the link-down target %v", stall.Round(time.Millisecond), demoLinkDownLimit)
	}
	s.teardown(t)
}
