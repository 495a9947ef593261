package srplab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The kernel's SRP stack: ib_srp logged in per path, dm-multipath on top.
// It is the baseline srp-mpathd is measured against in the same VM.

// kernelModules are the kernel initiator's modules. Nothing autoloads in the
// lab: without sd_mod an SRP LU is a scsi device with no /dev/sdX.
var kernelModules = []string{
	"sd_mod", "sg", "scsi_transport_srp", "ib_srp", "scsi_dh_alua",
	"dm_mod", "dm_multipath", "dm_service_time", "dm_round_robin",
}

const (
	diskWait      = 60 * time.Second
	multipathWait = 60 * time.Second
	udevSettle    = "30"
	// teardownCmdLimit bounds each teardown command of the kernel stack.
	teardownCmdLimit = 20 * time.Second
	mpConf           = "/etc/multipath.conf"
	// multipathConf: multipath-tools defaults with a 1 s path checker and an
	// explicit active/active entry for LIO (the testbed recipe), so results
	// do not depend on the built-in hardware table. Map names are WWIDs.
	multipathConf = `defaults {
    user_friendly_names no
    find_multipaths off
    polling_interval 1
    max_polling_interval 5
}
blacklist {
    devnode "^(vd|nullb|ublkb|md|loop|ram)"
}
devices {
    device {
        vendor "LIO-ORG"
        product ".*"
        hardware_handler "0"
        prio const
        detect_prio no
        path_grouping_policy multibus
        path_selector "service-time 0"
        path_checker tur
        failback immediate
        no_path_retry 12
    }
}
`
	// MultipathSettings describes multipathConf for a scenario's notes.
	MultipathSettings = "multibus, service-time 0, tur checker, polling_interval 1, failback immediate, no_path_retry 12"
)

// KernelPath is one login of the kernel's ib_srp on one path.
type KernelPath struct {
	Path  int
	Host  int               // SCSI host number
	RPort string            // /sys/class/srp_remote_ports/port-<host>:1
	Disks map[string]string // LU NAA -> sd device name ("sdb")
}

// Disk returns /dev/sdX of lu on this path.
func (k *KernelPath) Disk(lu LU) string { return "/dev/" + k.Disks[lu.NAA] }

// RPortAttr reads an attribute of the SRP remote port (state,
// fast_io_fail_tmo, dev_loss_tmo, reconnect_delay, failed_reconnects).
func (k *KernelPath) RPortAttr(name string) string {
	s, err := readTrim(filepath.Join(k.RPort, name))
	if err != nil {
		return err.Error()
	}
	return s
}

// KernelLogin logs the kernel's ib_srp in on path i over RDMA/CM (add_target
// with src= and dest=, initiator_ext 0, the default timeouts) and waits for
// a SCSI disk per LU of the path's target, each checked against the LU's
// WWID. extra is appended to the add_target options ("" for none). A
// cleanup deletes the remote port.
func (l *Lab) KernelLogin(i int, extra string) (*KernelPath, error) {
	p, err := l.path(i)
	if err != nil {
		return nil, err
	}
	if err := loadModules(kernelModules); err != nil {
		return nil, err
	}
	opts := fmt.Sprintf("id_ext=%016x,ioc_guid=%016x,dest=%s,src=%s", l.ServiceGUID, l.ServiceGUID, p.Dest(l.Port), p.IniAddr)
	if extra != "" {
		opts += "," + extra
	}
	if err := writeFile(fmt.Sprintf("/sys/class/infiniband_srp/srp-%s-1/add_target", p.IniDev), opts); err != nil {
		return nil, err
	}
	l.kernelUsed = true
	k := &KernelPath{Path: i, Host: -1, Disks: map[string]string{}}
	if err := waitFor("SCSI host of "+p.IniDev, diskWait, func() bool { k.Host = hostOf(p.IniDev); return k.Host >= 0 }); err != nil {
		return nil, err
	}
	k.RPort = fmt.Sprintf("/sys/class/srp_remote_ports/port-%d:1", k.Host)
	l.t.Cleanup(func() {
		if err := writeFile(filepath.Join(k.RPort, "delete"), "1"); err != nil && !errors.Is(err, os.ErrNotExist) {
			l.t.Logf("srplab: delete %s: %v", k.RPort, err)
		}
	})
	lus := l.Targets[p.Target].LUs
	var wwids map[string]string
	err = waitFor(fmt.Sprintf("%d disks on host%d", len(lus), k.Host), diskWait, func() bool {
		wwids = disksOf(k.Host)
		return len(wwids) >= len(lus)
	})
	if err != nil {
		return nil, fmt.Errorf("%w (have %v)", err, wwids)
	}
	for sd, wwid := range wwids {
		for _, lu := range lus {
			if wwid == lu.WWID() {
				k.Disks[lu.NAA] = sd
			}
		}
	}
	if len(k.Disks) != len(lus) {
		return nil, &OpError{Op: "match WWIDs", Path: fmt.Sprintf("host%d", k.Host),
			Err: fmt.Errorf("disks %v, want one for each LU of target %d (e.g. %s)", wwids, p.Target, lus[0].WWID())}
	}
	return k, nil
}

// hostOf returns the SCSI host whose local_ib_device is dev, or -1.
func hostOf(dev string) int {
	hosts, _ := filepath.Glob("/sys/class/scsi_host/host*")
	for _, h := range hosts {
		if s, err := readTrim(filepath.Join(h, "local_ib_device")); err == nil && s == dev {
			var n int
			if _, err := fmt.Sscanf(filepath.Base(h), "host%d", &n); err == nil {
				return n
			}
		}
	}
	return -1
}

// disksOf maps the block devices of SCSI host n to their WWIDs.
func disksOf(n int) map[string]string {
	out := map[string]string{}
	blocks, _ := filepath.Glob(fmt.Sprintf("/sys/class/scsi_host/host%d/device/target*/*/block/*", n))
	for _, b := range blocks {
		if w, err := readTrim(filepath.Join(b, "device/wwid")); err == nil {
			out[filepath.Base(b)] = w
		}
	}
	return out
}

// StartMultipath starts udevd (multipathd needs it for WWIDs) and
// multipathd with multipathConf, and waits until the map of lu has want
// active paths. It returns the map's device, /dev/mapper/<WWID>. A cleanup
// stops multipathd, flushes the maps and stops udevd.
func (l *Lab) StartMultipath(lu LU, want int) (string, error) {
	if !l.mpRunning {
		if err := os.WriteFile(mpConf, []byte(multipathConf), 0o644); err != nil {
			return "", &OpError{Op: "write", Path: mpConf, Err: err}
		}
		if err := runAll([][]string{
			{"/lib/systemd/systemd-udevd", "--daemon", "--resolve-names=never"},
			{"udevadm", "trigger", "--action=add", "--subsystem-match=block", "--subsystem-match=scsi"},
			{"udevadm", "settle", "-t", udevSettle},
			{"multipathd"},
		}); err != nil {
			return "", err
		}
		l.mpRunning = true
		l.t.Cleanup(func() {
			for _, c := range [][]string{{"multipathd", "shutdown"}, {"multipath", "-F"}, {"udevadm", "control", "--exit"}} {
				if err := runBounded(teardownCmdLimit, c[0], c[1:]...); err != nil {
					l.t.Logf("srplab teardown: %v", err)
				}
			}
		})
	}
	dev := "/dev/mapper/" + lu.MultipathWWID()
	err := waitFor(fmt.Sprintf("multipath map %s with %d active paths", lu.MultipathWWID(), want), multipathWait, func() bool {
		if _, err := os.Stat(dev); err != nil {
			return false
		}
		return l.MultipathActive(lu) >= want
	})
	if err != nil {
		out, _ := exec.Command("multipath", "-ll").CombinedOutput()
		return "", fmt.Errorf("%w\nmultipath -ll:\n%s", err, out)
	}
	return dev, nil
}

// MultipathActive counts lu's paths multipathd reports as active, ready and
// running.
func (l *Lab) MultipathActive(lu LU) int {
	out, err := exec.Command("multipath", "-ll", lu.MultipathWWID()).CombinedOutput()
	if err != nil {
		return 0
	}
	return strings.Count(string(out), "active ready running")
}

// MultipathState is `multipath -ll` of lu, for notes.
func (l *Lab) MultipathState(lu LU) string {
	out, _ := exec.Command("multipath", "-ll", lu.MultipathWWID()).CombinedOutput()
	return strings.TrimSpace(string(out))
}

// Mark writes "srplab: <msg>" to the kernel log, so KernelLog can cut the
// log at that point.
func Mark(msg string) error { return writeFile("/dev/kmsg", "srplab: "+msg) }

// KernelLog returns the kernel log lines after the last Mark(since) (all
// of it when since is "" or not found) that contain one of words (all lines
// when words is empty).
func KernelLog(since string, words ...string) string {
	out, err := exec.Command("dmesg").CombinedOutput()
	if err != nil {
		return fmt.Sprintf("dmesg: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if since != "" {
		for i := len(lines) - 1; i >= 0; i-- {
			if strings.Contains(lines[i], "srplab: "+since) {
				lines = lines[i:]
				break
			}
		}
	}
	if len(words) == 0 {
		return strings.Join(lines, "\n")
	}
	var keep []string
	for _, ln := range lines {
		for _, w := range words {
			if strings.Contains(ln, w) {
				keep = append(keep, ln)
				break
			}
		}
	}
	return strings.Join(keep, "\n")
}
