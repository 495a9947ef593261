package discovery

import (
	"context"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/srp-mpathd/srp-mpathd/internal/srp"
	"github.com/srp-mpathd/srp-mpathd/internal/srp/srptest"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs/sim"
)

// watchdog bounds every wait for an engine event in real time; the
// simulated time is what the tests measure.
const watchdog = 10 * time.Second

// watcher reads an engine's events.
type watcher struct {
	t    *testing.T
	ch   <-chan Event
	seen []Event
}

// until reads events until one satisfies pred and returns it.
func (w *watcher) until(what string, pred func(Event) bool) Event {
	w.t.Helper()
	deadline := time.After(watchdog)
	for {
		select {
		case ev, ok := <-w.ch:
			if !ok {
				w.t.Fatalf("events closed while waiting for %s; seen %v", what, w.seen)
			}
			w.seen = append(w.seen, ev)
			if pred(ev) {
				return ev
			}
		case <-deadline:
			w.t.Fatalf("no %s within %v; seen %v", what, watchdog, w.seen)
		}
	}
}

func (w *watcher) scanDone(ports ...PortRef) {
	w.t.Helper()
	for _, p := range ports {
		ev := w.until("scan of "+p.String(), func(ev Event) bool { return ev.Kind == ScanDone && ev.Port == p })
		if ev.Err != nil {
			w.t.Fatalf("scan of %v: %v", p, ev.Err)
		}
	}
}

func (w *watcher) found(name string, h *harness, side int, pkey uint16) Event {
	w.t.Helper()
	want := h.want(name, side, pkey).Key()
	return w.until("found "+name, func(ev Event) bool { return ev.Kind == TargetFound && ev.Target.Key() == want })
}

// kinds lists the seen events of the given kinds as strings.
func (w *watcher) kinds(ks ...EventKind) []string {
	var out []string
	for _, ev := range w.seen {
		if slices.Contains(ks, ev.Kind) {
			out = append(out, ev.Kind.String()+" "+ev.Port.String()+" "+ev.Target.String())
		}
	}
	return out
}

// startEngine runs an engine over the harness's initiator ports until
// the test ends.
func startEngine(t *testing.T, h *harness, cfg Config) (*Engine, *watcher) {
	t.Helper()
	cfg.Fabric = h.f
	cfg.Clock = h.clk
	if cfg.Options.Ports == nil {
		cfg.Options.Ports = iniPorts
	}
	e, err := New(cfg)
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(watchdog):
			t.Errorf("Run did not return")
		}
	})
	return e, &watcher{t: t, ch: e.Events()}
}

// The engine's first scan finds what Discover finds and subscribes every
// port to traps 64, 65 and 144.
func TestEngineInitialScan(t *testing.T) {
	h := newHarness(t, partitionTargets()...)
	e, w := startEngine(t, h, Config{})
	w.scanDone(iniPorts...)
	want, err := Discover(context.Background(), h.f, Options{Ports: iniPorts})
	must(t, err)
	if diff := cmp.Diff(want, e.Targets(), cmpTargets); diff != "" {
		t.Fatalf("Targets (-Discover +engine):\n%s", diff)
	}
	var found []Target
	for _, ev := range w.seen {
		if ev.Kind == TargetFound {
			found = append(found, ev.Target)
		}
	}
	SortTargets(found)
	if diff := cmp.Diff(want, found, cmpTargets); diff != "" {
		t.Fatalf("TargetFound events (-want +got):\n%s", diff)
	}
	for side, sm := range h.sms {
		var got []uint16
		for _, s := range sm.Subscriptions() {
			if s.Subscriber != (sim.PortRef{Device: "ini", Port: uint8(side + 1)}) {
				t.Fatalf("subscription from %v", s.Subscriber)
			}
			got = append(got, s.Trap)
		}
		if !slices.Equal(got, []uint16{64, 65, 144}) {
			t.Fatalf("subnet %d subscriptions %v, want traps 64, 65, 144", side, got)
		}
	}
}

// Done-when: a target appearing (trap 64) is logged in within one scan
// interval.
func TestEngineTrap64Login(t *testing.T) {
	h := newHarness(t,
		testTarget{name: "tdefault", pkeys: [2][]uint16{{0xffff}, {0xffff}}},
		testTarget{name: "tnew", pkeys: [2][]uint16{{0xffff}, {0xffff}}})
	newPort := sim.PortRef{Device: "tnew", Port: 1}
	must(t, h.sms[0].SetInService(newPort, false))
	tgt := startTarget(t, h, "tnew", 0)

	const interval = time.Minute
	_, w := startEngine(t, h, Config{RescanInterval: interval})
	w.scanDone(iniPorts...)
	if got := w.kinds(TargetFound); len(got) != 3 { // tdefault ×2, tnew on subnet B
		t.Fatalf("before the trap: %v", got)
	}

	appeared := h.clk.Now()
	must(t, h.sms[0].SetInService(newPort, true))
	ev := w.until("trap 64", func(ev Event) bool { return ev.Kind == GIDInService })
	if ev.GID != h.portGID("tnew", 0) || ev.Port != iniPorts[0] {
		t.Fatalf("GIDInService %v", ev)
	}
	h.clk.Advance(DefaultTrapDelay)
	found := w.found("tnew", h, 0, 0xffff).Target

	// The daemon's side: log in to what was found.
	ini, err := h.f.OpenDevice("ini")
	must(t, err)
	t.Cleanup(func() { _ = ini.Close() })
	ch, err := srp.Dial(context.Background(), ini, srp.ChannelParams{
		Src: ipoib(0, iniLID), Dst: netip.AddrPortFrom(ipoib(0, found.DLID), srpPort), InitiatorExt: 1,
		TargetPortID: srp.TargetPortID{IDExt: found.IDExt, IOCGUID: found.IOCGUID}, TargetMaxIU: found.MaxIUSize,
		QueueDepth: 8,
	})
	must(t, err)
	t.Cleanup(func() { _ = ch.Close() })
	if took := h.clk.Now().Sub(appeared); took >= interval {
		t.Fatalf("logged in %v after the target appeared, more than one scan interval (%v)", took, interval)
	}
	if len(tgt.Sessions()) != 1 {
		t.Fatalf("target sessions %v", tgt.Sessions())
	}
	// The ReportResp follows the event on the engine's report goroutine.
	for deadline := time.Now().Add(watchdog); h.sms[0].ReportResps() < 1; runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatalf("the Report was not acknowledged")
		}
	}
}

const srpPort = 5555

// startTarget serves an srptest target on port side of device name.
func startTarget(t *testing.T, h *harness, name string, side int) *srptest.Port {
	t.Helper()
	dev, err := h.f.OpenDevice(name)
	must(t, err)
	t.Cleanup(func() { _ = dev.Close() })
	tgt := srptest.New(srptest.Config{ServiceGUID: h.guids[name]})
	t.Cleanup(func() { _ = tgt.Close() })
	if _, err := tgt.AddLU(srptest.LUConfig{LUN: 0, BlockSize: 512, Blocks: 1024, Serial: name}); err != nil {
		t.Fatal(err)
	}
	p, err := tgt.AddPort(dev, netip.AddrPortFrom(ipoib(side, h.byName[name].lid), srpPort))
	must(t, err)
	return p
}

// Trap 65 is reported at once, without waiting for any scan; trap 64
// brings the target back as found.
func TestEngineTrap65(t *testing.T) {
	h := newHarness(t, testTarget{name: "tdefault", pkeys: [2][]uint16{{0xffff}, {0xffff}}})
	_, w := startEngine(t, h, Config{})
	w.scanDone(iniPorts...)
	gone := h.clk.Now()
	must(t, h.sms[0].SetInService(sim.PortRef{Device: "tdefault", Port: 1}, false))
	ev := w.until("trap 65", func(ev Event) bool { return ev.Kind == GIDOutOfService })
	if ev.GID != h.portGID("tdefault", 0) || ev.Port != iniPorts[0] {
		t.Fatalf("GIDOutOfService %v", ev)
	}
	if d := ev.Time.Sub(gone); d > 10*time.Millisecond {
		t.Fatalf("trap 65 reported %v after the port left, want ≤ 10 ms", d)
	}
	must(t, h.sms[0].SetInService(sim.PortRef{Device: "tdefault", Port: 1}, true))
	w.until("trap 64", func(ev Event) bool { return ev.Kind == GIDInService })
	h.clk.Advance(DefaultTrapDelay)
	w.found("tdefault", h, 0, 0xffff)
	if n := len(w.kinds(TargetGone)); n != 0 {
		t.Fatalf("targets reported gone: %v", w.kinds(TargetGone))
	}
}

// A P_Key table change triggers a rescan: a partition that left takes its
// targets with it, and a P_Key that moved is found at its new index.
func TestEnginePKeyChange(t *testing.T) {
	h := newHarness(t, partitionTargets()...)
	e, w := startEngine(t, h, Config{})
	w.scanDone(iniPorts...)
	must(t, h.f.SetPKeys(sim.PortRef{Device: "ini", Port: 1}, 0xffff, 0x8001))
	w.scanDone(iniPorts[0])
	gone := w.kinds(TargetGone)
	if want := []string{"target-gone ini:1 " + h.want("tp8002", 0, 0x8002).String()}; !slices.Equal(gone, want) {
		t.Fatalf("gone %v, want %v", gone, want)
	}
	for _, tg := range e.Targets() {
		if tg.Local == iniPorts[0] && tg.PKey == 0x8001 && tg.PKeyIndex != 1 {
			t.Fatalf("%v kept P_Key index %d, now 1", tg, tg.PKeyIndex)
		}
	}
}

// After an SM handover or a client reregister the SM has no subscriptions:
// the engine rescans and subscribes again.
func TestEngineResubscribe(t *testing.T) {
	h := newHarness(t, testTarget{name: "tdefault", pkeys: [2][]uint16{{0xffff}, {0xffff}}})
	_, w := startEngine(t, h, Config{})
	w.scanDone(iniPorts...)
	// Reregister drops the SM's subscriptions (the sim's tests check it);
	// a trap arriving afterwards proves the engine subscribed again.
	h.sms[0].Reregister()
	w.scanDone(iniPorts[0])
	if n := len(h.sms[0].Subscriptions()); n != len(traps) {
		t.Fatalf("%d subscriptions after reregister, want %d", n, len(traps))
	}
	must(t, h.sms[0].SetInService(sim.PortRef{Device: "tdefault", Port: 1}, false))
	if ev := w.until("trap 65 after reregister", func(ev Event) bool { return ev.Kind == GIDOutOfService }); ev.Port != iniPorts[0] {
		t.Fatalf("%v", ev)
	}
	h.sms[1].Handover(smLID + 1)
	w.scanDone(iniPorts[1])
	if n := len(h.sms[1].Subscriptions()); n != len(traps) {
		t.Fatalf("%d subscriptions after handover, want %d", n, len(traps))
	}
	// The new SM's traps arrive.
	must(t, h.sms[1].SetInService(sim.PortRef{Device: "tdefault", Port: 2}, false))
	ev := w.until("trap 65 from the new SM", func(ev Event) bool { return ev.Kind == GIDOutOfService })
	if ev.Port != iniPorts[1] {
		t.Fatalf("%v", ev)
	}
}

// Trap 144 (a port became an I/O unit) scans that port; a target that
// appears without any trap is found by the periodic rescan.
func TestEngineTrap144AndPeriodic(t *testing.T) {
	h := newHarness(t,
		testTarget{name: "tplain", pkeys: [2][]uint16{{0xffff}, {0xffff}}, noDM: true},
		testTarget{name: "tquiet", pkeys: [2][]uint16{{0x8009}, {0x8009}}})
	const interval = 30 * time.Second
	_, w := startEngine(t, h, Config{RescanInterval: interval})
	w.scanDone(iniPorts...)
	if got := w.kinds(TargetFound, TargetGone); len(got) != 0 {
		t.Fatalf("found %v", got)
	}
	_, err := h.f.AddDMAgent(sim.PortRef{Device: "tplain", Port: 1}, h.controller("tplain"))
	must(t, err)
	w.found("tplain", h, 0, 0xffff)

	// tquiet joins partition 0xffff on its own side: no trap, no event here.
	must(t, h.f.SetPKeys(sim.PortRef{Device: "tquiet", Port: 2}, 0xffff))
	start := h.clk.Now()
	h.clk.Advance(interval)
	ev := w.found("tquiet", h, 1, 0xffff)
	if d := ev.Time.Sub(start); d > interval {
		t.Fatalf("found after %v, interval %v", d, interval)
	}
}

// A RoCE-only host: static targets are reported, nothing is scanned.
func TestEngineStaticOnly(t *testing.T) {
	f := sim.New(sim.Config{Seed: 1})
	t.Cleanup(func() { _ = f.Close() })
	must(t, f.AddDevice("rxe0", sim.PortConfig{Addrs: []netip.Addr{netip.MustParseAddr("192.168.7.1")}}))
	st, err := ParseTarget("id_ext=1,ioc_guid=2,dest=192.168.7.2:5555,service_id=3")
	must(t, err)
	e, err := New(Config{Fabric: f, Options: Options{Static: []Target{st}}})
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	w := &watcher{t: t, ch: e.Events()}
	ev := w.until("static target", func(ev Event) bool { return ev.Kind == TargetFound })
	if !ev.Target.Static || ev.Target.Dest.Port() != 5555 {
		t.Fatalf("%v", ev)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	e2, err := New(Config{Fabric: f})
	must(t, err)
	if err := e2.Run(context.Background()); err == nil {
		t.Fatal("Run with nothing to scan succeeded")
	}
}
