package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"

	"github.com/srp-mpathd/srp-mpathd/internal/daemon"
	"github.com/srp-mpathd/srp-mpathd/internal/store"
)

func TestMain(m *testing.M) {
	// os/signal starts its watcher goroutine on first use; start it here,
	// outside any synctest bubble (the demo command uses signals).
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGUSR2)
	signal.Stop(c)
	os.Exit(m.Run())
}

// simDaemon runs a daemon on the simulated fabric, in process, and returns
// its control socket.
func simDaemon(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	d, err := daemon.New(daemon.Options{
		Fabric: daemon.FabricSim, StorePath: filepath.Join(dir, "store.db"), SocketPath: filepath.Join(dir, "s.sock"),
		RuntimeDir: dir, MetricsListen: "-", Notify: func(string) error { return nil },
	}, "test")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	select {
	case <-d.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("daemon: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("daemon stopped with %v", err)
		}
	})
	return d.SocketPath()
}

// runJSON runs a command that must succeed and decodes its --json output.
func runJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out, stderr, code := run(t, args...)
	if code != ExitOK {
		t.Fatalf("%v: exit %d: %s", args, code, stderr)
	}
	reflect.ValueOf(v).Elem().SetZero() // omitted fields must not keep old values
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("%v: output is not JSON: %v\n%s", args, err, out)
	}
}

// runFail runs a command that must fail with code and a message naming want.
func runFail(t *testing.T, code int, want string, args ...string) {
	t.Helper()
	_, stderr, got := run(t, args...)
	if got != code {
		t.Errorf("%v: exit %d, want %d (stderr %q)", args, got, code, stderr)
	}
	if !strings.Contains(stderr, want) {
		t.Errorf("%v: stderr %q does not name %q", args, stderr, want)
	}
}

func TestCommandsAgainstSimDaemon(t *testing.T) {
	sock := simDaemon(t)
	s := "--socket=" + sock

	var st daemon.Status
	runJSON(t, &st, "status", "--json", s)
	if st.Fabric != daemon.FabricSim || st.Devices != daemon.SimTargets || st.PathsRunning != daemon.SimTargets*daemon.SimPathsPerTarget {
		t.Fatalf("status: %+v", st)
	}
	if out, _, code := run(t, "status", s); code != ExitOK || !strings.Contains(out, "fabric:") {
		t.Errorf("status: exit %d\n%s", code, out)
	}

	var devs []daemon.DeviceView
	runJSON(t, &devs, "devices", "--json", s)
	if len(devs) != daemon.SimTargets || devs[0].Name != "ublkb0" || devs[0].WWID == "" || devs[0].SizeBytes == 0 {
		t.Fatalf("devices: %+v", devs)
	}
	if out, _, code := run(t, "devices", s); code != ExitOK || !strings.Contains(out, devs[0].WWID) {
		t.Errorf("devices: exit %d\n%s", code, out)
	}

	var topo []daemon.TopologyView
	runJSON(t, &topo, "paths", "--json", s)
	if len(topo) != daemon.SimTargets {
		t.Fatalf("paths: %d devices", len(topo))
	}
	runJSON(t, &topo, "paths", "ublkb1", "--json", s)
	if len(topo) != 1 || topo[0].Name != "ublkb1" || len(topo[0].Groups) == 0 {
		t.Fatalf("paths ublkb1: %+v", topo)
	}
	path := topo[0].Groups[0].Paths[0]
	if path.State != "running" || path.ID == "" {
		t.Fatalf("path: %+v", path)
	}
	out, _, code := run(t, "paths", "/dev/ublkb1", s)
	if code != ExitOK || !strings.Contains(out, path.ID) || !strings.Contains(out, "running") || !strings.Contains(out, "prio=") {
		t.Errorf("paths /dev/ublkb1: exit %d\n%s", code, out)
	}
	runFail(t, ExitUsage, `unknown device "ublkb9"`, "paths", "ublkb9", s)

	var tgts []daemon.TargetView
	runJSON(t, &tgts, "targets", "--json", s)
	if len(tgts) != daemon.SimTargets || len(tgts[0].Ports) != daemon.SimPathsPerTarget {
		t.Fatalf("targets: %+v", tgts)
	}
	if out, _, code := run(t, "targets", s); code != ExitOK || !strings.Contains(out, "tgtA") || !strings.Contains(out, "discovered") {
		t.Errorf("targets: exit %d\n%s", code, out)
	}
	var disc daemon.DiscoveryView
	runJSON(t, &disc, "targets", "discovered", "--json", s)
	if !disc.Active || len(disc.Targets) != daemon.SimTargets*daemon.SimPathsPerTarget {
		t.Fatalf("targets discovered: %+v", disc)
	}
	if out, _, code := run(t, "targets", "discovered", s); code != ExitOK || !strings.Contains(out, "tgtA.1") || !strings.Contains(out, "id_ext=") {
		t.Errorf("targets discovered: exit %d\n%s", code, out)
	}
	if out, _, code := run(t, "targets", "rescan", s); code != ExitOK || !strings.Contains(out, "rescan requested") {
		t.Errorf("targets rescan: exit %d\n%s", code, out)
	}

	// Policy: get, set (persisted and applied), refused values.
	var pol daemon.PolicyView
	runJSON(t, &pol, "policy", "get", "ublkb0", "--json", s)
	if pol.Selector != "service-time" || pol.Override.Selector != "" {
		t.Fatalf("policy get: %+v", pol)
	}
	runJSON(t, &pol, "policy", "set", "ublkb0", "selector=round-robin", "no_path_retry=30", "--json", s)
	if pol.Selector != "round-robin" || pol.Override.Selector != "round-robin" || pol.NoPathRetry != "30s" {
		t.Fatalf("policy set: %+v", pol)
	}
	runJSON(t, &pol, "policy", "get", "ublkb0", "--json", s)
	if pol.Selector != "round-robin" {
		t.Fatalf("policy not kept: %+v", pol)
	}
	runFail(t, ExitUsage, "selector", "policy", "set", "ublkb0", "selector=fastest", s)
	runFail(t, ExitUsage, `unknown key "speed"`, "policy", "set", "ublkb0", "speed=11", s)
	runFail(t, ExitUsage, `not KEY=VALUE`, "policy", "set", "ublkb0", "selector", s)
	runFail(t, ExitUsage, `unknown device "nope"`, "policy", "get", "nope", s)
	runJSON(t, &pol, "policy", "set", "ublkb0", "selector=default", "--json", s)
	if pol.Selector != "service-time" || pol.Override.Selector != "" {
		t.Fatalf("policy reset: %+v", pol)
	}

	// Path admin.
	var pr daemon.PathResult
	runJSON(t, &pr, "path", "fail", path.ID, "--reason", "maintenance", "--json", s)
	if pr.Path != path.ID || pr.State == "running" {
		t.Fatalf("path fail: %+v", pr)
	}
	runJSON(t, &topo, "paths", "ublkb1", "--json", s)
	for _, g := range topo[0].Groups {
		for _, p := range g.Paths {
			if p.ID == path.ID && (p.State == "running" || !p.AdminDown || !strings.Contains(p.Reason, "maintenance")) {
				t.Errorf("failed path: %+v", p)
			}
		}
	}
	if out, _, code := run(t, "path", "reinstate", path.ID, s); code != ExitOK || !strings.Contains(out, path.ID) {
		t.Errorf("path reinstate: exit %d\n%s", code, out)
	}
	runFail(t, ExitUsage, `unknown path "ublkb1:tgtZ.9"`, "path", "fail", "ublkb1:tgtZ.9", s)
	runFail(t, ExitUsage, "accepts 1 arg", "path", "fail", s)
}

func TestNoDaemon(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	for _, args := range [][]string{{"status"}, {"devices", "--json"}, {"paths"}, {"targets"}, {"policy", "get", "ublkb0"}, {"path", "fail", "x"}} {
		runFail(t, ExitNoDaemon, "could not be reached", append(args, "--socket", sock)...)
	}
}

func TestConfigCheck(t *testing.T) {
	var res configCheckResult
	runJSON(t, &res, "config", "check", "testdata/good.yaml", "--json")
	if !res.OK || len(res.Problems) != 0 {
		t.Fatalf("good config: %+v", res)
	}
	out, stderr, code := run(t, "config", "check", "testdata/bad.yaml", "--json")
	if code != ExitUsage {
		t.Fatalf("bad config: exit %d: %s", code, stderr)
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.OK || len(res.Problems) < 2 {
		t.Fatalf("bad config: %v %+v", err, res)
	}
	for _, want := range []string{"selector", "fast_io_fail_tmo"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("bad config: stderr does not name %s: %s", want, stderr)
		}
	}
	runFail(t, ExitFailure, "no such file", "config", "check", "testdata/missing.yaml")
}

func TestStoreCheckDump(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "store.db")
	st, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Bind("naa.600140512345678", store.Identity{Capacity: 1 << 20, LogicalBlockSize: 512, PhysicalBlockSize: 512, Vendor: "LIO-ORG", Product: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	var res storeCheckResult
	runJSON(t, &res, "store", "check", "--store", path, "--json")
	if !res.OK || res.Identities != 1 {
		t.Fatalf("store check: %+v", res)
	}
	var dump store.DumpData
	runJSON(t, &dump, "store", "dump", "--store", path, "--json")
	if len(dump.Identities) != 1 || dump.Identities[0].WWID != "naa.600140512345678" {
		t.Fatalf("store dump: %+v", dump)
	}
	if out, _, code := run(t, "store", "dump", "--store", path); code != ExitOK || !strings.Contains(out, "ublkb0") {
		t.Errorf("store dump: exit %d\n%s", code, out)
	}
	junk := filepath.Join(dir, "junk.db")
	if err := os.WriteFile(junk, bytes.Repeat([]byte("not a database "), 512), 0o600); err != nil {
		t.Fatal(err)
	}
	runFail(t, ExitFailure, "junk.db", "store", "check", "--store", junk)
	runFail(t, ExitFailure, "no such file", "store", "check", "--store", filepath.Join(dir, "missing.db"))
}

func TestMan(t *testing.T) {
	out, _, code := run(t, "man", "paths")
	if code != ExitOK || !strings.Contains(out, `.TH "SRP-MPATHD-PATHS" 8`) || !strings.Contains(out, `\-\-json`) || !strings.Contains(out, "Exit codes") {
		t.Fatalf("man paths: exit %d\n%s", code, out)
	}
	dir := t.TempDir()
	if _, stderr, code := run(t, "man", "--dir", dir); code != ExitOK {
		t.Fatalf("man --dir: exit %d: %s", code, stderr)
	}
	for _, page := range []string{"srp-mpathd.8", "srp-mpathd-daemon.8", "srp-mpathd-policy-set.8", "srp-mpathd-store-dump.8"} {
		if _, err := os.Stat(filepath.Join(dir, page)); err != nil {
			t.Error(err)
		}
	}
	runFail(t, ExitUsage, `no command "bogus"`, "man", "bogus")
}

func TestHelpDocumentsExitCodes(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"paths", "--help"}, {"policy", "set", "--help"}} {
		out, _, code := run(t, args...)
		if code != ExitOK || !strings.Contains(out, "Exit codes:") || !strings.Contains(out, "3  the daemon's control socket") {
			t.Errorf("%v: exit codes not documented (exit %d)", args, code)
		}
	}
}

func TestDemoJSON(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rep demoJSON
		runJSON(t, &rep, "demo", "--sim", "--duration", "9s", "--json", "--depth", "2", "--link-latency", "1ms")
		if rep.FailedIOs != 0 || len(rep.Scenarios) != 3 {
			t.Fatalf("demo: %+v", rep)
		}
		for i, name := range []string{"linkdown", "blackhole", "dreq"} {
			if sc := rep.Scenarios[i]; sc.Name != name || sc.IOs == 0 || sc.Errors != 0 {
				t.Errorf("scenario %d: %+v", i, sc)
			}
		}
	})
	runFail(t, ExitUsage, "--sim", "demo")
	runFail(t, ExitUsage, "at least", "demo", "--sim", "--duration", "1s")
}
