package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/config"
	"github.com/srp-mpathd/srp-mpathd/internal/fsm"
)

// Demo schedule: each scenario gets an equal slot of the duration; within
// it the workload warms up, the fault is injected and measured, then the
// fault is removed and the path returns to service before the next slot.
const (
	// DemoMinDuration leaves every scenario enough time for a reconnect.
	DemoMinDuration = 6 * time.Second
	// demoReconnectDelay replaces ib_srp's 10 s and demoHoldDown the 5 s
	// hold_down so that paths return within a slot.
	demoReconnectDelay = time.Second
	demoHoldDown       = time.Second
	// demoLinkLatency is the simulated links' one-way delay.
	demoLinkLatency = 50 * time.Microsecond
	// demoProgressEvery is how often the live table is refreshed.
	demoProgressEvery = time.Second
	demoWarmupShare   = 5 // warm-up = slot / 5
	demoMeasureShare  = 2 // fault window = slot / 2
)

// DemoOptions configure RunDemo.
type DemoOptions struct {
	// Duration is the whole run (at least DemoMinDuration).
	Duration time.Duration
	Logger   *slog.Logger
	// Depth is the workload's I/O in flight per device (default 16) and
	// LinkLatency the simulated links' one-way delay (default 50 µs):
	// tests under testing/synctest use a light load.
	Depth       int
	LinkLatency time.Duration
	// Progress, if set, receives a view of the devices about every
	// second (the live table).
	Progress func(DemoProgress)
}

// DemoProgress is one refresh of the live table.
type DemoProgress struct {
	Elapsed  time.Duration
	Scenario string
	Devices  []TopologyView
}

// ScenarioResult is one injected fault: the longest gap between completed
// I/Os of the affected device from the fault to the end of its window.
type ScenarioResult struct {
	Name    string `json:"name"`
	Device  string `json:"device"`
	Path    string `json:"path"`
	StallMs int64  `json:"stall_ms"`
	Errors  int    `json:"errors"`
	IOs     int    `json:"ios"`
	// PathState is the faulty path's state at the end of the window.
	PathState string `json:"path_state"`
	// Recovered: the path was running again before the slot ended.
	Recovered bool `json:"recovered"`
}

// DemoReport is the demo's result.
type DemoReport struct {
	Scenarios    []ScenarioResult `json:"scenarios"`
	TotalIOs     uint64           `json:"total_ios"`
	FailedIOs    uint64           `json:"failed_ios"`
	ErrorSamples []string         `json:"error_samples,omitempty"`
	DurationMs   int64            `json:"duration_ms"`
}

// OK reports whether no I/O failed.
func (r DemoReport) OK() bool { return r.FailedIOs == 0 }

// demoScenario injects one fault and removes it.
type demoScenario struct {
	name    string
	target  int // index into SimFabric.Targets
	path    int // 0-based path of that target
	inject  func(t *SimTarget, path int)
	restore func(t *SimTarget, path int)
}

var demoScenarios = []demoScenario{
	{name: "linkdown", target: 0, path: 0,
		inject:  func(t *SimTarget, p int) { t.Links[p].Down() },
		restore: func(t *SimTarget, p int) { t.Links[p].Up() }},
	{name: "blackhole", target: 1, path: 0,
		inject:  func(t *SimTarget, p int) { t.Links[p].Blackhole(true) },
		restore: func(t *SimTarget, p int) { t.Links[p].Blackhole(false) }},
	{name: "dreq", target: 0, path: 1,
		inject:  func(t *SimTarget, p int) { t.Ports[p].KillSessions() },
		restore: func(*SimTarget, int) {}},
}

// demoConfig is the default configuration with a short reconnect delay
// and hold-down.
func demoConfig() *config.Config {
	c := config.Default()
	c.Defaults.Path.ReconnectDelay = config.Timeout(demoReconnectDelay)
	c.Defaults.Path.HoldDown = demoHoldDown
	return c
}

// RunDemo runs the daemon's core over the simulated fabric with a verified
// workload on every device, injects link down, blackhole and DREQ on a
// schedule and measures the stall each causes. It returns an error only if
// the demo could not run; failed I/O is reported (DemoReport.OK).
func RunDemo(ctx context.Context, o DemoOptions) (rep DemoReport, err error) {
	if o.Duration < DemoMinDuration {
		return rep, fmt.Errorf("%w: duration %v: want at least %v", ErrBadOptions, o.Duration, DemoMinDuration)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.LinkLatency <= 0 {
		o.LinkLatency = demoLinkLatency
	}
	dir, err := os.MkdirTemp("", "srp-mpathd-demo-")
	if err != nil {
		return rep, err
	}
	defer func() { err = errors.Join(err, os.RemoveAll(dir)) }()
	d, err := New(Options{
		Fabric: FabricSim, StorePath: filepath.Join(dir, "store.db"), RuntimeDir: dir, NoListeners: true,
		SimWorkload: true, SimWorkloadDepth: o.Depth, SimLinkLatency: o.LinkLatency, Config: demoConfig(), Logger: o.Logger,
		Notify: func(string) error { return nil },
	}, "demo")
	if err != nil {
		return rep, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()
	select {
	case <-d.Ready():
	case err := <-done:
		return rep, err
	}
	start := time.Now()
	slot := o.Duration / time.Duration(len(demoScenarios))
	for i, sc := range demoScenarios {
		res, err := d.runScenario(ctx, sc, start.Add(time.Duration(i)*slot), slot, start, o.Progress)
		if err != nil {
			cancel()
			return rep, errors.Join(err, <-done)
		}
		rep.Scenarios = append(rep.Scenarios, res)
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		return rep, err
	}
	rep.DurationMs = time.Since(start).Milliseconds()
	for _, dev := range d.devices() {
		rep.TotalIOs += dev.wl.done.Load()
		rep.FailedIOs += dev.wl.failed.Load()
		msgs, _ := dev.wl.errorList()
		for _, m := range msgs {
			rep.ErrorSamples = append(rep.ErrorSamples, dev.name+": "+m)
		}
	}
	return rep, nil
}

// sleepUntil waits for t (or ctx), sending progress meanwhile.
func (d *Daemon) sleepUntil(ctx context.Context, t time.Time, progress func()) error {
	for {
		wait := time.Until(t)
		if wait <= 0 {
			return nil
		}
		tm := time.NewTimer(min(wait, demoProgressEvery))
		select {
		case <-ctx.Done():
			tm.Stop()
			return ctx.Err()
		case <-tm.C:
			if progress != nil {
				progress()
			}
		}
	}
}

func (d *Daemon) runScenario(ctx context.Context, sc demoScenario, at time.Time, slot time.Duration, start time.Time, pf func(DemoProgress)) (ScenarioResult, error) {
	t := d.sim.Targets[sc.target]
	var dev *device
	for _, x := range d.devices() {
		if x.target == t.Name {
			dev = x
		}
	}
	res := ScenarioResult{Name: sc.name, Device: dev.name, Path: PathID(dev.name, t.Name, sc.path+1)}
	var progress func()
	if pf != nil {
		progress = func() {
			topo, _ := d.Topology("")
			pf(DemoProgress{Elapsed: time.Since(start), Scenario: sc.name, Devices: topo})
		}
	}
	if err := d.sleepUntil(ctx, at.Add(slot/demoWarmupShare), progress); err != nil {
		return res, err
	}
	fault := time.Now()
	dev.wl.startWindow(fault)
	sc.inject(t, sc.path)
	d.log.Info("demo: fault injected", "scenario", sc.name, "path", res.Path)
	if err := d.sleepUntil(ctx, fault.Add(slot/demoMeasureShare), progress); err != nil {
		return res, err
	}
	w := dev.wl.endWindow(time.Now())
	res.StallMs, res.Errors, res.IOs = w.Stall.Milliseconds(), w.Errors, w.IOs
	res.PathState = d.pathState(dev, res.Path)
	sc.restore(t, sc.path)
	end := at.Add(slot)
	// Wait for the path to come back, checking at every progress tick.
	for time.Now().Before(end) {
		if d.pathState(dev, res.Path) == fsm.Running.String() {
			res.Recovered = true
			break
		}
		next := time.Now().Add(demoProgressEvery / 4)
		if next.After(end) {
			next = end
		}
		if err := d.sleepUntil(ctx, next, nil); err != nil {
			return res, err
		}
	}
	if progress != nil {
		progress()
	}
	return res, d.sleepUntil(ctx, end, progress)
}
