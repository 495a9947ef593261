//go:build lab

package scenarios

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/srp-mpathd/srp-mpathd/test/lab/labkit"
)

// envServe makes the test binary a ublk server (see TestMain): its value is
// a JSON serveSpec.
const envServe = "LAB_UBLK_SERVE"

// Backends a server can serve.
const (
	backendMem  = "mem"  // ublk.Memory: in the server's heap, gone with it
	backendFile = "file" // ublk.File on tmpfs: the bytes survive a kill -9
	backendNull = "null" // ublk.NullHandler: reads zeroes, writes vanish, inline
)

// serveSpec tells a server process which device to serve.
type serveSpec struct {
	// DevID is the ublk device id to serve. With Recover the device is
	// added with USER_RECOVERY|REISSUE, or recovered when it exists with a
	// dead server (ublk.ServeSpec.Recover).
	DevID        uint32 `json:"dev_id"`
	Recover      bool   `json:"recover"`
	Backend      string `json:"backend"`
	File         string `json:"file,omitempty"` // file: the tmpfs file holding the data
	Size         int64  `json:"size"`
	LogicalBlock int    `json:"logical_block"`
	Queues       int    `json:"queues"`
	Depth        int    `json:"depth"`
}

// serveReady is the line a server prints on stdout once its device is live.
type serveReady struct {
	DevID     uint32 `json:"dev_id"`
	Block     string `json:"block"` // /dev/ublkbN
	PID       int    `json:"pid"`
	Recovered bool   `json:"recovered"`
}

const (
	labDevSize   = 256 << 20
	serverStart  = 60 * time.Second // add + start (or recover) under TCG
	serverStop   = 60 * time.Second
	pollInterval = 50 * time.Millisecond
)

// ublkServer is a server process started by a scenario.
type ublkServer struct {
	t     *testing.T
	spec  serveSpec
	cmd   *exec.Cmd
	ready serveReady
	log   *syncBuffer

	done    chan struct{} // closed when the process was reaped
	waitErr error         // cmd.Wait's result, valid after done
	killed  bool          // by kill9: an exit is expected
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServer re-executes the test binary as a ublk server for spec and
// waits until it reports the device live.
func startServer(t *testing.T, spec serveSpec) *ublkServer {
	t.Helper()
	js, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	s := &ublkServer{t: t, spec: spec, log: &syncBuffer{}, done: make(chan struct{})}
	s.cmd = exec.Command(os.Args[0])
	s.cmd.Env = append(os.Environ(), envServe+"="+string(js))
	s.cmd.Stderr = s.log
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		// Keep draining: a server that writes more must not block.
		for sc.Scan() {
			fmt.Fprintln(s.log, sc.Text())
		}
		s.waitErr = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("server (dev %d, pid %d) log:\n%s", spec.DevID, s.cmd.Process.Pid, s.log.String())
		}
	})
	select {
	case line, ok := <-lines:
		if !ok {
			<-s.done
			t.Fatalf("ublk server for dev %d exited before its device was live: %v\n%s", spec.DevID, s.waitErr, s.log.String())
		}
		if err := json.Unmarshal([]byte(line), &s.ready); err != nil {
			t.Fatalf("ublk server ready line %q: %v", line, err)
		}
	case <-time.After(serverStart):
		t.Fatalf("ublk server for dev %d not live after %v\n%s", spec.DevID, serverStart, s.log.String())
	}
	return s
}

// kill9 kills the server the hard way and reaps it.
func (s *ublkServer) kill9() {
	s.t.Helper()
	s.killed = true
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		s.t.Fatalf("kill -9 %d: %v", s.cmd.Process.Pid, err)
	}
	<-s.done
}

// stop asks the server to stop and delete its device and waits for it. A
// server that is gone already must have been killed by the scenario.
func (s *ublkServer) stop() {
	select {
	case <-s.done:
		if !s.killed {
			s.t.Errorf("ublk server %d (dev %d) exited on its own: %v", s.cmd.Process.Pid, s.spec.DevID, s.waitErr)
		}
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		if s.waitErr != nil {
			s.t.Errorf("ublk server %d (dev %d) exit after SIGTERM: %v", s.cmd.Process.Pid, s.spec.DevID, s.waitErr)
		}
	case <-time.After(serverStop):
		_ = s.cmd.Process.Kill()
		<-s.done
		s.t.Errorf("ublk server %d (dev %d) did not stop within %v of SIGTERM", s.cmd.Process.Pid, s.spec.DevID, serverStop)
	}
}

// memFile creates the tmpfs file a file backend keeps its bytes in.
func memFile(t *testing.T, name string, size int64) string {
	t.Helper()
	path := filepath.Join("/dev/shm", name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(path) })
	return path
}

// devNumber returns "major:minor" of a block device from sysfs.
func devNumber(t *testing.T, block string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(block), "dev"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// waitFor polls cond until it holds or ctx ends. The lab waits on kernel
// state (sysfs counters, md state) that offers no notification.
func waitFor(ctx context.Context, cond func() bool) error {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// sectorsWritten reads the write-sectors counter of a block device.
func sectorsWritten(block string) int64 {
	b, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(block), "stat"))
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	const writeSectorsField = 6
	if len(f) <= writeSectorsField {
		return -1
	}
	n, _ := strconv.ParseInt(f[writeSectorsField], 10, 64)
	return n
}

func ublkModule(t *testing.T) {
	t.Helper()
	labkit.RequireVM(t)
	labkit.RequireModule(t, "ublk_drv")
}

// fio job arguments shared by the scenarios: direct I/O with libaio.
func fioArgs(name, filename string, extra ...string) []string {
	return append([]string{
		"--name=" + name, "--filename=" + filename, "--ioengine=libaio", "--direct=1",
	}, extra...)
}

// TestUblkFsVerify: an ext4 file system on a ublk memory-backed device, with
// 512- and 4096-byte logical blocks: mkfs, fsck, a verifying fio randrw on a
// file in it, fsck again. Figures: errors (fio + fsck).
func TestUblkFsVerify(t *testing.T) {
	ublkModule(t)
	sc := labkit.Begin(t, "ublk-fs-verify")
	total := 0
	for i, lbs := range []int{512, 4096} {
		t.Run(fmt.Sprintf("lbs%d", lbs), func(t *testing.T) {
			id := uint32(i)
			spec := serveSpec{DevID: id, Backend: backendMem, Size: labDevSize, LogicalBlock: lbs, Queues: 2, Depth: 64}
			srv := startServer(t, spec)
			dev := srv.ready.Block
			got := strings.TrimSpace(labkit.Run(t, "blockdev", "--getss", dev))
			if got != strconv.Itoa(lbs) {
				t.Errorf("%s logical block size %s, want %d", dev, got, lbs)
			}
			labkit.Run(t, "mkfs.ext4", "-q", "-F", dev)
			if out, err := exec.Command("e2fsck", "-fn", dev).CombinedOutput(); err != nil {
				total++
				t.Errorf("e2fsck after mkfs: %v\n%s", err, out)
			}
			mnt := t.TempDir()
			labkit.Run(t, "mount", "-t", "ext4", dev, mnt)
			mounted := true
			defer func() {
				if mounted {
					_ = exec.Command("umount", mnt).Run()
				}
			}()
			res, err := labkit.RunFio(context.Background(), fioArgs("fsverify", filepath.Join(mnt, "fio.dat"),
				"--rw=randrw", "--bs=4k", "--size=16M", "--iodepth=16",
				"--verify=crc32c", "--do_verify=1", "--verify_fatal=1")...)
			if err != nil {
				t.Fatal(err)
			}
			total += res.Errors
			if res.Errors != 0 || res.Exit != nil {
				t.Errorf("fio on ext4 over %s: %d errors (%v)\n%s", dev, res.Errors, res.Exit, res.Log)
			}
			labkit.Run(t, "umount", mnt)
			mounted = false
			if out, err := exec.Command("e2fsck", "-fn", dev).CombinedOutput(); err != nil {
				total++
				t.Errorf("e2fsck after fio: %v\n%s", err, out)
			}
			sc.Notef("lbs %d: %s, fio randrw %.0f/%.0f IOPS r/w, 0 errors expected, %d seen", lbs, dev, res.ReadIOPS, res.WriteIOPS, res.Errors)
		})
	}
	sc.Figure("errors", float64(total))
}

// TestUblkRecoverKill9: fio writes (and then verifies) through a ublk device
// while its server is killed with SIGKILL and restarted; the restarted server
// recovers the device (START/END_USER_RECOVERY). The node must keep its
// major:minor and fio must see no error. Figures: recover_ms (kill to device
// live again), errors.
func TestUblkRecoverKill9(t *testing.T) {
	ublkModule(t)
	sc := labkit.Begin(t, "ublk-recover-kill9")
	const id = 10
	spec := serveSpec{DevID: id, Backend: backendFile, File: memFile(t, "recover-kill9", labDevSize),
		Size: labDevSize, LogicalBlock: 512, Queues: 2, Depth: 64, Recover: true}
	first := startServer(t, spec)
	dev := first.ready.Block
	before := devNumber(t, dev)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	type fioOut struct {
		res labkit.FioResult
		err error
	}
	fioDone := make(chan fioOut, 1)
	go func() {
		res, err := labkit.RunFio(ctx, fioArgs("kill9", dev,
			"--rw=randwrite", "--bs=4k", "--size=32M", "--iodepth=32",
			"--verify=crc32c", "--do_verify=1", "--verify_fatal=1")...)
		fioDone <- fioOut{res, err}
	}()

	// Kill under load: once fio has written a first stretch.
	const killAfterSectors = 4 << 20 >> 9
	base := sectorsWritten(dev)
	if err := waitFor(ctx, func() bool { return sectorsWritten(dev)-base >= killAfterSectors }); err != nil {
		t.Fatalf("fio did not write %d sectors to %s: %v", killAfterSectors, dev, err)
	}
	select {
	case out := <-fioDone:
		t.Fatalf("fio ended before the kill, the scenario would test nothing: %v %+v", out.err, out.res)
	default:
	}
	killed := time.Now()
	first.kill9()
	second := startServer(t, spec)
	if !second.ready.Recovered {
		t.Errorf("the restarted server added a new device instead of recovering dev %d", id)
	}
	recoverMS := float64(time.Since(killed).Milliseconds())
	sc.Figure("recover_ms", recoverMS)
	if second.ready.Block != dev {
		t.Errorf("recovered device is %s, want %s", second.ready.Block, dev)
	}
	if after := devNumber(t, dev); after != before {
		t.Errorf("%s was %s before the kill, %s after recovery", dev, before, after)
	}

	out := <-fioDone
	if out.err != nil {
		t.Fatal(out.err)
	}
	sc.Figure("errors", float64(out.res.Errors))
	if out.res.Errors != 0 || out.res.Exit != nil {
		t.Errorf("fio across kill -9 and recovery: %d errors (%v)\n%s", out.res.Errors, out.res.Exit, out.res.Log)
	}
	sc.Notef("%s %s: recovered %v after kill -9, write IOPS %.0f", dev, before, time.Duration(recoverMS)*time.Millisecond, out.res.WriteIOPS)
}

// TestUblkMDRecover: md RAID1 over two ublk devices; the server of one leg
// is killed with SIGKILL under write load and restarted. md must not notice:
// the array stays [UU], fio sees no error. Figures: errors, md_degraded.
func TestUblkMDRecover(t *testing.T) {
	ublkModule(t)
	labkit.RequireModule(t, "raid1")
	sc := labkit.Begin(t, "ublk-md-recover")
	const size = 128 << 20
	var specs [2]serveSpec
	var srvs [2]*ublkServer
	for i := range specs {
		specs[i] = serveSpec{DevID: uint32(20 + i), Backend: backendFile, File: memFile(t, fmt.Sprintf("md-leg%d", i), size),
			Size: size, LogicalBlock: 512, Queues: 2, Depth: 64, Recover: true}
		srvs[i] = startServer(t, specs[i])
	}
	const md = "/dev/md0"
	labkit.Run(t, "mdadm", "--create", md, "--run", "--level=1", "--raid-devices=2", "--metadata=1.2",
		"--assume-clean", "--bitmap=none", srvs[0].ready.Block, srvs[1].ready.Block)
	// The array must go before its legs' servers: DEL_DEV waits as long as
	// md holds a leg open. Cleanups run last-in first-out, so stopMD is
	// registered again after every later startServer.
	mdRunning := true
	stopMD := func() {
		if !mdRunning {
			return
		}
		mdRunning = false
		if out, err := exec.Command("mdadm", "--stop", md).CombinedOutput(); err != nil {
			t.Errorf("mdadm --stop: %v\n%s", err, out)
		}
	}
	t.Cleanup(stopMD)
	mdName := filepath.Base(md)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	type fioOut struct {
		res labkit.FioResult
		err error
	}
	fioDone := make(chan fioOut, 1)
	go func() {
		res, err := labkit.RunFio(ctx, fioArgs("mdkill9", md,
			"--rw=randwrite", "--bs=4k", "--size=32M", "--iodepth=32",
			"--verify=crc32c", "--do_verify=1", "--verify_fatal=1")...)
		fioDone <- fioOut{res, err}
	}()
	const killAfterSectors = 4 << 20 >> 9
	leg := srvs[1].ready.Block
	base := sectorsWritten(leg)
	if err := waitFor(ctx, func() bool { return sectorsWritten(leg)-base >= killAfterSectors }); err != nil {
		t.Fatalf("fio did not write %d sectors through %s: %v", killAfterSectors, leg, err)
	}
	select {
	case out := <-fioDone:
		t.Fatalf("fio ended before the kill, the scenario would test nothing: %v %+v", out.err, out.res)
	default:
	}
	srvs[1].kill9()
	again := startServer(t, specs[1])
	t.Cleanup(stopMD)
	if !again.ready.Recovered {
		t.Errorf("the restarted server added a new device instead of recovering dev %d", specs[1].DevID)
	}

	out := <-fioDone
	if out.err != nil {
		t.Fatal(out.err)
	}
	sc.Figure("errors", float64(out.res.Errors))
	if out.res.Errors != 0 || out.res.Exit != nil {
		t.Errorf("fio on md across kill -9 of a leg's server: %d errors (%v)\n%s", out.res.Errors, out.res.Exit, out.res.Log)
	}
	degraded := strings.TrimSpace(readFile(t, filepath.Join("/sys/block", mdName, "md/degraded")))
	mdstat := readFile(t, "/proc/mdstat")
	sc.Notef("/proc/mdstat after recovery:\n%s", mdstat)
	d, err := strconv.Atoi(degraded)
	if err != nil {
		t.Fatalf("md/degraded = %q", degraded)
	}
	sc.Figure("md_degraded", float64(min(d, 1)))
	if d != 0 || !strings.Contains(mdstat, "[UU]") {
		t.Errorf("md %s degraded=%d after the leg's server came back:\n%s", mdName, d, mdstat)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestUblkNullIOPS: 4 KiB random reads at queue depth 32 on a ublk device
// with the null backend, against the kernel's null_blk in the same VM (so the
// ratio, not the absolute number, is what travels between machines).
// Figures: iops, nullblk_iops, ratio.
func TestUblkNullIOPS(t *testing.T) {
	ublkModule(t)
	sc := labkit.Begin(t, "ublk-null-iops")
	const runtime = "--runtime=5"
	job := func(name, dev string) float64 {
		res, err := labkit.RunFio(context.Background(), fioArgs(name, dev,
			"--rw=randread", "--bs=4k", "--iodepth=32", "--time_based", runtime, "--ramp_time=1", "--size=1G")...)
		if err != nil {
			t.Fatal(err)
		}
		if res.Errors != 0 {
			t.Errorf("fio on %s: %d errors\n%s", dev, res.Errors, res.Log)
		}
		return res.ReadIOPS
	}

	// null_blk: blk-mq, completions inline (irqmode=0), one device.
	_ = exec.Command("modprobe", "-r", "null_blk").Run()
	if err := labkit.LoadModule("null_blk", "nr_devices=1", "queue_mode=2", "irqmode=0", "gb=1", "bs=4096", "submit_queues=2"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exec.Command("modprobe", "-r", "null_blk").Run() })
	nullblk := job("nullblk", "/dev/nullb0")

	srv := startServer(t, serveSpec{DevID: 30, Backend: backendNull, Size: 1 << 30, LogicalBlock: 4096, Queues: 2, Depth: 64})
	iops := job("ublknull", srv.ready.Block)

	sc.Figures(map[string]float64{"iops": iops, "nullblk_iops": nullblk})
	if nullblk <= 0 || iops <= 0 {
		t.Fatalf("iops ublk %.0f null_blk %.0f", iops, nullblk)
	}
	sc.Figure("ratio", iops/nullblk)
}
