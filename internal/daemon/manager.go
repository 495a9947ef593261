package daemon

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/config"
	"github.com/srp-mpathd/srp-mpathd/internal/fsm"
	"github.com/srp-mpathd/srp-mpathd/internal/paths"
	"github.com/srp-mpathd/srp-mpathd/internal/store"
)

// Manager is what the control API serves; *Daemon implements it. Every
// method is safe for concurrent use.
type Manager interface {
	Status() Status
	Devices() []DeviceView
	// Topology returns every device, or the one named (ublkbN, /dev/ublkbN
	// or its WWID).
	Topology(device string) ([]TopologyView, error)
	Targets() []TargetView
	// Discovery reports fabric discovery; Rescan asks for a full rescan
	// of every port (ErrDiscoveryOff when discovery does not run).
	Discovery() DiscoveryView
	Rescan() (RescanResult, error)
	Transitions(limit int) []TransitionView
	Policy(device string) (PolicyView, error)
	SetPolicy(req PolicyRequest) (PolicyView, error)
	FailPath(id, reason string) (PathResult, error)
	ReinstatePath(id string) (PathResult, error)
	Reload() error
}

var _ Manager = (*Daemon)(nil)

// policyDefault in a PolicyRequest removes a field's override.
const policyDefault = "default"

func seconds(d time.Duration) float64 { return d.Seconds() }

// Status reports the daemon as a whole.
func (d *Daemon) Status() Status {
	d.mu.Lock()
	base, _ := policyOf(d.cfg.Defaults.Device, d.cfg.Defaults.Path)
	d.mu.Unlock()
	s := Status{
		Version: d.version, Fabric: d.opts.Fabric, Ublk: d.ublkNote, StartedAt: d.started,
		UptimeSeconds: seconds(time.Since(d.started)), Store: d.opts.StorePath, Socket: d.ctlAddr,
		Metrics: d.metricsAddr, Devices: len(d.devices()), Policy: base.String(),
	}
	for _, dev := range d.devices() {
		st := dev.pd.Snapshot()
		usable := 0
		for _, p := range st.Paths {
			s.Paths++
			if p.State == fsm.Running {
				s.PathsRunning++
			}
			if p.Usable {
				usable++
			}
		}
		if usable == 0 {
			s.DevicesWithoutPath++
		}
	}
	return s
}

func (d *Daemon) deviceView(dev *device, st paths.DeviceStatus) DeviceView {
	v := DeviceView{
		Name: dev.name, WWID: dev.wwid, DevID: dev.ident.DevID, SizeBytes: dev.ident.Capacity,
		BlockSize: dev.ident.LogicalBlockSize, Vendor: dev.ident.Vendor, Product: dev.ident.Product,
		Target: dev.target, Policy: st.Policy.String(), Paths: len(st.Paths), Queued: st.Queued,
		NoPathSeconds: seconds(st.NoPathFor), Failovers: st.Failovers,
		IOCompleted: st.Completed, IOFailed: st.Failed, Lost: st.Lost,
	}
	for _, p := range st.Paths {
		if p.Usable {
			v.PathsUsable++
		}
	}
	if dev.ub != nil {
		v.Block = dev.ub.BlockPath()
	}
	return v
}

// Devices lists every device.
func (d *Daemon) Devices() []DeviceView {
	out := make([]DeviceView, 0, len(d.devices()))
	for _, dev := range d.devices() {
		out = append(out, d.deviceView(dev, dev.pd.Snapshot()))
	}
	return out
}

// findDevice resolves ublkbN, /dev/ublkbN or a WWID.
func (d *Daemon) findDevice(name string) (*device, error) {
	n := strings.TrimPrefix(name, "/dev/")
	for _, dev := range d.devices() {
		if dev.name == n || dev.wwid == name {
			return dev, nil
		}
	}
	names := make([]string, 0, len(d.devices()))
	for _, dev := range d.devices() {
		names = append(names, dev.name)
	}
	return nil, fmt.Errorf("%w %q (devices: %s)", ErrUnknownDevice, name, strings.Join(names, ", "))
}

func pathView(dev string, p paths.PathStatus, now time.Time) PathView {
	v := PathView{
		ID: p.ID, Device: dev, Target: p.Target, Priority: p.Priority, State: p.State.String(),
		Since: p.Since, Usable: p.Usable, Active: p.Active, InFlight: p.InFlight,
		LatencyEWMAUs: float64(p.Latency) / float64(time.Microsecond), LastError: p.LastError,
		AdminDown: p.FSM.AdminDown, Flapping: p.FSM.Flapping,
		Completions: p.Completions, Errors: p.Errors, Retries: p.Retries, Reissued: p.Reissued, Aborts: p.Aborts,
		Reconnects: p.Reconnects, ReconnectFailures: p.ReconnectFailures,
		HeartbeatsSent: p.HeartbeatsSent, HeartbeatMisses: p.HeartbeatMisses,
		HeartbeatRTTUs: float64(p.HeartbeatRTT) / float64(time.Microsecond),
		DetectionMs:    float64(p.Detection) / float64(time.Millisecond),
	}
	if !p.Since.IsZero() && now.After(p.Since) {
		v.SecondsInState = seconds(now.Sub(p.Since))
	}
	if !p.FSM.Reason.IsZero() {
		v.Reason = p.FSM.Reason.String()
	}
	return v
}

// groups splits a device's paths into path groups the way the grouping
// policy does (paths/publish.go): failover one path per group, multibus one
// group, group_by_prio one per priority; best (highest priority) first.
func groups(dev string, st paths.DeviceStatus, now time.Time) []GroupView {
	var out []GroupView
	for _, p := range st.Paths {
		pv := pathView(dev, p, now)
		gi := -1
		switch st.Policy.Grouping {
		case paths.GroupMultibus:
			if len(out) > 0 {
				gi = 0
			}
		case paths.GroupByPrio:
			gi = slices.IndexFunc(out, func(g GroupView) bool { return g.Priority == p.Priority })
		}
		if gi < 0 {
			out = append(out, GroupView{Priority: p.Priority})
			gi = len(out) - 1
		}
		out[gi].Paths = append(out[gi].Paths, pv)
		out[gi].Active = out[gi].Active || p.Active
	}
	slices.SortStableFunc(out, func(a, b GroupView) int { return cmp.Compare(b.Priority, a.Priority) })
	return out
}

// Topology returns the devices with their groups and paths.
func (d *Daemon) Topology(name string) ([]TopologyView, error) {
	devs := d.devices()
	if name != "" {
		dev, err := d.findDevice(name)
		if err != nil {
			return nil, err
		}
		devs = []*device{dev}
	}
	now := time.Now()
	out := make([]TopologyView, 0, len(devs))
	for _, dev := range devs {
		st := dev.pd.Snapshot()
		out = append(out, TopologyView{
			DeviceView: d.deviceView(dev, st),
			Grouping:   st.Policy.Grouping.String(), Selector: st.Policy.Selector.String(),
			Failback: st.Policy.Failback.String(), NoPathRetry: st.Policy.NoPathRetry.String(),
			Groups: groups(dev.name, st, now),
		})
	}
	return out, nil
}

// Targets lists the targets, their ports and LUs.
func (d *Daemon) Targets() []TargetView {
	if d.sim == nil {
		return d.staticTargets()
	}
	source := "built-in"
	if d.disc != nil {
		source = "discovered"
	}
	states := map[string]string{}
	for _, dev := range d.devices() {
		for _, p := range dev.pd.Snapshot().Paths {
			states[p.ID] = p.State.String()
		}
	}
	var out []TargetView
	for _, t := range d.sim.Targets {
		pid := t.Target.PortID()
		tv := TargetView{Name: t.Name, PortID: fmt.Sprintf("%016x:%016x", pid.IDExt, pid.IOCGUID), Source: source}
		for pi, port := range t.Ports {
			pv := TargetPortView{Address: port.Addr().String()}
			for _, dev := range d.devices() {
				if dev.target != t.Name {
					continue
				}
				id := PathID(dev.name, t.Name, pi+1)
				pv.Paths = append(pv.Paths, id)
				st, ok := states[id]
				if !ok {
					st = fsm.Lost.String()
				}
				pv.States = append(pv.States, st)
			}
			tv.Ports = append(tv.Ports, pv)
		}
		for _, dev := range d.devices() {
			if dev.target == t.Name {
				tv.LUs = append(tv.LUs, TargetLUView{LUN: simLUN, WWID: dev.wwid, Device: dev.name})
			}
		}
		out = append(out, tv)
	}
	return out
}

// Transitions returns the most recent path transitions of every device,
// oldest first (at most limit; 0 means all kept).
func (d *Daemon) Transitions(limit int) []TransitionView {
	var out []TransitionView
	for _, dev := range d.devices() {
		for _, t := range dev.pd.Transitions() {
			out = append(out, TransitionView{At: t.At, Device: dev.name, Path: t.Path, From: t.From.String(), To: t.To.String(), Reason: t.Reason, Actions: t.Actions})
		}
	}
	slices.SortStableFunc(out, func(a, b TransitionView) int { return a.At.Compare(b.At) })
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	if out == nil {
		out = []TransitionView{}
	}
	return out
}

func (d *Daemon) policyView(dev *device) (PolicyView, error) {
	o, err := d.st.GetPolicy(dev.wwid)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return PolicyView{}, err
	}
	p := dev.pd.Policy()
	return PolicyView{
		Device: dev.name, WWID: dev.wwid, Grouping: p.Grouping.String(), Selector: p.Selector.String(),
		Failback: p.Failback.String(), NoPathRetry: p.NoPathRetry.String(), Override: o, Effective: p.String(),
	}, nil
}

// Policy returns a device's policy and its stored override.
func (d *Daemon) Policy(name string) (PolicyView, error) {
	dev, err := d.findDevice(name)
	if err != nil {
		return PolicyView{}, err
	}
	return d.policyView(dev)
}

// SetPolicy changes a device's override: it is validated, persisted in the
// store, then applied without dropping I/O. On a bad value nothing changes.
func (d *Daemon) SetPolicy(req PolicyRequest) (PolicyView, error) {
	dev, err := d.findDevice(req.Device)
	if err != nil {
		return PolicyView{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	o, err := d.st.GetPolicy(dev.wwid)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return PolicyView{}, err
	}
	set := func(field *string, v string) {
		switch v {
		case "":
		case policyDefault:
			*field = ""
		default:
			*field = v
		}
	}
	set(&o.Grouping, req.Grouping)
	set(&o.Selector, req.Selector)
	set(&o.Failback, req.Failback)
	set(&o.NoPathRetry, req.NoPathRetry)
	if err := config.ValidatePolicyOverride(overrideOf(o)); err != nil {
		return PolicyView{}, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	pol, err := effectivePolicy(d.cfg, dev.wwid, o)
	if err != nil {
		return PolicyView{}, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	if err := d.st.SetPolicy(dev.wwid, o); err != nil {
		return PolicyView{}, err
	}
	if err := dev.pd.SetPolicy(pol); err != nil {
		return PolicyView{}, err
	}
	d.log.Info("policy set", "device", dev.name, "policy", pol.String())
	return d.policyView(dev)
}

func (d *Daemon) pathState(dev *device, id string) string {
	for _, p := range dev.pd.Snapshot().Paths {
		if p.ID == id {
			return p.State.String()
		}
	}
	return fsm.Lost.String()
}

func (d *Daemon) unknownPath(id string) error {
	d.specMu.RLock()
	defer d.specMu.RUnlock()
	var ids []string
	for _, dev := range d.devices() {
		for _, s := range dev.specs {
			ids = append(ids, s.ID)
		}
	}
	return fmt.Errorf("%w %q (paths: %s)", ErrUnknownPath, id, strings.Join(ids, ", "))
}

// FailPath takes a path out of service (persisted: it stays failed across
// restarts until reinstated).
func (d *Daemon) FailPath(id, reason string) (PathResult, error) {
	dev := d.deviceOfPath(id)
	if dev == nil {
		return PathResult{}, d.unknownPath(id)
	}
	if reason == "" {
		reason = "failed by the admin"
	}
	if err := d.st.SetPathAdminState(id, true, reason); err != nil {
		return PathResult{}, err
	}
	if err := dev.pd.FailPath(id, reason); err != nil {
		if errors.Is(err, paths.ErrUnknownPath) {
			return PathResult{}, fmt.Errorf("%w %q: the path was removed (lost)", ErrUnknownPath, id)
		}
		return PathResult{}, err
	}
	return PathResult{Path: id, State: d.pathState(dev, id)}, nil
}

// ReinstatePath returns a path to service.
func (d *Daemon) ReinstatePath(id string) (PathResult, error) {
	dev := d.deviceOfPath(id)
	if dev == nil {
		return PathResult{}, d.unknownPath(id)
	}
	if err := d.st.SetPathAdminState(id, false, ""); err != nil {
		return PathResult{}, err
	}
	if err := dev.pd.ReinstatePath(id); err != nil {
		if errors.Is(err, paths.ErrUnknownPath) {
			return PathResult{}, fmt.Errorf("%w %q: the path was removed (lost)", ErrUnknownPath, id)
		}
		return PathResult{}, err
	}
	return PathResult{Path: id, State: d.pathState(dev, id)}, nil
}
