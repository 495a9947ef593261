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
	devs        []*device
	ublkNote    string
	reg         *prometheus.Registry
	ctlAddr     string
	metricsAddr string

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
		d.sim, err = newSimFabric(d.log, d.opts.SimLinkLatency)
		if err != nil {
			return &OpError{Op: "build simulated fabric", Err: err}
		}
		defer func() { err = errors.Join(err, d.sim.Close()) }()
	default:
		return &OpError{Op: "build fabric", Err: fmt.Errorf("%w: the rdma provider (internal/verbs/rdma) is not built yet; use --fabric sim", ErrFabricUnavailable)}
	}
	d.ublkNote = ublkNote()
	d.log.Info("ublk", "status", d.ublkNote)

	g, gctx := errgroup.WithContext(ctx)
	defer func() {
		for _, dev := range d.devs {
			err = errors.Join(err, dev.pd.Close())
			if d.opts.RemoveDevices {
				err = errors.Join(err, removeDeviceFile(d.opts.RuntimeDir, dev.name))
			}
		}
	}()
	if err := d.buildDevices(gctx, g); err != nil {
		cancel()
		return errors.Join(err, g.Wait())
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

	notify(fmt.Sprintf("READY=1\nSTATUS=serving %d devices (%s fabric)", len(d.devs), d.opts.Fabric))
	d.log.Info("ready", "devices", len(d.devs), "fabric", d.opts.Fabric, "socket", d.ctlAddr, "metrics", d.metricsAddr)
	close(d.ready)
	if d.opts.OnReady != nil {
		d.opts.OnReady(d)
	}
	return g.Wait()
}

// ublkNote says whether ublk devices are served, and why not.
func ublkNote() string {
	if err := (ublk.Linux{}).Probe(); err != nil {
		return "absent (" + err.Error() + "): devices are served to in-process queue runners only"
	}
	return "available, but not attached: the paths↔ublk adapter is not built yet; devices are served to in-process queue runners only"
}

// buildDevices makes one device per LU and starts its queue runners (on g)
// and paths.
func (d *Daemon) buildDevices(ctx context.Context, g *errgroup.Group) error {
	admin, err := d.st.ListPathAdmin()
	if err != nil {
		return &OpError{Op: "read path admin state", Err: err}
	}
	overrides, err := d.st.ListPolicies()
	if err != nil {
		return &OpError{Op: "read policy overrides", Err: err}
	}
	for ti, t := range d.sim.Targets {
		cfg := t.LU.Config()
		ident := store.Identity{
			Capacity: uint64(cfg.BlockSize) * cfg.Blocks, LogicalBlockSize: uint32(cfg.BlockSize), PhysicalBlockSize: uint32(cfg.BlockSize),
			Vendor: "LIO-ORG", Product: cfg.Product, Revision: "sim",
		}
		devID, created, err := d.st.Bind(t.WWID(), ident)
		if err != nil {
			return &OpError{Op: "bind " + t.WWID(), Err: err}
		}
		ident.WWID, ident.DevID = t.WWID(), devID
		dev := &device{name: devName(devID), wwid: t.WWID(), ident: ident, target: t.Name, hist: newLatencyHist()}
		pol, err := effectivePolicy(d.cfg, dev.wwid, overrides[dev.wwid])
		if err != nil {
			d.log.Warn("stored policy override ignored", "device", dev.name, "err", err)
			if pol, err = effectivePolicy(d.cfg, dev.wwid, store.Policy{}); err != nil {
				return &OpError{Op: "policy of " + dev.name, Err: err}
			}
		}
		if d.opts.SimWorkload {
			dev.wl = newWorkload(int64(ident.Capacity), d.opts.SimWorkloadDepth, uint64(ti)+1)
		}
		r := newQueueRunner(dev.wl, dev.hist)
		dev.runners = []*queueRunner{r}
		dev.pd, err = paths.New(paths.Config{
			Name: dev.name, BlockSize: cfg.BlockSize, Blocks: cfg.Blocks, Policy: pol,
			Queues: []paths.QueueConfig{r.queueConfig()}, Logger: d.log, Seed: uint64(devID) + 1,
		})
		if err != nil {
			return &OpError{Op: "create device " + dev.name, Err: err}
		}
		r.q = dev.pd.Queue(0)
		d.devs = append(d.devs, dev)
		if err := writeDeviceFile(d.opts.RuntimeDir, dev); err != nil {
			return &OpError{Op: "write udev file of " + dev.name, Err: err}
		}
		d.log.Info("device", "name", dev.name, "wwid", dev.wwid, "new", created, "policy", pol.String())
		for _, r := range dev.runners {
			g.Go(func() error { return r.run(ctx, d.opts.DrainTimeout) })
		}
		dev.specs = d.sim.pathSpecs(t, dev.name, d.cfg.Defaults.Path, d.log)
	}
	// One reader of the initiator's async events, fanned out to every
	// device (a channel delivers each event to one receiver only).
	g.Go(func() error {
		for {
			select {
			case ev, ok := <-d.sim.Initiator.Events():
				if !ok {
					return nil
				}
				for _, dev := range d.devs {
					dev.pd.PortEvent(ev.Device, ev.Port, ev.Kind)
				}
			case <-ctx.Done():
				return nil
			}
		}
	})
	for _, dev := range d.devs {
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
	return nil
}

// deviceOfPath finds the device a path id belongs to.
func (d *Daemon) deviceOfPath(id string) *device {
	for _, dev := range d.devs {
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
	pols := make([]paths.Policy, len(d.devs))
	var bad []string
	for i, dev := range d.devs {
		if pols[i], err = effectivePolicy(cfg, dev.wwid, overrides[dev.wwid]); err != nil {
			bad = append(bad, dev.name+": "+err.Error())
		}
	}
	if len(bad) > 0 {
		return &OpError{Op: "reload", Err: fmt.Errorf("%w: %s", ErrBadRequest, strings.Join(bad, "; "))}
	}
	for i, dev := range d.devs {
		if err := dev.pd.SetPolicy(pols[i]); err != nil {
			return &OpError{Op: "reload " + dev.name, Err: err}
		}
	}
	d.cfg = cfg
	d.log.Info("reloaded", "devices", len(d.devs))
	return nil
}
