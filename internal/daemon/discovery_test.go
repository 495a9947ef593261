package daemon

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/config"
	"github.com/srp-mpathd/srp-mpathd/internal/fsm"
	"github.com/srp-mpathd/srp-mpathd/internal/paths"
	"github.com/srp-mpathd/srp-mpathd/internal/srp/discovery"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs/sim"
)

// runSimDaemon runs a daemon core (no listeners) on the simulated fabric
// until the test ends, inside the caller's synctest bubble or not; edit
// may change the options. It returns once the daemon is ready.
func runSimDaemon(t *testing.T, edit func(*Options)) *Daemon {
	t.Helper()
	return startDaemon(t, func(o *Options) {
		o.NoListeners = true
		if edit != nil {
			edit(o)
		}
	}).Daemon
}

// pathIDs lists every path of every device, sorted.
func pathIDs(d *Daemon) []string {
	var ids []string
	for _, dev := range d.devices() {
		for _, p := range dev.pd.Snapshot().Paths {
			ids = append(ids, p.ID+" "+p.State.String())
		}
	}
	slices.Sort(ids)
	return ids
}

// partitionTopology: two initiator ports (subnets), each with three
// partitions (0xffff, 0x8001, 0x8002 on port 1, 0x8001 at index 3;
// 0xffff, 0x8001 and 0x8003 on port 2) besides a limited 0x0005, and
// targets in various partitions.
func partitionTopology() SimTopology {
	both := func(a, b []uint16) []SimPortSpec {
		return []SimPortSpec{{Subnet: 0, PKeys: a}, {Subnet: 1, PKeys: b}}
	}
	return SimTopology{
		InitiatorPKeys: [][]uint16{{0xffff, 0x8002, 0x0005, 0x8001}, {0xffff, 0x8001, 0x0005, 0x8003}},
		Targets: []SimTargetSpec{
			{Name: "tdef", Ports: both([]uint16{0xffff}, []uint16{0xffff})},
			// Reachable only through 0x8001: index 3 on port 1, 1 on port 2.
			{Name: "t8001", Ports: both([]uint16{0x8001}, []uint16{0x8001})},
			// 0x8002 on subnet A; on B a partition the initiator lacks.
			{Name: "t8002", Ports: both([]uint16{0x8002}, []uint16{0x8004})},
			// A limited member meets a limited member: nothing shared.
			{Name: "tlim", Ports: both([]uint16{0x0005}, []uint16{0x0005})},
			// Partial member of 0x8003 on B only, 0x8009 on A.
			{Name: "t8003", Ports: both([]uint16{0x8009}, []uint16{0x0003})},
		},
	}
}

// Done-when (daemon level): discovery across 2 ports × 3 P_Keys logs in
// to exactly the target ports each partition allows, and the
// configuration's pkeys and rules restrict it. The engine-level proof of
// the same layout is internal/srp/discovery TestDiscoverPartitions.
func TestDiscoveryPartitions(t *testing.T) {
	cases := []struct {
		name string
		edit func(*config.Config)
		want []string
	}{
		{"all", nil, []string{
			"ublkb0:tdef.1 running", "ublkb0:tdef.2 running",
			"ublkb1:t8001.1 running", "ublkb1:t8001.2 running",
			"ublkb2:t8002.1 running",
			"ublkb3:t8003.2 running",
		}},
		{"pkeys", func(c *config.Config) { c.Discovery.PKeys = []config.PKey{0x8001} }, []string{
			"ublkb0:t8001.1 running", "ublkb0:t8001.2 running",
		}},
		{"rules", func(c *config.Config) {
			c.Discovery.Rules = discovery.Rules{mustRule(t, "d pkey=8001"), mustRule(t, "a pkey=ffff"), mustRule(t, "d")}
		}, []string{"ublkb0:tdef.1 running", "ublkb0:tdef.2 running"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := config.Default()
				if tc.edit != nil {
					tc.edit(cfg)
				}
				d := runSimDaemon(t, func(o *Options) { o.SimTopology, o.Config = partitionTopology(), cfg })
				got := pathIDs(d)
				if !slices.Equal(got, tc.want) {
					t.Fatalf("paths:\n got %q\nwant %q", got, tc.want)
				}
				if tc.name == "all" {
					// t8001 was found through index 3 on port 1.
					for _, tg := range d.disc.eng.Targets() {
						if tg.PKey == 0x8001 && tg.Local.Port == 1 && tg.PKeyIndex != 3 {
							t.Fatalf("0x8001 at index %d on port 1, the topology puts it at 3", tg.PKeyIndex)
						}
					}
				}
			})
		})
	}
}

func mustRule(t *testing.T, s string) discovery.Rule {
	t.Helper()
	r, err := discovery.ParseRule(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// waitFor polls cond every millisecond of simulated time until it holds or
// limit passes; it returns the simulated time it took.
func waitFor(t *testing.T, d *Daemon, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %v (paths %q)", what, limit, pathIDs(d))
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

// Done-when: a target appearing (trap 64) is logged in — a path running,
// its device served with I/O completing — within one scan interval. tgtB
// starts out of service on both subnets; the SM brings its ports in.
func TestDiscoveryTrap64LogsIn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const rescan = 60 * time.Second
		topo := SimTopology{
			InitiatorPKeys: [][]uint16{nil, nil},
			Targets: []SimTargetSpec{
				{Name: "tgtA", Ports: []SimPortSpec{{Subnet: 0}, {Subnet: 1}}},
				{Name: "tgtB", Ports: []SimPortSpec{{Subnet: 0, OutOfService: true}, {Subnet: 1, OutOfService: true}}},
			},
		}
		cfg := config.Default()
		cfg.Discovery.RescanInterval = config.Timeout(rescan)
		d := runSimDaemon(t, func(o *Options) {
			o.SimTopology, o.Config, o.SimWorkload, o.SimLinkLatency = topo, cfg, true, 100*time.Microsecond
		})
		if got := pathIDs(d); !slices.Equal(got, []string{"ublkb0:tgtA.1 running", "ublkb0:tgtA.2 running"}) {
			t.Fatalf("paths before trap 64: %q", got)
		}
		tgtB := d.Sim().Targets[1]
		start := time.Now()
		if err := tgtB.SetInService(0, true); err != nil {
			t.Fatal(err)
		}
		var devB *device
		took := waitFor(t, d, rescan, "tgtB's device with a running path and I/O done", func() bool {
			for _, dev := range d.devices() {
				for _, p := range dev.pd.Snapshot().Paths {
					if p.Target == "tgtB.1" && p.State == fsm.Running && dev.wl.done.Load() > 0 {
						devB = dev
						return true
					}
				}
			}
			return false
		})
		t.Logf("trap 64 → path running and I/O completing on the new device: %v simulated (rescan interval %v)", took, rescan)
		if took >= rescan {
			t.Fatalf("logged in after %v, want within one scan interval (%v)", took, rescan)
		}
		// The second port joins the same device as another path.
		if err := tgtB.SetInService(1, true); err != nil {
			t.Fatal(err)
		}
		waitFor(t, d, rescan, "tgtB.2 joins", func() bool {
			return slices.Contains(pathIDs(d), "ublkb1:tgtB.2 running")
		})
		if n := len(d.devices()); n != 2 {
			t.Fatalf("%d devices, want 2", n)
		}
		if time.Since(start) >= rescan {
			t.Fatal("the periodic rescan, not the trap, found tgtB")
		}
		if f := devB.wl.failed.Load(); f != 0 {
			t.Fatalf("%d I/O failed on the new device", f)
		}
	})
}

// Done-when: trap 65 for a target GID moves its paths to blocked within
// 10 ms of simulated time while I/O continues on the other path, with no
// failed I/O. The target port of the active path loses its cable: the
// initiator's port stays up (no PORT_ERR here), so only the SM's trap 65
// can tell this fast — heartbeats would need 250 ms + 500 ms.
func TestDiscoveryTrap65BlocksPaths(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := runSimDaemon(t, func(o *Options) { o.SimWorkload, o.SimLinkLatency = true, 100*time.Microsecond })
		dev := d.devices()[0]
		status := func(id string) paths.PathStatus {
			for _, p := range dev.pd.Snapshot().Paths {
				if p.ID == id {
					return p
				}
			}
			t.Fatalf("no path %s", id)
			return paths.PathStatus{}
		}
		p1, p2 := dev.name+":tgtA.1", dev.name+":tgtA.2"
		waitFor(t, d, time.Second, "I/O on the active path", func() bool { return status(p1).Completions > 100 })
		if !status(p1).Active {
			t.Fatalf("path %s is not the active one", p1)
		}
		gone := time.Now()
		if err := d.Sim().Fabric.SetPortUp(sim.PortRef{Device: "tgtA", Port: 1}, false); err != nil {
			t.Fatal(err)
		}
		waitFor(t, d, time.Second, "path blocked", func() bool { return status(p1).State != fsm.Running })
		st := status(p1)
		took := st.Since.Sub(gone)
		t.Logf("trap 65 → %s %v after the target port left (simulated), reason %v", st.State, took, st.FSM.Reason)
		if st.State != fsm.Blocked || took > 10*time.Millisecond {
			t.Fatalf("path %s is %v %v after its GID left, want blocked within 10 ms", p1, st.State, took)
		}
		if st.FSM.Reason.Kind != fsm.Trap65 {
			t.Fatalf("blocked for %v, want trap 65", st.FSM.Reason)
		}
		before2, doneBefore := status(p2).Completions, dev.wl.done.Load()
		time.Sleep(500 * time.Millisecond)
		after2 := status(p2).Completions
		if after2-before2 < 100 || dev.wl.done.Load()-doneBefore < 100 {
			t.Fatalf("I/O on %s after the trap: %d completions (device %d); want it to continue", p2, after2-before2, dev.wl.done.Load()-doneBefore)
		}
		if f := dev.wl.failed.Load(); f != 0 {
			t.Fatalf("%d I/O failed", f)
		}
		t.Logf("I/O after the trap: %d completions on %s in 500 ms, 0 failed", after2-before2, p2)
		if v := d.Discovery(); v.Trap65 != 1 {
			t.Fatalf("discovery counted %d traps 65, want 1", v.Trap65)
		}
		// The other device is untouched.
		for _, p := range d.devices()[1].pd.Snapshot().Paths {
			if p.State != fsm.Running {
				t.Fatalf("path %s of the other target is %v", p.ID, p.State)
			}
		}
	})
}

// TestDiscoveryAPI: the control API reports discovery (figures, targets
// and the target port each became), accepts a rescan, and refuses one
// when discovery is off; /v1/targets says where each target came from.
func TestDiscoveryAPI(t *testing.T) {
	td := startDaemon(t, nil)
	c := NewClient(td.SocketPath())
	ctx := context.Background()
	v, err := c.Discovery(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Active || v.Scans < 4 || len(v.Ports) != 4 || len(v.Targets) != 4 || v.Mode != "auto" {
		t.Fatalf("discovery view: %+v", v)
	}
	for _, tg := range v.Targets {
		if tg.TargetPort == "" || tg.Static {
			t.Errorf("target %s: target port %q, static %v", tg.Target, tg.TargetPort, tg.Static)
		}
	}
	if r, err := c.Rescan(ctx); err != nil || !r.Requested {
		t.Fatalf("rescan: %+v, %v", r, err)
	}
	ts, err := c.Targets(ctx)
	if err != nil || len(ts) != SimTargets || ts[0].Source != "discovered" {
		t.Fatalf("targets: %+v, %v", ts, err)
	}

	off := config.Default()
	off.Discovery.Enabled = config.DiscoveryOff
	td2 := startDaemon(t, func(o *Options) { o.Config = off })
	c2 := NewClient(td2.SocketPath())
	if _, err := c2.Rescan(ctx); !errors.Is(err, ErrDiscoveryOff) {
		t.Fatalf("rescan with discovery off: %v, want ErrDiscoveryOff", err)
	}
	if v, err := c2.Discovery(ctx); err != nil || v.Active || v.Mode != "false" {
		t.Fatalf("discovery view with discovery off: %+v, %v", v, err)
	}
	// The built-in topology still serves, hard-wired.
	ts, err = c2.Targets(ctx)
	if err != nil || len(ts) != SimTargets || ts[0].Source != "built-in" {
		t.Fatalf("targets with discovery off: %+v, %v", ts, err)
	}
	if st, err := c2.Status(ctx); err != nil || st.Paths != SimTargets*SimPathsPerTarget || st.PathsRunning != st.Paths {
		t.Fatalf("status with discovery off: %+v, %v", st, err)
	}
}

// TestDiscoveryTrap65ThenTrap64: a target port that leaves (trap 65) and
// comes back (trap 64) gets its path back: the engine finds it again, the
// daemon sees the path still known (blocked, reconnecting) and adds no
// second one; the path's own reconnect brings it back to running after
// reconnect_delay and hold_down.
func TestDiscoveryTrap65ThenTrap64(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := config.Default()
		cfg.Defaults.Path.ReconnectDelay = config.Timeout(time.Second)
		cfg.Defaults.Path.HoldDown = time.Second
		d := runSimDaemon(t, func(o *Options) { o.Config = cfg })
		id := d.devices()[0].name + ":tgtA.1"
		state := func() string {
			for _, s := range pathIDs(d) {
				if p, st, _ := strings.Cut(s, " "); p == id {
					return st
				}
			}
			return "absent"
		}
		port := sim.PortRef{Device: "tgtA", Port: 1}
		if err := d.Sim().Fabric.SetPortUp(port, false); err != nil {
			t.Fatal(err)
		}
		waitFor(t, d, 10*time.Millisecond, "blocked by trap 65", func() bool { return state() == fsm.Blocked.String() })
		if err := d.Sim().Fabric.SetPortUp(port, true); err != nil {
			t.Fatal(err)
		}
		back := waitFor(t, d, 10*time.Second, "running again", func() bool { return state() == fsm.Running.String() })
		t.Logf("trap 64 → path running again after %v (reconnect_delay 1s, hold_down 1s)", back)
		v := d.Discovery()
		if v.Trap65 != 1 || v.Trap64 != 1 {
			t.Fatalf("traps counted: 64 %d, 65 %d; want 1 each", v.Trap64, v.Trap65)
		}
		if n := len(pathIDs(d)); n != SimTargets*SimPathsPerTarget {
			t.Fatalf("%d paths after the target came back (%q), want %d", n, pathIDs(d), SimTargets*SimPathsPerTarget)
		}
	})
}
