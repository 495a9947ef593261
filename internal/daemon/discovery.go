package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/srp-mpathd/srp-mpathd/internal/config"
	"github.com/srp-mpathd/srp-mpathd/internal/fsm"
	"github.com/srp-mpathd/srp-mpathd/internal/paths"
	"github.com/srp-mpathd/srp-mpathd/internal/srp/discovery"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
)

// discoveryStartTimeout bounds the wait for the first full scan of every
// port before the devices are built: a port that never answers (an SA
// that is down) must not keep the daemon from serving what it found.
const discoveryStartTimeout = 30 * time.Second

// discoverer is the daemon's side of the discovery engine: which target
// ports became which endpoints, and the figures the API and metrics show.
type discoverer struct {
	eng   *discovery.Engine
	ports []discovery.PortRef

	mu sync.Mutex
	// tports maps each endpoint discovery made (by its tport) to the
	// remote GID, for trap 65; probing holds the ones being probed now.
	tports  map[string]verbs.GID
	probing map[string]bool
	// unmapped are targets found that no endpoint can reach (reported
	// once each).
	unmapped map[discovery.Key]bool
	lastScan time.Time
	lastErr  string

	scans, scanErrors, trapsOut, trapsIn, found, gone atomic.Uint64
}

// discoveryPorts are the local ports the engine scans: the configured
// ones, else the simulated initiator's, else every InfiniBand port the
// host has (RoCE ports have no subnet administrator).
func (d *Daemon) discoveryPorts() []discovery.PortRef {
	if len(d.cfg.Discovery.Ports) > 0 {
		return d.cfg.Discovery.Ports
	}
	if d.sim != nil {
		return d.sim.initiatorPorts()
	}
	var out []discovery.PortRef
	for _, dev := range d.rdma.sysfs {
		for _, p := range dev.Ports {
			if p.LinkLayer == verbs.LinkInfiniBand {
				out = append(out, discovery.PortRef{Device: dev.Name, Port: p.Num})
			}
		}
	}
	return out
}

// startDiscovery starts the engine on g when the configuration asks for
// it, and waits (bounded by discoveryStartTimeout) until every port has
// been scanned once; it returns the endpoints of the targets found. The
// events that follow are handled by runDiscovery.
func (d *Daemon) startDiscovery(ctx context.Context, g *errgroup.Group) ([]*endpoint, error) {
	if !d.cfg.DiscoveryActive() {
		return nil, nil
	}
	ports := d.discoveryPorts()
	if len(ports) == 0 {
		d.log.Info("discovery: no InfiniBand port to scan (RoCE has no subnet administrator: the static targets are the source)")
		return nil, nil
	}
	var fab verbs.Fabric
	if d.sim != nil {
		fab = d.sim.Fabric
	} else {
		fab = d.rdma.fab
	}
	dc := d.cfg.Discovery
	eng, err := discovery.New(discovery.Config{
		Fabric:         fab,
		Options:        discovery.Options{Ports: ports, PKeys: dc.PKeyValues(), Rules: dc.Rules, Logger: d.log},
		RescanInterval: dc.RescanDuration(),
		Logger:         d.log,
	})
	if err != nil {
		return nil, &OpError{Op: "start discovery", Err: err}
	}
	d.disc = &discoverer{eng: eng, ports: ports, tports: map[string]verbs.GID{}, probing: map[string]bool{},
		unmapped: map[discovery.Key]bool{}}
	d.log.Info("discovery", "ports", fmt.Sprint(ports), "rescan_interval", dc.RescanInterval.String(), "rules", len(dc.Rules))
	g.Go(func() error {
		if err := eng.Run(ctx); err != nil {
			d.log.Error("discovery stopped", "err", err)
		}
		return nil
	})

	pending := map[discovery.PortRef]bool{}
	for _, p := range ports {
		pending[p] = true
	}
	timeout := time.NewTimer(discoveryStartTimeout)
	defer timeout.Stop()
	var eps []*endpoint
	for len(pending) > 0 {
		select {
		case ev, ok := <-eng.Events():
			if !ok {
				return eps, nil
			}
			d.disc.count(ev)
			switch ev.Kind {
			case discovery.TargetFound:
				if ep := d.claimTarget(ev.Target); ep != nil {
					eps = append(eps, ep)
				}
			case discovery.GIDOutOfService:
				// Nothing logs in there yet: leave its endpoints out; the
				// trap 64 that brings it back announces it again.
				eps = slices.DeleteFunc(eps, func(ep *endpoint) bool {
					if ep.dgid != ev.GID {
						return false
					}
					d.disc.release(ep.tport)
					return true
				})
			case discovery.ScanDone:
				delete(pending, ev.Port)
			}
		case <-timeout.C:
			d.log.Warn("discovery: first scan not finished; serving what was found so far", "ports_pending", len(pending))
			return eps, nil
		case <-ctx.Done():
			return eps, nil
		}
	}
	return eps, nil
}

// runDiscovery handles the engine's events once the daemon is ready: a
// target found is probed and logged in on its own task (a new LU gets a
// device, a known one another path); trap 65 blocks every path to the GID
// at once, on this goroutine, so it never waits behind a login.
func (d *Daemon) runDiscovery(ctx context.Context, g *errgroup.Group) error {
	for {
		select {
		case ev, ok := <-d.disc.eng.Events():
			if !ok {
				return nil
			}
			d.onDiscoveryEvent(ctx, g, ev)
		case <-ctx.Done():
			return nil
		}
	}
}

func (d *Daemon) onDiscoveryEvent(ctx context.Context, g *errgroup.Group, ev discovery.Event) {
	d.disc.count(ev)
	switch ev.Kind {
	case discovery.TargetFound:
		ep := d.claimTarget(ev.Target)
		if ep == nil {
			return
		}
		g.Go(func() error {
			defer d.disc.doneProbing(ep.tport)
			lus, err := probeEndpoint(ctx, ep, d.opts.ProbeTimeout)
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				d.log.Error("discovered path not used yet: its probe failed (retried in the background)", "path", ep.desc, "err", err)
				d.probeLater(ep)
				return nil
			}
			d.admitEndpoint(ctx, g, ep, lus)
			return nil
		})
	case discovery.GIDOutOfService:
		n := d.blockGID(ev.GID)
		d.log.Info("discovery: trap 65, paths blocked", "gid", ev.GID.String(), "port", ev.Port.String(), "paths", n)
	case discovery.GIDInService:
		d.log.Info("discovery: trap 64, GID in service; its scan follows", "gid", ev.GID.String(), "port", ev.Port.String())
	case discovery.TargetGone:
		// The paths stay: their own state machines (heartbeats, QP
		// errors, dev_loss_tmo) decide, as for a static target.
		d.log.Info("discovery: target no longer found", "target", ev.Target.String(), "port", ev.Port.String())
	case discovery.PortError, discovery.PortActive:
		// The daemon's own async event readers feed these to every
		// device's paths (paths.Device.PortEvent).
		d.log.Debug("discovery: port event", "event", ev.Kind.String(), "port", ev.Port.String())
	case discovery.ScanDone:
		if ev.Err != nil {
			d.log.Warn("discovery: scan incomplete", "port", ev.Port.String(), "err", ev.Err)
		}
	}
}

// claimTarget maps a found target to its endpoint and claims it for a
// probe: nil when no endpoint reaches it, when it is being probed, or when
// a device already has a path through it that is not lost (another
// partition to the same target port, or the target found again after
// trap 65: that path reconnects on its own schedule). On rdma-core a
// target that is one of the static targets (same port id, found through
// the local port the static entry leaves from) is not logged in again:
// its GID is recorded for the static path, so trap 65 blocks it too.
func (d *Daemon) claimTarget(t discovery.Target) *endpoint {
	dc := d.disc
	if d.sim == nil {
		if name, ok := matchStatic(d.config().Targets, d.staticLocalPort, t); ok {
			dc.mu.Lock()
			_, known := dc.tports[name]
			dc.tports[name] = t.DGID
			dc.mu.Unlock()
			if !known {
				d.log.Info("discovery: target is a static target; trap 65 for its GID blocks it", "static", name, "target", t.String())
			}
			return nil
		}
	}
	ep, err := d.endpointOfTarget(t)
	dc.mu.Lock()
	defer dc.mu.Unlock()
	if err != nil {
		if !dc.unmapped[t.Key()] {
			dc.unmapped[t.Key()] = true
			d.log.Warn("discovery: target found but not logged in", "target", t.String(), "port", t.Local.String(), "err", err)
		}
		return nil
	}
	if dc.probing[ep.tport] {
		return nil
	}
	if _, known := dc.tports[ep.tport]; known && d.hasPathThrough(ep.tport) {
		return nil
	}
	dc.tports[ep.tport] = t.DGID
	dc.probing[ep.tport] = true
	d.log.Info("discovery: logging in", "path", ep.desc, "target", t.String(), "port", t.Local.String())
	return ep
}

// matchStatic finds the static target a discovered one is: the same
// target port id, reached from the local port the static entry leaves
// from (local resolves an entry's source; false when it cannot).
func matchStatic(targets []config.Target, local func(config.Target) (discovery.PortRef, bool), t discovery.Target) (string, bool) {
	for _, st := range targets {
		if uint64(st.IDExt) != t.IDExt || uint64(st.IOCGUID) != t.IOCGUID {
			continue
		}
		if ref, ok := local(st); ok && ref == t.Local {
			return st.Name, true
		}
	}
	return "", false
}

// staticLocalPort is the local port a static target's source names or
// resolves to (as the rdma fabric maps it).
func (d *Daemon) staticLocalPort(t config.Target) (discovery.PortRef, bool) {
	if t.Source.Device != "" {
		return discovery.PortRef{Device: t.Source.Device, Port: t.Source.Port}, true
	}
	if !t.Source.Addr.IsValid() || d.rdma == nil {
		return discovery.PortRef{}, false
	}
	dev, port, _, err := verbs.ResolveAddr(d.rdma.sysfs, t.Source.Addr)
	if err != nil {
		return discovery.PortRef{}, false
	}
	return discovery.PortRef{Device: dev, Port: port}, true
}

// endpointOfTarget is the path a discovered target is. The simulated
// fabric maps it by GID to its target port (logging in over RDMA/CM to
// the subnet's IPoIB addresses). On rdma-core a discovered InfiniBand
// target that is not a static one would need its IPoIB address or an
// AF_IB login by GID, which the verbs seam does not offer yet: such a
// target is reported, and configured under targets: to be used.
func (d *Daemon) endpointOfTarget(t discovery.Target) (*endpoint, error) {
	if d.sim != nil {
		return d.sim.endpointOf(t, d.config().Defaults.Path, d.log)
	}
	return nil, fmt.Errorf("%w: logging in by GID (AF_IB) is not supported; configure the target under targets: with its IPoIB address", ErrUnknownTarget)
}

// hasPathThrough reports whether some device has a path, not lost, whose
// target port is tport.
func (d *Daemon) hasPathThrough(tport string) bool {
	for _, dev := range d.devices() {
		for _, p := range dev.pd.Snapshot().Paths {
			if p.Target == tport {
				return true
			}
		}
	}
	return false
}

// blockGID moves every path to a discovered target port with that GID to
// blocked (fsm.Trap65): its I/O is reissued on the other paths at once.
// It returns the number of paths it reported.
func (d *Daemon) blockGID(gid verbs.GID) int {
	tports := d.disc.tportsOf(gid)
	if len(tports) == 0 {
		return 0
	}
	n := 0
	detail := "trap 65: GID " + gid.String() + " out of service"
	for _, dev := range d.devices() {
		d.specMu.RLock()
		specs := slices.Clone(dev.specs)
		d.specMu.RUnlock()
		for _, s := range specs {
			if !slices.Contains(tports, s.Target) {
				continue
			}
			if err := dev.pd.ReportFailure(s.ID, fsm.Trap65, detail); err != nil {
				if !errors.Is(err, paths.ErrUnknownPath) {
					d.log.Debug("trap 65 not applied", "path", s.ID, "err", err)
				}
				continue
			}
			n++
		}
	}
	return n
}

// tportsOf lists the target ports discovery mapped to gid.
func (dc *discoverer) tportsOf(gid verbs.GID) []string {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	var out []string
	for tp, g := range dc.tports {
		if g == gid {
			out = append(out, tp)
		}
	}
	return out
}

func (dc *discoverer) doneProbing(tport string) {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	delete(dc.probing, tport)
}

// release forgets a claimed endpoint that was not used.
func (dc *discoverer) release(tport string) {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	delete(dc.probing, tport)
	delete(dc.tports, tport)
}

// count keeps the figures of the API and the metrics.
func (dc *discoverer) count(ev discovery.Event) {
	switch ev.Kind {
	case discovery.ScanDone:
		dc.scans.Add(1)
		dc.mu.Lock()
		dc.lastScan = ev.Time
		dc.lastErr = ""
		if ev.Err != nil {
			dc.lastErr = ev.Err.Error()
		}
		dc.mu.Unlock()
		if ev.Err != nil {
			dc.scanErrors.Add(1)
		}
	case discovery.GIDOutOfService:
		dc.trapsOut.Add(1)
	case discovery.GIDInService:
		dc.trapsIn.Add(1)
	case discovery.TargetFound:
		dc.found.Add(1)
	case discovery.TargetGone:
		dc.gone.Add(1)
	}
}

// Discovery reports fabric discovery: whether it runs, its figures and
// the targets the engine knows, each with the target port it became.
func (d *Daemon) Discovery() DiscoveryView {
	cfg := d.config()
	v := DiscoveryView{Mode: cfg.Discovery.Enabled.String(), RescanInterval: cfg.Discovery.RescanInterval.String(),
		Ports: []string{}, Targets: []DiscoveredTargetView{}}
	dc := d.disc
	if dc == nil {
		return v
	}
	v.Active = true
	for _, p := range dc.ports {
		v.Ports = append(v.Ports, p.String())
	}
	v.Scans, v.ScanErrors = dc.scans.Load(), dc.scanErrors.Load()
	v.Trap64, v.Trap65 = dc.trapsIn.Load(), dc.trapsOut.Load()
	v.TargetsFound, v.TargetsGone = dc.found.Load(), dc.gone.Load()
	dc.mu.Lock()
	v.LastScan, v.LastError = dc.lastScan, dc.lastErr
	byGID := map[verbs.GID][]string{}
	for tp, g := range dc.tports {
		byGID[g] = append(byGID[g], tp)
	}
	dc.mu.Unlock()
	for _, t := range dc.eng.Targets() {
		tv := DiscoveredTargetView{Target: t.String(), LocalPort: t.Local.String(), PKey: fmt.Sprintf("0x%04x", t.PKey),
			Static: t.Static}
		if tps := byGID[t.DGID]; len(tps) > 0 && t.DGID != (verbs.GID{}) {
			slices.Sort(tps)
			tv.TargetPort = tps[0]
		}
		v.Targets = append(v.Targets, tv)
	}
	return v
}

// Rescan asks the engine for a full rescan of every port.
func (d *Daemon) Rescan() (RescanResult, error) {
	if d.disc == nil {
		return RescanResult{}, fmt.Errorf("%w (discovery.enabled is %s; auto means on only without static targets)",
			ErrDiscoveryOff, d.config().Discovery.Enabled)
	}
	d.disc.eng.Rescan()
	d.log.Info("discovery: rescan requested")
	return RescanResult{Requested: true}, nil
}

// staticTargets lists the configuration's static targets (rdma fabric),
// each one path, with the state of every device's path through it.
func (d *Daemon) staticTargets() []TargetView {
	cfg := d.config()
	out := []TargetView{}
	for _, t := range cfg.Targets {
		tv := TargetView{Name: t.Name, PortID: fmt.Sprintf("%016x:%016x", uint64(t.IDExt), uint64(t.IOCGUID)), Source: "static"}
		pv := TargetPortView{Address: fmt.Sprintf("%s:%d", t.Address, t.Port)}
		for _, dev := range d.devices() {
			for _, p := range dev.pd.Snapshot().Paths {
				if p.Target == t.Name {
					pv.Paths = append(pv.Paths, p.ID)
					pv.States = append(pv.States, p.State.String())
					tv.LUs = append(tv.LUs, TargetLUView{LUN: dev.lu.LUN, WWID: dev.wwid, Device: dev.name})
				}
			}
		}
		tv.Ports = append(tv.Ports, pv)
		out = append(out, tv)
	}
	return out
}
