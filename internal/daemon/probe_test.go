package daemon

import (
	"context"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/srp-mpathd/srp-mpathd/internal/config"
	"github.com/srp-mpathd/srp-mpathd/internal/srp/srptest"
)

// newTestSim builds the simulated topology without a daemon.
func newTestSim(t *testing.T) *SimFabric {
	t.Helper()
	s, err := newSimFabric(testLogger(), 0, SimTopology{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// TestProbeSim: every path of the simulated topology reports its target's
// LU with the WWID multipath would give it (VPD 0x83 NAA, "3" + hex) and
// the geometry READ CAPACITY(16) gives.
func TestProbeSim(t *testing.T) {
	s := newTestSim(t)
	eps := s.endpoints(config.Default().Defaults.Path, testLogger())
	if len(eps) != SimTargets*SimPathsPerTarget {
		t.Fatalf("%d endpoints, want %d", len(eps), SimTargets*SimPathsPerTarget)
	}
	var found []pathLUs
	for i, ep := range eps {
		lus, err := probeEndpoint(context.Background(), ep, DefaultProbeTimeout)
		if err != nil {
			t.Fatalf("%s: %v", ep.desc, err)
		}
		tgt := s.Targets[i/SimPathsPerTarget]
		want := "3" + hex.EncodeToString(tgt.LU.NAA())
		if len(lus) != 1 {
			t.Fatalf("%s: %d LUs, want 1", ep.desc, len(lus))
		}
		lu := lus[0]
		if lu.LUN != simLUN || lu.WWID != want || lu.Blocks != simBlocks || lu.BlockSize != simBlockSize ||
			lu.Vendor != "LIO-ORG" || !lu.Thin || !lu.WriteCache || lu.PhysicalBlockSize != simBlockSize {
			t.Errorf("%s: %+v, want LUN %d WWID %s, %d blocks of %d, LIO-ORG, thin, write cache", ep.desc, lu, simLUN, want, simBlocks, simBlockSize)
		}
		found = append(found, pathLUs{ep: ep, lus: lus})
	}
	groups, refused := groupPaths(found)
	if len(refused) != 0 || len(groups) != SimTargets {
		t.Fatalf("%d groups, refused %v; want %d groups", len(groups), refused, SimTargets)
	}
	for _, g := range groups {
		if len(g.paths) != SimPathsPerTarget {
			t.Errorf("%s: %d paths, want %d", g.ref.WWID, len(g.paths), SimPathsPerTarget)
		}
	}
}

// TestProbeMissingLU: a target port without LUs reports none, and a LUN
// that is not there fails the single-LU probe with the target's answer.
func TestProbeMissingLU(t *testing.T) {
	s := newTestSim(t)
	ep := s.endpoints(config.Default().Defaults.Path, testLogger())[0]
	s.Targets[0].Target.RemoveLU(simLUN)
	lus, err := probeEndpoint(context.Background(), ep, DefaultProbeTimeout)
	if err != nil || len(lus) != 0 {
		t.Fatalf("probe without LUs: %v, %v; want none", lus, err)
	}
	ch, err := ep.dial(context.Background(), 0, probeQueueDepth)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if _, err := probeOne(context.Background(), ch, ep.dev, simLUN); !errors.Is(err, ErrProbe) {
		t.Fatalf("probe of a missing LUN: %v, want ErrProbe", err)
	}
}

// TestGroupPathsRefusesMismatch: a path whose view of a WWID differs in
// capacity from the first path's is refused with an error naming both; a
// different WWID is a different device.
func TestGroupPathsRefusesMismatch(t *testing.T) {
	ep := func(name string) *endpoint { return &endpoint{desc: name} }
	a := LUInfo{LUN: 1, WWID: "3600a", Blocks: 100, BlockSize: 512}
	bigger := a
	bigger.Blocks = 200
	other := LUInfo{LUN: 2, WWID: "3600b", Blocks: 100, BlockSize: 512}
	groups, refused := groupPaths([]pathLUs{
		{ep: ep("p1"), lus: []LUInfo{a}},
		{ep: ep("p2"), lus: []LUInfo{bigger, other}},
		{ep: ep("p3"), lus: []LUInfo{a}},
		{ep: ep("p4"), err: ErrProbe},
	})
	if len(groups) != 2 || len(groups[0].paths) != 2 || groups[0].paths[1].ep.desc != "p3" || len(groups[1].paths) != 1 {
		t.Fatalf("groups %+v", groups)
	}
	if len(refused) != 1 || !errors.Is(refused[0], ErrIdentityMismatch) {
		t.Fatalf("refused %v, want one ErrIdentityMismatch", refused)
	}
	if msg := refused[0].Error(); !strings.Contains(msg, "p2") || !strings.Contains(msg, "p1") || !strings.Contains(msg, "200 blocks") {
		t.Errorf("refusal %q does not name both paths and the capacity", msg)
	}
}

// TestConnectorChecksIdentity: a channel is handed to a queue only if its
// LU still has the admitted identity; a path that now reaches another LU
// (or one of another size) is refused with ErrIdentityMismatch.
func TestConnectorChecksIdentity(t *testing.T) {
	s := newTestSim(t)
	ep := s.endpoints(config.Default().Defaults.Path, testLogger())[0]
	lus, err := probeEndpoint(context.Background(), ep, DefaultProbeTimeout)
	if err != nil || len(lus) != 1 {
		t.Fatalf("probe: %v, %v", lus, err)
	}
	ch, err := connector(ep, lus[0], probeQueueDepth, testLogger())(context.Background(), 0)
	if err != nil {
		t.Fatalf("same LU: %v", err)
	}
	if err := ch.Close(); err != nil {
		t.Fatal(err)
	}
	// The target is reconfigured: another LU at the same LUN.
	tgt := s.Targets[0].Target
	tgt.RemoveLU(simLUN)
	if _, err := tgt.AddLU(srptest.LUConfig{LUN: simLUN, BlockSize: simBlockSize, Blocks: simBlocks, Serial: "OTHER"}); err != nil {
		t.Fatal(err)
	}
	_, err = connector(ep, lus[0], probeQueueDepth, testLogger())(context.Background(), 0)
	if !errors.Is(err, ErrIdentityMismatch) || !strings.Contains(err.Error(), lus[0].WWID) {
		t.Fatalf("other LU: %v, want ErrIdentityMismatch naming %s", err, lus[0].WWID)
	}
}

// TestAdmitLate: a path that comes up after start joins the device of its
// WWID; one whose LU differs in size is refused and the device keeps its
// paths.
func TestAdmitLate(t *testing.T) {
	td := startDaemon(t, nil)
	defer td.stop(t)
	ep := *td.sim.endpoints(config.Default().Defaults.Path, testLogger())[0]
	ep.pathID = func(dev string) string { return dev + ":late" }
	lus, err := probeEndpoint(context.Background(), &ep, DefaultProbeTimeout)
	if err != nil || len(lus) != 1 {
		t.Fatalf("probe: %v, %v", lus, err)
	}
	dev := td.deviceOfWWID(lus[0].WWID)
	if dev == nil {
		t.Fatalf("no device of %s", lus[0].WWID)
	}
	before := len(dev.pd.Snapshot().Paths)
	bad := lus[0]
	bad.Blocks++
	td.admitEndpoint(context.Background(), new(errgroup.Group), &ep, []LUInfo{bad})
	if n := len(dev.pd.Snapshot().Paths); n != before {
		t.Fatalf("a path with another capacity was admitted: %d paths, want %d", n, before)
	}
	td.admitEndpoint(context.Background(), new(errgroup.Group), &ep, lus)
	if n := len(dev.pd.Snapshot().Paths); n != before+1 {
		t.Fatalf("%d paths after a late admission, want %d", n, before+1)
	}
	if td.deviceOfPath(dev.name+":late") != dev {
		t.Error("the late path is not known by its id")
	}
}

// TestLostPathReadmitted: every link of a static target down for longer than
// dev_loss_tmo loses both paths (the device is lost: I/O fails); when the
// links return, the daemon probes the lost paths again and admits them, so
// the device serves again with the same paths.
func TestLostPathReadmitted(t *testing.T) {
	cfg := config.Default()
	// Static targets (RoCE): discovery would find the target again on its
	// own; here only the daemon's re-probe of lost paths can bring them back.
	cfg.Discovery.Enabled = config.DiscoveryOff
	ps := &cfg.Defaults.Path
	ps.ReconnectDelay = config.Timeout(100 * time.Millisecond)
	ps.FastIOFailTmo = config.Timeout(200 * time.Millisecond)
	ps.DevLossTmo = config.Timeout(400 * time.Millisecond)
	ps.HeartbeatInterval = config.Timeout(50 * time.Millisecond)
	ps.HeartbeatTimeout = 100 * time.Millisecond
	td := startDaemon(t, func(o *Options) { o.Config, o.ProbeTimeout = cfg, time.Second })
	defer td.stop(t)
	devs := td.devices()
	if len(devs) == 0 {
		t.Fatal("no device")
	}
	dev := devs[0]
	ids := func() []string {
		var out []string
		for _, p := range dev.pd.Snapshot().Paths {
			out = append(out, p.ID)
		}
		slices.Sort(out)
		return out
	}
	want := ids()
	if len(want) < 2 {
		t.Fatalf("paths %v, want 2", want)
	}
	tgt := td.Sim().Targets[0]
	for _, l := range tgt.Links {
		l.Down()
	}
	waitFor(t, td.Daemon, 10*time.Second, "every path lost", func() bool { return dev.pd.Snapshot().Lost })
	if got := ids(); len(got) != 0 {
		t.Fatalf("paths %v left on a lost device", got)
	}
	for _, l := range tgt.Links {
		l.Up()
	}
	waitFor(t, td.Daemon, 10*time.Second, "the lost paths admitted again", func() bool {
		s := dev.pd.Snapshot()
		usable := 0
		for _, p := range s.Paths {
			if p.Usable {
				usable++
			}
		}
		return !s.Lost && usable == len(want)
	})
	if got := ids(); !slices.Equal(got, want) {
		t.Errorf("paths after the return %v, want %v", got, want)
	}
	td.specMu.RLock()
	n := len(dev.specs)
	td.specMu.RUnlock()
	if n != len(want) {
		t.Errorf("%d specs after the readmission, want %d (a lost path is recorded once)", n, len(want))
	}
}
