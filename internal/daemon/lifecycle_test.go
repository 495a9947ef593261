package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/config"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs/rdma"
)

func TestSocketModeAndGroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("socket ownership test skipped: chown needs root")
	}
	td := startDaemon(t, func(o *Options) { o.SocketGroup = "12345" })
	fi, err := os.Stat(td.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != socketMode {
		t.Errorf("socket mode %v, want %v", fi.Mode().Perm(), os.FileMode(socketMode))
	}
	if uid, gid := fileOwner(fi); uid != 0 || gid != 12345 {
		t.Errorf("socket owned by %d:%d, want 0:12345", uid, gid)
	}
}

func TestSecondDaemonRefused(t *testing.T) {
	td := startDaemon(t, nil)
	d2, err := New(Options{Fabric: FabricSim, StorePath: filepath.Join(t.TempDir(), "s.db"), SocketPath: td.SocketPath(),
		RuntimeDir: t.TempDir(), MetricsListen: "-", Notify: func(string) error { return nil }}, "test")
	if err != nil {
		t.Fatal(err)
	}
	err = d2.Run(context.Background())
	if !errors.Is(err, ErrDaemonRunning) {
		t.Fatalf("second daemon on the same socket: %v, want ErrDaemonRunning", err)
	}
	// The first one still answers.
	if _, err := NewClient(td.SocketPath()).Status(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestBadOptions(t *testing.T) {
	for _, o := range []Options{{Fabric: "infiniband"}, {MetricsListen: "nowhere"}} {
		if _, err := New(o, "test"); !errors.Is(err, ErrBadOptions) {
			t.Errorf("%+v: %v, want ErrBadOptions", o, err)
		}
	}
	if _, err := rdma.Open(nil); err == nil {
		t.Skip("rdma-core sees an RDMA stack on this host: the unavailable case cannot be shown")
	}
	d, err := New(Options{Fabric: FabricRDMA, StorePath: filepath.Join(t.TempDir(), "s.db"), Notify: func(string) error { return nil }}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Run(context.Background()); !errors.Is(err, ErrFabricUnavailable) {
		t.Fatalf("rdma fabric: %v, want ErrFabricUnavailable", err)
	}
}

// TestDeviceFilesAndStop: the udev files exist while the daemon runs and
// after a graceful stop (devices stay recoverable); --remove-devices
// removes them. sd_notify got READY then STOPPING.
func TestDeviceFilesAndStop(t *testing.T) {
	for _, remove := range []bool{false, true} {
		td := startDaemon(t, func(o *Options) { o.RemoveDevices, o.SimWorkload, o.SimLinkLatency = remove, true, time.Millisecond })
		file := filepath.Join(td.dir, "devices", "ublkb0")
		waitFor(t, td.Daemon, 10*time.Second, "I/O counted in the device view", func() bool {
			v := td.Devices()
			return len(v) > 0 && v[0].IOCompleted > 0
		})
		if v := td.Devices()[0]; v.IOFailed != 0 || v.Lost {
			t.Errorf("device view %+v: failed I/O or lost on a healthy fabric", v)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(b), "SRP_MPATHD_WWID=36001405") || !strings.Contains(string(b), "SRP_MPATHD_PRODUCT=srp-mpathd_sim") {
			t.Errorf("udev file:\n%s", b)
		}
		td.stop(t)
		_, err = os.Stat(file)
		if remove != errors.Is(err, os.ErrNotExist) {
			t.Errorf("remove-devices=%v: udev file after stop: %v", remove, err)
		}
		n := td.notified()
		if len(n) != 2 || !strings.HasPrefix(n[0], "READY=1") || n[1] != "STOPPING=1" {
			t.Errorf("sd_notify: %q", n)
		}
		for _, dev := range td.devs {
			if dev.wl.failed.Load() != 0 {
				t.Errorf("%s: I/O failed during a graceful stop: %v", dev.name, dev.wl.errors)
			}
		}
	}
}

// TestIdentityKeptAcrossRestart: the same LU gets the same device id from
// the store; an admin-failed path stays failed after a restart.
func TestIdentityKeptAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "keep.db")
	td := startDaemon(t, func(o *Options) { o.StorePath = store })
	before := td.Devices()
	if _, err := td.FailPath("ublkb1:tgtB.2", "kept"); err != nil {
		t.Fatal(err)
	}
	td.stop(t)
	td2 := startDaemon(t, func(o *Options) { o.StorePath = store })
	after := td2.Devices()
	for i := range before {
		if before[i].Name != after[i].Name || before[i].WWID != after[i].WWID {
			t.Errorf("device %d: %s/%s became %s/%s", i, before[i].Name, before[i].WWID, after[i].Name, after[i].WWID)
		}
	}
	topo, err := td2.Topology("ublkb1")
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range topo[0].Groups {
		for _, p := range g.Paths {
			if p.ID == "ublkb1:tgtB.2" && (!p.AdminDown || p.State == "running") {
				t.Errorf("admin-failed path after restart: %+v", p)
			}
		}
	}
}

// TestReload: a reload applies the configuration read again to every
// device; a refused configuration changes nothing.
func TestReload(t *testing.T) {
	var next *config.Config
	var nextErr error
	td := startDaemon(t, func(o *Options) {
		o.ReloadConfig = func() (*config.Config, error) { return next, nextErr }
	})
	c := config.Default()
	c.Defaults.Device.Selector = config.SelectorRoundRobin
	c.Defaults.Path.ReconnectDelay = config.Timeout(3 * time.Second)
	next = c
	if err := td.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := td.keepInterval(); got != 3*time.Second {
		t.Errorf("lost paths probed every %v after a reload to reconnect_delay 3s", got)
	}
	for _, dev := range td.devs {
		if got := dev.pd.Policy().Selector.String(); got != "round-robin" {
			t.Errorf("%s: selector %s after reload", dev.name, got)
		}
	}
	next, nextErr = nil, &config.Error{File: "x.yaml", Problems: []*config.FieldError{{Path: "defaults.selector", Msg: "bad"}}}
	if err := td.Reload(); err == nil || !strings.Contains(err.Error(), "defaults.selector") {
		t.Fatalf("bad reload: %v", err)
	}
	for _, dev := range td.devs {
		if got := dev.pd.Policy().Selector.String(); got != "round-robin" {
			t.Errorf("%s: selector %s after a refused reload", dev.name, got)
		}
	}
}
