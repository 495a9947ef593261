package daemonlab

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/cli"
	"github.com/srp-mpathd/srp-mpathd/internal/daemon"
	"github.com/srp-mpathd/srp-mpathd/internal/ublk"
	"github.com/srp-mpathd/srp-mpathd/test/lab/labkit"
	"github.com/srp-mpathd/srp-mpathd/test/lab/srplab"
)

// EnvArgs carries the daemon's command line (a JSON array) to the re-executed
// test binary; see RunIfChild.
const EnvArgs = "LAB_DAEMON_ARGS"

// InitiatorExt is the initiator_ext of the daemon's logins: its initiator
// port ids differ from the kernel initiator's (ext 0) on the same local
// ports, so the two stacks never share an I_T nexus. srplab must have an
// ACL for it (srplab.Options.InitiatorExts).
const InitiatorExt = 0x5352504d50415448 // "SRPMPATH"

// Timers of the lab configuration. TCG runs everything 5-10x slower than
// hardware; each value says why it differs from the default.
const (
	// ReconnectDelay: a restored path returns within a scenario instead
	// of after the default 10 s.
	ReconnectDelay = 2 * time.Second
	// HeartbeatTimeout: 1 s instead of 500 ms. Under TCG on a loaded host
	// heartbeat round trips above 500 ms were seen; 250 ms + 1 s still
	// bounds silent-loss detection below the 1.5 s blackhole target.
	HeartbeatTimeout = time.Second
	// HoldDown: a recovered path carries I/O after 1 s, so flaps follow
	// each other quickly.
	HoldDown = time.Second
	// LoginTimeout bounds one login (the daemon's --probe-timeout): logins
	// take 1-3 s under TCG.
	LoginTimeout = 10 * time.Second
	// AckTimeout and RetryCount: 4.096 µs × 2^15 ≈ 134 ms per try, 3
	// retries; silent loss is the heartbeat's job.
	AckTimeout = 15
	RetryCount = 3
	QueueDepth = 32
	MaxIOSize  = "128KiB"
)

// Waits of the harness.
const (
	startWait = 3 * time.Minute // process start to every device served
	stopWait  = time.Minute     // SIGTERM to exit (drains I/O)
	killWait  = 30 * time.Second
	pollEvery = 100 * time.Millisecond
	callWait  = 10 * time.Second // one control API call
	logTail   = 64 << 10
)

// RunIfChild runs the daemon's command line when EnvArgs is set and reports
// the exit code; a lab package's TestMain calls it first:
//
//	if code, ok := daemonlab.RunIfChild(); ok { os.Exit(code) }
//
// The child is the real daemon (cmd/srp-mpathd calls the same cli.Main)
// inside the test binary the lab runner already copied into the VM.
func RunIfChild() (int, bool) {
	v := os.Getenv(EnvArgs)
	if v == "" {
		return 0, false
	}
	var args []string
	if err := json.Unmarshal([]byte(v), &args); err != nil {
		fmt.Fprintf(os.Stderr, "daemonlab: bad %s %q: %v\n", EnvArgs, v, err)
		return cli.ExitUsage, true
	}
	return cli.Main(args, os.Stdin, os.Stdout, os.Stderr), true
}

// Options shape the daemon's configuration.
type Options struct {
	// Paths are the srplab paths the daemon gets as static targets (nil:
	// every path of the lab).
	Paths []int
	// Defaults are extra YAML lines under defaults: (for example
	// "dev_loss_tmo: 20s"); they override the lab's values above.
	Defaults map[string]string
	// Dir holds the store, the config, the socket and the log; a restart
	// reuses it. "" makes one with t.TempDir.
	Dir string
	// RemoveDevices makes a graceful stop remove the devices.
	RemoveDevices bool
	// ProbeTimeout overrides LoginTimeout.
	ProbeTimeout time.Duration
}

// Config is the daemon's YAML configuration for lab: one static target
// entry per path, each bound to the path's initiator-side address.
func Config(lab *srplab.Lab, o Options) string {
	defaults := map[string]string{
		"queue_depth":       strconv.Itoa(QueueDepth),
		"max_io_size":       MaxIOSize,
		"reconnect_delay":   ReconnectDelay.String(),
		"heartbeat_timeout": HeartbeatTimeout.String(),
		"hold_down":         HoldDown.String(),
		"ack_timeout":       strconv.Itoa(AckTimeout),
		"retry_count":       strconv.Itoa(RetryCount),
	}
	for k, v := range o.Defaults {
		defaults[k] = v
	}
	var b strings.Builder
	b.WriteString("# written by test/lab/daemonlab\ndefaults:\n")
	for _, k := range slices.Sorted(maps.Keys(defaults)) {
		fmt.Fprintf(&b, "  %s: %s\n", k, defaults[k])
	}
	b.WriteString("targets:\n")
	for _, i := range o.paths(lab) {
		p := lab.Paths[i]
		fmt.Fprintf(&b, "  - name: p%d\n    address: %s\n    port: %d\n    id_ext: 0x%016x\n    ioc_guid: 0x%016x\n    initiator_ext: 0x%016x\n    source: %s\n",
			p.Index, p.TgtAddr, lab.Port, lab.ServiceGUID, lab.ServiceGUID, uint64(InitiatorExt), p.IniAddr)
	}
	return b.String()
}

func (o Options) paths(lab *srplab.Lab) []int {
	if o.Paths != nil {
		return o.Paths
	}
	all := make([]int, len(lab.Paths))
	for i := range all {
		all[i] = i
	}
	return all
}

// Daemon is one run of srp-mpathd as a child process: the test binary
// re-executed with EnvArgs. Running the RDMA stack in a child matters
// beyond realism: librdmacm keeps every RDMA device's verbs context open
// for the life of the process and rxe cannot disassociate it, so srplab's
// `rdma link delete` at cleanup would wait for the test process to exit.
type Daemon struct {
	t      testing.TB
	lab    *srplab.Lab
	opts   Options
	Dir    string
	Socket string
	Store  string
	Client *daemon.Client

	cmd     *exec.Cmd
	logPath string
	logFrom int64 // this run's first byte in logPath
	exited  chan struct{}
	waitErr error
	Started time.Time
	// served are the ublk dev ids WaitDevices saw, for the leftover check
	// at cleanup.
	served []int
}

// Start writes the configuration into o.Dir and starts the daemon. It does
// not wait for devices: see WaitDevices.
func Start(t testing.TB, lab *srplab.Lab, o Options) *Daemon {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.ProbeTimeout == 0 {
		o.ProbeTimeout = LoginTimeout
	}
	d := &Daemon{t: t, lab: lab, opts: o, Dir: o.Dir,
		Socket: filepath.Join(o.Dir, "control.sock"), Store: filepath.Join(o.Dir, "store.db"),
		logPath: filepath.Join(o.Dir, "daemon.log")}
	cfgPath := filepath.Join(o.Dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(Config(lab, o)), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"daemon", "--fabric", daemon.FabricRDMA, "--config", cfgPath, "--store", d.Store,
		"--socket", d.Socket, "--runtime-dir", filepath.Join(o.Dir, "run"), "--metrics-listen", "-",
		"--log-level", "debug", "--probe-timeout", o.ProbeTimeout.String()}
	if o.RemoveDevices {
		args = append(args, "--remove-devices")
	}
	enc, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	logf, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close() // the child holds its own descriptor
	if fi, err := logf.Stat(); err == nil {
		d.logFrom = fi.Size()
	}
	fmt.Fprintf(logf, "==== daemonlab: start %s: %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(args, " "))
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(exe)
	d.cmd.Env = append(os.Environ(), EnvArgs+"="+string(enc))
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	// Its own process group: a test's kill -9 hits the daemon alone.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	d.Started = time.Now()
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d.exited = make(chan struct{})
	go func() {
		d.waitErr = d.cmd.Wait()
		close(d.exited)
	}()
	d.Client = daemon.NewClient(d.Socket)
	t.Cleanup(d.cleanup)
	return d
}

// cleanup stops a daemon still running, deletes the ublk devices it served
// that are still there (a stop without RemoveDevices leaves them for
// recovery; the next test's store would bind the same ids), keeps this
// run's log under $LAB_OUT/daemonlab/ and, when the test failed, logs the
// log's tail. Cleanups run last-in first-out: a later run of the same
// test (Restart) cleans up first, so leftovers are deleted only once no
// daemon of the test runs.
func (d *Daemon) cleanup() {
	t := d.t
	if d.Running() {
		t.Logf("daemonlab cleanup: daemon pid %d still running, stopping it", d.PID())
		if err := d.Stop(); err != nil {
			t.Logf("daemonlab cleanup: %v", err)
		}
	}
	if err := deleteLeftovers(d.served); err != nil {
		t.Errorf("daemonlab cleanup: %v", err)
	}
	d.saveLog()
	if t.Failed() {
		t.Logf("daemon log (tail):\n%s", d.LogTail())
	}
}

// saveLog copies this run's log to $LAB_OUT/daemonlab/<test>-<pid>.log
// (the state dir is a t.TempDir and goes with the test).
func (d *Daemon) saveLog() {
	out := os.Getenv(labkit.EnvOut)
	if out == "" {
		return
	}
	dir := filepath.Join(out, labkit.DaemonLogDir)
	name := strings.NewReplacer("/", "_", " ", "_").Replace(d.t.Name()) + "-" + strconv.Itoa(d.PID()) + ".log"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		d.t.Logf("daemonlab: keep log: %v", err)
		return
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(d.Log()), 0o644); err != nil {
		d.t.Logf("daemonlab: keep log: %v", err)
	}
}

// deleteLeftovers stops and deletes the ublk devices of ids that still
// exist. No daemon serves them any more: a quiesced device (left for
// recovery) is failed and removed by STOP_DEV, then deleted.
func deleteLeftovers(ids []int) error {
	var left []int
	for _, id := range ids {
		if _, err := os.Stat(fmt.Sprintf("/dev/ublkc%d", id)); err == nil {
			left = append(left, id)
		}
	}
	if len(left) == 0 {
		return nil
	}
	ctl, err := ublk.NewControl(ublk.Linux{}, nil)
	if err != nil {
		return err
	}
	defer ctl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), stopWait)
	defer cancel()
	var errs []error
	for _, id := range left {
		_ = ctl.Stop(ctx, uint32(id)) // a device never started has nothing to stop
		if err := ctl.Del(ctx, uint32(id)); err != nil {
			errs = append(errs, fmt.Errorf("delete leftover ublk device %d: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// ExecTime is how long the daemon's command line takes to run `srp-mpathd
// version` in a child process: the cost of starting the process and the
// CLI, which every Start pays before the daemon's own work begins.
func ExecTime() (time.Duration, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), EnvArgs+`=["version"]`)
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("daemonlab: version: %w: %s", err, out)
	}
	return time.Since(t0), nil
}

// Restart starts a new daemon with the same options and directory (the
// previous one must have exited); each change edits the new run's options
// (for example RemoveDevices, so that the last stop of a test removes the
// devices).
func (d *Daemon) Restart(changes ...func(*Options)) *Daemon {
	d.t.Helper()
	if d.Running() {
		d.t.Fatalf("daemonlab: restart while pid %d still runs", d.cmd.Process.Pid)
	}
	o := d.opts
	for _, c := range changes {
		c(&o)
	}
	return Start(d.t, d.lab, o)
}

// PID is the daemon's process id.
func (d *Daemon) PID() int { return d.cmd.Process.Pid }

// Running reports whether the process has not exited.
func (d *Daemon) Running() bool {
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

// Exited is closed when the process has exited.
func (d *Daemon) Exited() <-chan struct{} { return d.exited }

// ExitErr is the process's exit status once it exited.
func (d *Daemon) ExitErr() error {
	<-d.exited
	return d.waitErr
}

// Stop sends SIGTERM and waits for the exit; a non-zero exit is an error.
func (d *Daemon) Stop() error { return d.signal(syscall.SIGTERM, stopWait) }

// Kill9 kills the daemon with SIGKILL, as a crash would, and waits for it.
func (d *Daemon) Kill9() error {
	err := d.signal(syscall.SIGKILL, killWait)
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ProcessState != nil {
		if ws, ok := ee.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return nil
		}
	}
	return err
}

func (d *Daemon) signal(sig syscall.Signal, limit time.Duration) error {
	if !d.Running() {
		return fmt.Errorf("daemonlab: pid %d exited before %v: %v", d.PID(), sig, d.waitErr)
	}
	if err := d.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("daemonlab: %v to pid %d: %w", sig, d.PID(), err)
	}
	select {
	case <-d.exited:
		if d.waitErr != nil {
			return fmt.Errorf("daemonlab: pid %d after %v: %w", d.PID(), sig, d.waitErr)
		}
		return nil
	case <-time.After(limit):
		_ = d.cmd.Process.Kill()
		<-d.exited
		return fmt.Errorf("daemonlab: pid %d did not exit within %v of %v (killed)", d.PID(), limit, sig)
	}
}

// call runs one control API call bounded by callWait.
func call[T any](fn func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callWait)
	defer cancel()
	return fn(ctx)
}

// Devices is GET /v1/devices.
func (d *Daemon) Devices() ([]daemon.DeviceView, error) { return call(d.Client.Devices) }

// Topology is GET /v1/topology for every device.
func (d *Daemon) Topology() ([]daemon.TopologyView, error) {
	return call(func(ctx context.Context) ([]daemon.TopologyView, error) { return d.Client.Topology(ctx, "") })
}

// Transitions is GET /v1/transitions (the newest limit, 0: all kept).
func (d *Daemon) Transitions(limit int) ([]daemon.TransitionView, error) {
	return call(func(ctx context.Context) ([]daemon.TransitionView, error) { return d.Client.Transitions(ctx, limit) })
}

// Paths lists every path of every device.
func (d *Daemon) Paths() ([]daemon.PathView, error) {
	topo, err := d.Topology()
	if err != nil {
		return nil, err
	}
	var out []daemon.PathView
	for _, dev := range topo {
		for _, g := range dev.Groups {
			out = append(out, g.Paths...)
		}
	}
	return out, nil
}

// PathOf is the path that uses srplab path i (static target "p<i>").
func PathOf(ps []daemon.PathView, i int) (daemon.PathView, bool) {
	suffix := fmt.Sprintf(":p%d", i)
	for _, p := range ps {
		if strings.HasSuffix(p.ID, suffix) || p.Target == fmt.Sprintf("p%d", i) {
			return p, true
		}
	}
	return daemon.PathView{}, false
}

// Usable counts the usable paths of ps.
func Usable(ps []daemon.PathView) int {
	n := 0
	for _, p := range ps {
		if p.Usable {
			n++
		}
	}
	return n
}

// WaitDevices waits until the daemon serves n devices, each as a block
// device with at least usable usable paths, and returns them sorted by
// dev id. It fails early when the daemon exits.
func (d *Daemon) WaitDevices(n, usable int) ([]daemon.DeviceView, error) {
	deadline := time.Now().Add(startWait)
	var last []daemon.DeviceView
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-d.exited:
			return nil, fmt.Errorf("daemonlab: daemon exited while starting: %v\n%s", d.waitErr, d.LogTail())
		default:
		}
		devs, err := d.Devices()
		last, lastErr = devs, err
		if err == nil && len(devs) == n {
			ok := true
			for _, dv := range devs {
				if dv.Block == "" || dv.PathsUsable < usable {
					ok = false
				}
			}
			if ok {
				slices.SortFunc(devs, func(a, b daemon.DeviceView) int { return cmp.Compare(a.DevID, b.DevID) })
				for _, dv := range devs {
					if _, err := os.Stat(dv.Block); err != nil {
						ok = false
					}
				}
				if ok {
					for _, dv := range devs {
						if !slices.Contains(d.served, dv.DevID) {
							d.served = append(d.served, dv.DevID)
						}
					}
					return devs, nil
				}
			}
		}
		time.Sleep(pollEvery)
	}
	return nil, fmt.Errorf("daemonlab: %d devices with %d usable paths not served within %v (last: %+v, %v)\n%s",
		n, usable, startWait, last, lastErr, d.LogTail())
}

// WaitPaths waits until cond holds for the path list, or limit passes.
func (d *Daemon) WaitPaths(limit time.Duration, cond func([]daemon.PathView) bool) ([]daemon.PathView, error) {
	deadline := time.Now().Add(limit)
	var last []daemon.PathView
	for {
		ps, err := d.Paths()
		if err == nil {
			last = ps
			if cond(ps) {
				return ps, nil
			}
		}
		if !time.Now().Before(deadline) {
			return last, fmt.Errorf("daemonlab: path condition not met within %v (last error %v)", limit, err)
		}
		select {
		case <-d.exited:
			return last, fmt.Errorf("daemonlab: daemon exited: %v", d.waitErr)
		case <-time.After(pollEvery):
		}
	}
}

// CPUTime is the daemon's user+system CPU time so far.
func (d *Daemon) CPUTime() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.PID()))
	if err != nil {
		return 0, err
	}
	// Fields after the command (which may hold spaces) start past ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("daemonlab: /proc/%d/stat: no ')'", d.PID())
	}
	f := strings.Fields(string(b[i+1:]))
	const utime, stime = 11, 12 // fields 14 and 15, counted from state (field 3)
	if len(f) <= stime {
		return 0, fmt.Errorf("daemonlab: /proc/%d/stat: %d fields", d.PID(), len(f))
	}
	u, err1 := strconv.ParseInt(f[utime], 10, 64)
	s, err2 := strconv.ParseInt(f[stime], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(u+s) * time.Second / ticksPerSecond, nil
}

// Log is this run's log (since Start wrote its header line).
func (d *Daemon) Log() string {
	b, err := os.ReadFile(d.logPath)
	if err != nil {
		return err.Error()
	}
	if d.logFrom <= int64(len(b)) {
		b = b[d.logFrom:]
	}
	return string(b)
}

// LogTail is the end of the daemon's log file (every run in Dir).
func (d *Daemon) LogTail() string {
	b, err := os.ReadFile(d.logPath)
	if err != nil {
		return err.Error()
	}
	if len(b) > logTail {
		b = b[len(b)-logTail:]
	}
	return string(b)
}

// PathsString renders paths for a scenario note.
func PathsString(ps []daemon.PathView) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "%s %s usable=%v active=%v completions=%d errors=%d reissued=%d reconnects=%d/%d failed hb=%d sent %d missed detection=%.0fms reason=%q last_error=%q; ",
			p.ID, p.State, p.Usable, p.Active, p.Completions, p.Errors, p.Reissued, p.Reconnects, p.ReconnectFailures,
			p.HeartbeatsSent, p.HeartbeatMisses, p.DetectionMs, p.Reason, p.LastError)
	}
	return b.String()
}
