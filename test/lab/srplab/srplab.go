package srplab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/srp"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
	"github.com/srp-mpathd/srp-mpathd/test/lab/labkit"
)

// Defaults of [Options].
const (
	DefaultPaths     = 2
	DefaultTargets   = 1
	DefaultLUs       = 1
	DefaultLUSize    = 64 << 20
	DefaultBlockSize = 512
	DefaultPort      = 5000
)

// Waits for the kernel. Under TCG everything is 5-10x slower than on
// hardware, so these are generous; a healthy lab needs a fraction.
const (
	portActiveWait = 30 * time.Second
	pollEvery      = 100 * time.Millisecond
)

// Options shape the lab. Zero values take the defaults above.
type Options struct {
	Paths     int   // paths (veth pairs) per target
	Targets   int   // srpt targets, each on its own target-side RDMA ports
	LUs       int   // LUs per target
	LUSize    int64 // bytes per LU, a multiple of 4 KiB
	BlockSize int   // logical block size of every LU: 512 or 4096
	Port      uint16
	// InitiatorExts are the initiator_ext values that get an ACL on every
	// path (ACL name: initiator_ext ‖ GID interface id of the initiator-side
	// port). Default {0}: the kernel's ib_srp without initiator_ext=.
	InitiatorExts []uint64
}

func (o *Options) defaults() {
	if o.Paths <= 0 {
		o.Paths = DefaultPaths
	}
	if o.Targets <= 0 {
		o.Targets = DefaultTargets
	}
	if o.LUs <= 0 {
		o.LUs = DefaultLUs
	}
	if o.LUSize <= 0 {
		o.LUSize = DefaultLUSize
	}
	if o.BlockSize <= 0 {
		o.BlockSize = DefaultBlockSize
	}
	if o.Port == 0 {
		o.Port = DefaultPort
	}
	if o.InitiatorExts == nil {
		o.InitiatorExts = []uint64{0}
	}
}

// Path is one initiator-to-target path: a veth pair with a soft-RoCE device
// on each end.
type Path struct {
	Index   int // 0.. over all targets
	Target  int // index into Lab.Targets
	IniNet  string
	TgtNet  string
	IniDev  string // rxe device on IniNet
	TgtDev  string // rxe device on TgtNet
	IniAddr netip.Addr
	TgtAddr netip.Addr
	IniGID  verbs.GID // GID index 0 of IniDev port 1
	TgtGID  verbs.GID // GID index 0 of TgtDev port 1
	// TPort is the srpt configfs tport of this path: "0x" + the 32 hex
	// digits of TgtGID.
	TPort string
}

// Dest is where an initiator connects for this path (RDMA/CM).
func (p *Path) Dest(port uint16) netip.AddrPort { return netip.AddrPortFrom(p.TgtAddr, port) }

// InitiatorPortID is the SRP initiator port id an initiator using local
// port IniDev and initiator_ext ext presents (ib_srp: ext ‖ interface id
// of GID 0). An ACL for it must exist (Options.InitiatorExts, Lab.AddACL).
func (p *Path) InitiatorPortID(ext uint64) srp.InitiatorPortID {
	return srp.InitiatorPortID{Ext: ext, GUID: p.IniGID.InterfaceID()}
}

// LU is one logical unit of a target: an LIO rd_mcp RAM disk.
type LU struct {
	Target    int
	LUN       uint64
	Backstore string // configfs directory
	Serial    string // VPD 0x80 unit serial (vpd_unit_serial)
	// NAA is the 16-byte NAA 6 (IEEE registered extended) designator LIO
	// derives from Serial for VPD 0x83, as 32 hex digits.
	NAA       string
	Size      int64
	BlockSize int
}

// WWID is the LU's id as the kernel shows it in /sys/block/sdX/device/wwid.
func (l *LU) WWID() string { return "naa." + l.NAA }

// MultipathWWID is the id scsi_id and multipath use (and srp-mpathd's
// scsi.DeviceID.WWID): "3" (NAA) + the designator.
func (l *LU) MultipathWWID() string { return "3" + l.NAA }

// Target is one srpt target: the tports of its paths, all exporting its LUs.
type Target struct {
	Index int
	Paths []int // indexes into Lab.Paths
	LUs   []LU
}

// Lab is a configured SRP fabric inside the lab VM. Fault methods return
// errors instead of failing a test, so they may be called from any
// goroutine; they must not run concurrently with each other on one path.
type Lab struct {
	Opts    Options
	Paths   []Path
	Targets []Target
	// ServiceGUID is srpt_service_guid: every srpt port's id_ext and
	// ioc_guid, so the target port id of every path.
	ServiceGUID uint64
	Port        uint16 // ib_srpt's RDMA/CM port

	t          testing.TB
	acls       map[int][]srp.InitiatorPortID // per path, the ACLs present
	mpRunning  bool                          // StartMultipath started udevd and multipathd
	kernelUsed bool                          // KernelLogin ran: ib_srp hosts may hold the rxe devices
}

// TargetPortID is the SRP target port id of every path of the lab.
func (l *Lab) TargetPortID() srp.TargetPortID {
	return srp.TargetPortID{IDExt: l.ServiceGUID, IOCGUID: l.ServiceGUID}
}

func (l *Lab) path(i int) (*Path, error) {
	if i < 0 || i >= len(l.Paths) {
		return nil, fmt.Errorf("%w: %d (lab has %d)", ErrBadPath, i, len(l.Paths))
	}
	return &l.Paths[i], nil
}

// modules the target side and the fabric need. The kernel initiator's are in
// KernelLogin.
var modules = []string{
	"configfs", "ib_core", "ib_uverbs", "rdma_cm", "rdma_ucm", "rdma_rxe",
	"target_core_mod", "ib_srpt", "veth", "sch_ingress", "cls_matchall", "act_gact",
}

// Setup builds the fabric and the target inside the lab VM: per path a veth
// pair, rxe devices on both ends, policy routing so each path's traffic
// crosses its own veth; LIO rd_mcp backstores with unit serials, ib_srpt
// listening on RDMA/CM, a tport per path with the target's LUs and the ACLs
// of opts.InitiatorExts. It registers a cleanup that removes it all. Setup
// fails t on any error; it skips t outside the lab VM.
func Setup(t testing.TB, opts Options) *Lab {
	t.Helper()
	labkit.RequireVM(t)
	opts.defaults()
	if opts.LUSize%4096 != 0 || (opts.BlockSize != 512 && opts.BlockSize != 4096) {
		t.Fatalf("srplab: LU size %d must be a multiple of 4 KiB, block size %d must be 512 or 4096", opts.LUSize, opts.BlockSize)
	}
	if err := loadModules(modules); err != nil {
		for _, m := range modules { // the precise failure, the labkit way
			labkit.RequireModule(t, m)
		}
		t.Fatal(err)
	}
	if err := mountConfigfs(); err != nil {
		t.Fatal(err)
	}
	l := &Lab{Opts: opts, Port: opts.Port, t: t, acls: map[int][]srp.InitiatorPortID{}}
	for k := range opts.Targets {
		tg := Target{Index: k}
		for j := range opts.Paths {
			i := k*opts.Paths + j
			l.Paths = append(l.Paths, newPath(i, k))
			tg.Paths = append(tg.Paths, i)
		}
		l.Targets = append(l.Targets, tg)
	}
	start := time.Now()
	t.Cleanup(l.teardownNet)
	if err := l.setupNet(); err != nil {
		t.Fatal(err)
	}
	netDone := time.Now()
	t.Cleanup(l.teardownTarget)
	if err := l.setupTarget(); err != nil {
		t.Fatal(err)
	}
	t.Logf("srplab: %d paths, %d targets x %d LUs of %d MiB (%d-byte blocks), srpt %s port %d; network %v, target %v",
		len(l.Paths), opts.Targets, opts.LUs, opts.LUSize>>20, opts.BlockSize, l.TargetPortID(), l.Port,
		netDone.Sub(start).Round(time.Millisecond), time.Since(netDone).Round(time.Millisecond))
	return l
}

// loadModules loads the modules that are not loaded yet with one modprobe:
// under TCG every exec off the 9p root costs a large fraction of a second.
func loadModules(names []string) error {
	var missing []string
	for _, m := range names {
		if _, err := os.Stat("/sys/module/" + strings.ReplaceAll(m, "-", "_")); err != nil {
			missing = append(missing, m)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, err := run("modprobe", append([]string{"-a"}, missing...)...)
	return err
}

// run runs a command; a failure carries its output.
func run(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return string(out), &OpError{Op: "run", Path: name + " " + strings.Join(args, " "),
			Err: fmt.Errorf("%w: %s", err, bytes.TrimSpace(out))}
	}
	return string(out), nil
}

// runBounded runs a command for at most limit. A command stuck in the
// kernel (D state) cannot be killed: it is left behind, and runBounded
// returns ErrTimeout. Teardown uses it, so that a wedged kernel stack costs
// limit, not the suite's whole timeout.
func runBounded(limit time.Duration, name string, args ...string) error {
	done := make(chan error, 1)
	go func() {
		_, err := run(name, args...)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		return &OpError{Op: "run", Path: name + " " + strings.Join(args, " "), Err: fmt.Errorf("%w after %v", ErrTimeout, limit)}
	}
}

// runAll runs commands in order and stops at the first failure.
func runAll(cmds [][]string) error {
	for _, c := range cmds {
		if _, err := run(c[0], c[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// writeFile writes one value to a sysfs or configfs attribute.
func writeFile(path, value string) error {
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		return &OpError{Op: "write " + strconv.Quote(value) + " to", Path: path, Err: err}
	}
	return nil
}

func readTrim(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", &OpError{Op: "read", Path: path, Err: err}
	}
	return strings.TrimSpace(string(b)), nil
}

func mkdir(path string) error {
	if err := os.Mkdir(path, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return &OpError{Op: "mkdir", Path: path, Err: err}
	}
	return nil
}

func symlink(target, link string) error {
	if err := os.Symlink(target, link); err != nil {
		return &OpError{Op: "symlink " + target + " as", Path: link, Err: err}
	}
	return nil
}

// waitFor polls cond until it holds or limit passes. The lab watches kernel
// state that offers no event to block on (sysfs attributes, configfs).
func waitFor(what string, limit time.Duration, cond func() bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return &OpError{Op: "wait", Path: what, Err: fmt.Errorf("%w after %v", ErrTimeout, limit)}
		case <-tick.C:
		}
	}
	return nil
}

// portActive reports whether port 1 of RDMA device dev is ACTIVE.
func portActive(dev string) bool {
	b, err := os.ReadFile(filepath.Join("/sys/class/infiniband", dev, "ports/1/state"))
	return err == nil && bytes.Contains(b, []byte("ACTIVE"))
}

func readGID(dev string) (verbs.GID, error) {
	s, err := readTrim(filepath.Join("/sys/class/infiniband", dev, "ports/1/gids/0"))
	if err != nil {
		return verbs.GID{}, err
	}
	return verbs.ParseGID(s)
}

// mountConfigfs mounts configfs unless it is: the lab guest mounts it at
// boot, which fails while configfs is a module nobody loaded yet.
func mountConfigfs() error {
	if _, err := os.Stat(configfsTarget); err == nil {
		return nil
	}
	mounts, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return &OpError{Op: "read", Path: "/proc/self/mounts", Err: err}
	}
	if !strings.Contains(string(mounts), " /sys/kernel/config configfs ") {
		if _, err := run("mount", "-t", "configfs", "configfs", "/sys/kernel/config"); err != nil {
			return err
		}
	}
	if _, err := os.Stat(configfsTarget); err != nil {
		return &OpError{Op: "stat", Path: configfsTarget, Err: err}
	}
	return nil
}
