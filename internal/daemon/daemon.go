package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/srp-mpathd/srp-mpathd/internal/config"
	"github.com/srp-mpathd/srp-mpathd/internal/paths"
	"github.com/srp-mpathd/srp-mpathd/internal/store"
	"github.com/srp-mpathd/srp-mpathd/internal/ublk"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
)

// shutdownTimeout bounds the HTTP servers' graceful shutdown.
const shutdownTimeout = 5 * time.Second

// Daemon is the composition root. Build it with New, run it with Run (once).
type Daemon struct {
	opts    Options
	log     *slog.Logger
	version string

	ready   chan struct{}
	started time.Time

	// Set while starting, read-only once ready.
	st          *store.Store
	sim         *SimFabric
	rdma        *rdmaFabric
	ublkCtl     *ublk.Control
	disc        *discoverer // nil when discovery is off
	ublkNote    string
	reg         *prometheus.Registry
	ctlAddr     string
	metricsAddr string

	// devsMu guards devs: discovery and late paths add devices while the
	// control API, the metrics and the event readers list them
	// (devices()). Devices are only added, never removed, while running.
	devsMu sync.RWMutex
	devs   []*device

	// specMu guards every device's specs and eps: a path admitted late
	// (keepPaths) is appended while the control API reads them.
	specMu sync.RWMutex
	// lateMu guards late, the endpoints whose probe failed; keepPaths
	// retries them.
	lateMu sync.Mutex
	late   []*endpoint
	// admitMu serialises admissions after start, so that two paths of a
	// new LU found at once make one device.
	admitMu sync.Mutex

	// mu serialises policy changes (SetPolicy and reloads) and guards cfg.
	mu  sync.Mutex
	cfg *config.Config
}

// New validates the options; nothing is opened until Run.
func New(opts Options, version string) (*Daemon, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Daemon{opts: o, log: o.Logger, version: version, ready: make(chan struct{}), cfg: o.Config}, nil
}

// Ready is closed once every task runs (READY=1 was sent).
func (d *Daemon) Ready() <-chan struct{} { return d.ready }

// Sim returns the simulated fabric (nil unless Fabric is FabricSim), valid
// once Ready is closed: the demo and tests inject faults through it.
func (d *Daemon) Sim() *SimFabric { return d.sim }

// SocketPath is the control socket (valid once ready).
func (d *Daemon) SocketPath() string { return d.ctlAddr }

// MetricsAddr is the metrics listener's address (valid once ready; "" if
// disabled).
func (d *Daemon) MetricsAddr() string { return d.metricsAddr }

func sdNotify(state string) error {
	_, err := sddaemon.SdNotify(false, state)
	return err
}

// Run starts the daemon and serves until ctx ends, then stops gracefully.
// Order of effects (see doc.go): store → fabric → devices (bind identity,
// write the udev file, queue runners, paths) → admin state → listeners →
// READY=1; at stop: STOPPING=1 → listeners closed → queues drained →
// devices closed (their udev files kept unless RemoveDevices) → fabric →
// store.
func (d *Daemon) Run(ctx context.Context) (err error) {
	d.started = time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	notify := func(state string) {
		if err := d.opts.Notify(state); err != nil {
			d.log.Warn("sd_notify failed", "state", state, "err", err)
		}
	}
	d.st, err = store.Open(d.opts.StorePath, store.Options{Logger: d.log})
	if err != nil {
		return &OpError{Op: "open store", Err: err}
	}
	defer func() { err = errors.Join(err, d.st.Close()) }()

	switch d.opts.Fabric {
	case FabricSim:
		d.sim, err = newSimFabric(d.log, d.opts.SimLinkLatency, d.opts.SimTopology)
		if err != nil {
			return &OpError{Op: "build simulated fabric", Err: err}
		}
		defer func() { err = errors.Join(err, d.sim.Close()) }()
		if d.opts.UblkDriver != nil {
			if d.ublkCtl, err = openUblk(d.opts.UblkDriver, d.log); err != nil {
				return &OpError{Op: "open ublk control", Err: err}
			}
			defer func() { err = errors.Join(err, d.ublkCtl.Close()) }()
		}
	default:
		d.rdma, err = openRDMA(d.log)
		if err != nil {
			return &OpError{Op: "build fabric", Err: err}
		}
		defer func() { err = errors.Join(err, d.rdma.Close()) }()
		if !d.opts.NoUblk {
			drv := d.opts.UblkDriver
			if drv == nil {
				drv = ublk.Linux{}
			}
			if d.ublkCtl, err = openUblk(drv, d.log); err != nil {
				d.log.Warn("no ublk block devices: devices are served to in-process queue runners only", "err", err)
			} else {
				defer func() { err = errors.Join(err, d.ublkCtl.Close()) }()
			}
		}
	}
	d.ublkNote = d.ublkStatus()
	d.log.Info("ublk", "status", d.ublkNote)

	g, gctx := errgroup.WithContext(ctx)
	defer func() {
		for _, dev := range d.devices() {
			err = errors.Join(err, d.stopBlockDevice(dev))
			err = errors.Join(err, dev.pd.Close())
			for _, free := range dev.free {
				err = errors.Join(err, free())
			}
			if d.opts.RemoveDevices {
				err = errors.Join(err, removeDeviceFile(d.opts.RuntimeDir, dev.name))
			}
		}
	}()
	found, err := d.startDiscovery(gctx, g)
	if err != nil {
		cancel()
		return errors.Join(err, g.Wait())
	}
	if err := d.buildDevices(gctx, g, found); err != nil {
		cancel()
		return errors.Join(err, g.Wait())
	}
	if d.disc != nil {
		g.Go(func() error { return d.runDiscovery(gctx, g) })
	}
	d.reg = newRegistry(d, d.version)
	if !d.opts.NoListeners {
		if err := d.serve(gctx, g); err != nil {
			cancel()
			return errors.Join(err, g.Wait())
		}
	}
	g.Go(func() error { return d.reloadLoop(gctx) })
	g.Go(func() error { return d.watchdog(gctx, notify) })
	g.Go(func() error {
		<-gctx.Done()
		notify("STOPPING=1")
		d.log.Info("stopping", "remove_devices", d.opts.RemoveDevices)
		return nil
	})

	ndev := len(d.devices())
	notify(fmt.Sprintf("READY=1\nSTATUS=serving %d devices (%s fabric)", ndev, d.opts.Fabric))
	d.log.Info("ready", "devices", ndev, "fabric", d.opts.Fabric, "socket", d.ctlAddr, "metrics", d.metricsAddr)
	close(d.ready)
	if d.opts.OnReady != nil {
		d.opts.OnReady(d)
	}
	return g.Wait()
}

// ublkStatus says whether ublk devices are served, and why not.
func (d *Daemon) ublkStatus() string {
	switch {
	case d.ublkCtl != nil:
		return "serving: every device is a ublk block device (/dev/ublkbN)"
	case d.opts.Fabric == FabricSim:
		return "not used with the simulated fabric: devices are served to in-process queue runners only"
	case d.opts.NoUblk:
		return "disabled (--no-ublk): devices are served to in-process queue runners only"
	}
	if err := (ublk.Linux{}).Probe(); err != nil {
		return "absent (" + err.Error() + "): devices are served to in-process queue runners only"
	}
	return "unavailable (see the log): devices are served to in-process queue runners only"
}

// devices lists the served devices (a snapshot: discovery may add more).
func (d *Daemon) devices() []*device {
	d.devsMu.RLock()
	defer d.devsMu.RUnlock()
	return d.devs
}

// config returns the configuration in force.
func (d *Daemon) config() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// endpoints lists the fabric's paths: on the simulated fabric the ones
// discovery found (found), or the built-in topology when discovery is
// off; on rdma-core the static targets plus what discovery found.
func (d *Daemon) endpoints(found []*endpoint) []*endpoint {
	if d.sim != nil {
		if d.disc != nil {
			return found
		}
		return d.sim.endpoints(d.cfg.Defaults.Path, d.log)
	}
	eps, errs := d.rdma.endpoints(d.cfg, d.opts.ProbeTimeout, d.log)
	for _, err := range errs {
		d.log.Error("target not used", "err", err)
	}
	if len(d.cfg.Targets) == 0 && d.disc == nil {
		d.log.Warn("no targets configured (targets: in the config file) and no discovery: no devices")
	}
	return append(eps, found...)
}

// eventDevices are the local RDMA devices whose async events reach the
// paths.
func (d *Daemon) eventDevices() []verbs.Device {
	if d.sim != nil {
		return []verbs.Device{d.sim.Initiator}
	}
	return d.rdma.order
}

// discover probes every endpoint (login, REPORT LUNS, identity of each LU)
// and groups the paths by WWID; refused paths are logged. failed are the
// endpoints whose probe failed (keepPaths retries them).
func (d *Daemon) discover(ctx context.Context, discovered []*endpoint) (groups []*lunGroup, failed []*endpoint) {
	eps := d.endpoints(discovered)
	found := make([]pathLUs, len(eps))
	var wg sync.WaitGroup
	for i, ep := range eps {
		wg.Go(func() {
			lus, err := probeEndpoint(ctx, ep, d.opts.ProbeTimeout)
			found[i] = pathLUs{ep: ep, lus: lus, err: err}
		})
	}
	wg.Wait()
	for _, f := range found {
		if f.err != nil {
			d.log.Error("path not used yet: its probe failed (retried in the background)", "path", f.ep.desc, "err", f.err)
			failed = append(failed, f.ep)
			continue
		}
		for _, lu := range f.lus {
			d.log.Info("LU found", "path", f.ep.desc, "lun", lu.LUN, "wwid", lu.WWID, "vendor", lu.Vendor, "product", lu.Product,
				"blocks", lu.Blocks, "block_size", lu.BlockSize, "write_cache", lu.WriteCache)
		}
	}
	groups, refused := groupPaths(found)
	for _, err := range refused {
		d.log.Error("path refused", "err", err)
	}
	return groups, failed
}

// buildDevices makes one device per LU, starts its queue runners (on g) or
// its ublk device, and its paths. found are the endpoints discovery found.
func (d *Daemon) buildDevices(ctx context.Context, g *errgroup.Group, found []*endpoint) error {
	admin, err := d.st.ListPathAdmin()
	if err != nil {
		return &OpError{Op: "read path admin state", Err: err}
	}
	groups, failed := d.discover(ctx, found)
	for _, grp := range groups {
		dev, err := d.addDevice(ctx, g, grp.ref, grp.paths[0].ep.target, len(grp.paths))
		if err != nil {
			return err
		}
		if dev == nil {
			continue
		}
		for _, lp := range grp.paths {
			d.recordSpec(dev, d.pathSpec(dev, lp.ep, lp.lu), lp.ep)
		}
	}
	devs := d.devices()
	// One reader of each local device's async events, fanned out to every
	// device (a channel delivers each event to one receiver only).
	for _, vd := range d.eventDevices() {
		g.Go(func() error {
			for {
				select {
				case ev, ok := <-vd.Events():
					if !ok {
						return nil
					}
					for _, dev := range d.devices() {
						dev.pd.PortEvent(ev.Device, ev.Port, ev.Kind)
					}
				case <-ctx.Done():
					return nil
				}
			}
		})
	}
	for _, dev := range devs {
		for _, spec := range dev.specs {
			if err := dev.pd.AddPath(ctx, spec); err != nil {
				return &OpError{Op: "add path " + spec.ID, Err: err}
			}
		}
	}
	for _, a := range admin {
		if !a.Failed {
			continue
		}
		if dev := d.deviceOfPath(a.PathID); dev != nil {
			if err := dev.pd.FailPath(a.PathID, "admin (restored): "+a.Reason); err != nil {
				return &OpError{Op: "restore admin state of " + a.PathID, Err: err}
			}
		}
	}
	// The block devices come last: their partition scan needs the paths.
	for _, dev := range devs {
		if err := d.startBlockDevice(ctx, dev); err != nil {
			return err
		}
	}
	d.probeLater(failed...)
	g.Go(func() error { return d.keepPaths(ctx, g) })
	return nil
}

// addDevice makes the device of LU lu (first reached through target):
// binds its WWID in the store, creates the paths.Device with its policy,
// writes its udev file and starts its queue runners on g. It returns nil
// without an error when the LU is not served (blacklisted, or it differs
// from its stored identity). The caller adds the paths, then starts the
// block device.
func (d *Daemon) addDevice(ctx context.Context, g *errgroup.Group, lu LUInfo, target string, npaths int) (*device, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if bl, rule := d.cfg.Blacklisted(lu.WWID, lu.Vendor, lu.Product); bl {
		d.log.Info("LU blacklisted", "wwid", lu.WWID, "rule", rule)
		return nil, nil
	}
	ident := store.Identity{
		Capacity: lu.Capacity(), LogicalBlockSize: lu.BlockSize, PhysicalBlockSize: lu.PhysicalBlockSize,
		Vendor: lu.Vendor, Product: lu.Product, Revision: lu.Revision,
	}
	devID, created, err := d.st.Bind(lu.WWID, ident)
	if err != nil {
		if _, ok := errors.AsType[*store.MismatchError](err); ok {
			d.log.Error("LU not served: it differs from its stored identity", "wwid", lu.WWID, "err", err)
			return nil, nil
		}
		return nil, &OpError{Op: "bind " + lu.WWID, Err: err}
	}
	ident.WWID, ident.DevID = lu.WWID, devID
	dev := &device{name: devName(devID), wwid: lu.WWID, ident: ident, lu: lu, target: target, hist: newLatencyHist()}
	ov, err := d.st.GetPolicy(dev.wwid)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, &OpError{Op: "read policy override of " + dev.name, Err: err}
	}
	pol, err := effectivePolicy(d.cfg, dev.wwid, ov)
	if err != nil {
		d.log.Warn("stored policy override ignored", "device", dev.name, "err", err)
		ov = store.Policy{}
		if pol, err = effectivePolicy(d.cfg, dev.wwid, ov); err != nil {
			return nil, &OpError{Op: "policy of " + dev.name, Err: err}
		}
	}
	ds, err := d.cfg.Effective(dev.wwid, overrideOf(ov))
	if err != nil {
		return nil, &OpError{Op: "settings of " + dev.name, Err: err}
	}
	d.devsMu.Lock()
	seed := uint64(len(d.devs)) + 1
	d.devsMu.Unlock()
	if err := d.newDevice(dev, ds, pol, seed); err != nil {
		return nil, err
	}
	if err := writeDeviceFile(d.opts.RuntimeDir, dev); err != nil {
		return nil, errors.Join(&OpError{Op: "write udev file of " + dev.name, Err: err}, dev.pd.Close())
	}
	d.devsMu.Lock()
	d.devs = append(d.devs, dev)
	d.devsMu.Unlock()
	d.log.Info("device", "name", dev.name, "wwid", dev.wwid, "new", created, "paths", npaths, "policy", pol.String())
	for _, r := range dev.runners {
		g.Go(func() error { return r.run(ctx, d.opts.DrainTimeout) })
	}
	return dev, nil
}

// pathSpec is the paths.PathSpec of endpoint ep for dev, whose LU it
// reaches as lu.
func (d *Daemon) pathSpec(dev *device, ep *endpoint, lu LUInfo) paths.PathSpec {
	return paths.PathSpec{
		ID: ep.pathID(dev.name), Target: ep.tport, Device: ep.dev, DeviceName: ep.devName,
		Port: ep.port, LUN: lu.LUN, Connect: connector(ep, lu, dev.chanDepth, d.log),
	}
}

// newDevice creates dev's paths.Device: with ublk, queues whose memory
// comes when ublk starts them; without, in-process queue runners.
func (d *Daemon) newDevice(dev *device, ds config.DeviceSettings, pol paths.Policy, seed uint64) error {
	cfg := paths.Config{
		Name: dev.name, BlockSize: int(dev.lu.BlockSize), Blocks: dev.lu.Blocks, Policy: pol,
		Logger: d.log, Seed: uint64(dev.ident.DevID) + seed,
	}
	if d.ublkCtl != nil {
		dev.queues, dev.depth, dev.maxIO = ds.UblkQueues, ds.QueueDepth, int(ds.MaxIOSize)
		for range dev.queues {
			cfg.Queues = append(cfg.Queues, paths.QueueConfig{Depth: dev.depth})
		}
		dev.chanDepth = dev.depth + chanSlack
	} else {
		mem, err := d.runnerMemory(dev)
		if err != nil {
			return &OpError{Op: "queue memory of " + dev.name, Err: err}
		}
		if d.opts.SimWorkload {
			dev.wl = newWorkload(int64(dev.ident.Capacity), d.opts.SimWorkloadDepth, seed)
		}
		r := newQueueRunner(dev.wl, dev.hist, mem)
		dev.runners = []*queueRunner{r}
		cfg.Queues = []paths.QueueConfig{r.queueConfig()}
		dev.chanDepth = runnerDepth + chanSlack
	}
	var err error
	if dev.pd, err = paths.New(cfg); err != nil {
		return &OpError{Op: "create device " + dev.name, Err: err}
	}
	for _, r := range dev.runners {
		r.q = dev.pd.Queue(0)
	}
	return nil
}

// runnerMemory is a queue runner's tag memory: on the Go heap for the
// simulator, off-heap (registered with real RDMA devices) otherwise.
func (d *Daemon) runnerMemory(dev *device) ([]byte, error) {
	size := runnerDepth * runnerTagSize
	if d.sim != nil {
		return make([]byte, size), nil
	}
	mem, free, err := ublk.AllocQueueMemory(size)
	if err != nil {
		return nil, err
	}
	dev.free = append(dev.free, free)
	return mem, nil
}

// deviceOfPath finds the device a path id belongs to.
func (d *Daemon) deviceOfPath(id string) *device {
	d.specMu.RLock()
	defer d.specMu.RUnlock()
	for _, dev := range d.devices() {
		for _, s := range dev.specs {
			if s.ID == id {
				return dev
			}
		}
	}
	return nil
}

// serve binds the control socket and the metrics listener and serves them
// on g until ctx ends.
func (d *Daemon) serve(ctx context.Context, g *errgroup.Group) error {
	ln, err := listenControl(d.opts.SocketPath, d.opts.SocketGroup)
	if err != nil {
		return &OpError{Op: "listen on " + d.opts.SocketPath, Err: err}
	}
	d.ctlAddr = d.opts.SocketPath
	servers := []*http.Server{{Handler: d.controlHandler(), ErrorLog: slog.NewLogLogger(d.log.Handler(), slog.LevelWarn)}}
	lns := []net.Listener{ln}
	if d.opts.MetricsListen != "-" {
		mln, err := net.Listen("tcp", d.opts.MetricsListen)
		if err != nil {
			_ = ln.Close()
			return &OpError{Op: "listen on " + d.opts.MetricsListen, Err: err}
		}
		d.metricsAddr = mln.Addr().String()
		servers = append(servers, &http.Server{Handler: d.metricsHandler(), ErrorLog: slog.NewLogLogger(d.log.Handler(), slog.LevelWarn)})
		lns = append(lns, mln)
	}
	for i, srv := range servers {
		g.Go(func() error {
			if err := srv.Serve(lns[i]); !errors.Is(err, http.ErrServerClosed) {
				return &OpError{Op: "serve " + lns[i].Addr().String(), Err: err}
			}
			return nil
		})
		g.Go(func() error {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer cancel()
			return srv.Shutdown(sctx)
		})
	}
	return nil
}

// watchdog sends WATCHDOG=1 at half the interval systemd asks for, while the
// daemon's tasks run.
func (d *Daemon) watchdog(ctx context.Context, notify func(string)) error {
	iv, err := sddaemon.SdWatchdogEnabled(false)
	if err != nil || iv <= 0 {
		return nil
	}
	t := time.NewTicker(iv / 2)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			notify("WATCHDOG=1")
		case <-ctx.Done():
			return nil
		}
	}
}

// reloadLoop applies a reload for every request on Options.Reload.
func (d *Daemon) reloadLoop(ctx context.Context) error {
	for {
		select {
		case _, ok := <-d.opts.Reload:
			if !ok {
				return nil
			}
			if err := d.Reload(); err != nil {
				d.log.Error("reload failed; the running policies are kept", "err", err)
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// Reload reads the configuration again (Options.ReloadConfig) and the
// store's overrides, and applies them to every device without dropping
// I/O. Every policy is computed and validated first: on any error nothing
// changes.
func (d *Daemon) Reload() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	cfg := d.cfg
	if d.opts.ReloadConfig != nil {
		c, err := d.opts.ReloadConfig()
		if err != nil {
			return &OpError{Op: "reload", Err: err}
		}
		cfg = c
	}
	overrides, err := d.st.ListPolicies()
	if err != nil {
		return &OpError{Op: "reload", Err: err}
	}
	pols := make([]paths.Policy, len(d.devices()))
	var bad []string
	for i, dev := range d.devices() {
		if pols[i], err = effectivePolicy(cfg, dev.wwid, overrides[dev.wwid]); err != nil {
			bad = append(bad, dev.name+": "+err.Error())
		}
	}
	if len(bad) > 0 {
		return &OpError{Op: "reload", Err: fmt.Errorf("%w: %s", ErrBadRequest, strings.Join(bad, "; "))}
	}
	for i, dev := range d.devices() {
		if err := dev.pd.SetPolicy(pols[i]); err != nil {
			return &OpError{Op: "reload " + dev.name, Err: err}
		}
	}
	d.cfg = cfg
	d.log.Info("reloaded", "devices", len(d.devices()))
	return nil
}
