package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/srp-mpathd/srp-mpathd/internal/paths"
)

// lateProbeInterval paces the retries of endpoints whose probe failed at
// start when the configuration's reconnect_delay is off.
const lateProbeInterval = 10 * time.Second

// probeLater hands endpoints whose probe failed (at start, or when
// discovery found them) to keepPaths.
func (d *Daemon) probeLater(eps ...*endpoint) {
	d.lateMu.Lock()
	defer d.lateMu.Unlock()
	for _, ep := range eps {
		if !slices.Contains(d.late, ep) {
			d.late = append(d.late, ep)
		}
	}
}

// keepPaths probes, each reconnect_delay until ctx ends, every endpoint
// that has no path yet: those whose probe failed (probeLater) and those
// whose path dev_loss_tmo removed (a lost path is a new login, identity
// check included, not a reconnect: the paths package forgot it). A probe
// that succeeds is admitted by admitEndpoint; one that fails is tried at
// the next tick. Probes of one tick run concurrently, each bounded by the
// probe timeout.
func (d *Daemon) keepPaths(ctx context.Context, g *errgroup.Group) error {
	t := time.NewTimer(d.keepInterval())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		// Read at every tick: a reload changes the pace.
		t.Reset(d.keepInterval())
		d.lateMu.Lock()
		pending := d.late
		d.late = nil
		d.lateMu.Unlock()
		for _, ep := range d.lostEndpoints() {
			if !slices.Contains(pending, ep) {
				pending = append(pending, ep)
			}
		}
		var wg sync.WaitGroup
		for _, ep := range pending {
			wg.Go(func() {
				lus, err := probeEndpoint(ctx, ep, d.opts.ProbeTimeout)
				switch {
				case ctx.Err() != nil:
				case err != nil:
					d.log.Debug("path still down", "path", ep.desc, "err", err)
					d.probeLater(ep)
				default:
					d.admitEndpoint(ctx, g, ep, lus)
				}
			})
		}
		wg.Wait()
	}
}

// keepInterval is keepPaths' pace: the configuration's reconnect_delay, or
// lateProbeInterval when that is off.
func (d *Daemon) keepInterval() time.Duration {
	rd := d.config().Defaults.Path.ReconnectDelay
	if iv := rd.Duration(); !rd.IsOff() && iv > 0 {
		return iv
	}
	return lateProbeInterval
}

// lostEndpoints are the endpoints of paths a device had and no longer has
// (dev_loss_tmo removed them).
func (d *Daemon) lostEndpoints() []*endpoint {
	var lost []*endpoint
	for _, dev := range d.devices() {
		have := map[string]bool{}
		for _, p := range dev.pd.Snapshot().Paths {
			have[p.ID] = true
		}
		d.specMu.RLock()
		for _, s := range dev.specs {
			if ep := dev.eps[s.ID]; ep != nil && !have[s.ID] && !slices.Contains(lost, ep) {
				lost = append(lost, ep)
			}
		}
		d.specMu.RUnlock()
	}
	return lost
}

// recordSpec remembers a path of dev and its endpoint; a path admitted
// again after it was lost keeps its one entry.
func (d *Daemon) recordSpec(dev *device, spec paths.PathSpec, ep *endpoint) (again bool) {
	d.specMu.Lock()
	defer d.specMu.Unlock()
	if dev.eps == nil {
		dev.eps = map[string]*endpoint{}
	}
	dev.eps[spec.ID] = ep
	if i := slices.IndexFunc(dev.specs, func(s paths.PathSpec) bool { return s.ID == spec.ID }); i >= 0 {
		dev.specs[i] = spec
		return true
	}
	dev.specs = append(dev.specs, spec)
	return false
}

// admitEndpoint adds ep as a path of every device whose LU it reaches; an
// LU first seen now gets its device (bound in the store, its queue
// runners started on g, its block device started once the path is in).
// An admin fail stored for the path is applied at once. Admissions are
// serialised (admitMu), so two paths of one new LU make one device.
func (d *Daemon) admitEndpoint(ctx context.Context, g *errgroup.Group, ep *endpoint, lus []LUInfo) {
	d.admitMu.Lock()
	defer d.admitMu.Unlock()
	for _, lu := range lus {
		dev := d.deviceOfWWID(lu.WWID)
		created := false
		if dev == nil {
			var err error
			if dev, err = d.addDevice(ctx, g, lu, ep.target, 1); err != nil {
				d.log.Error("LU found after start not served", "path", ep.desc, "lun", lu.LUN, "wwid", lu.WWID, "err", err)
				continue
			}
			if dev == nil {
				continue
			}
			created = true
		}
		if !dev.lu.sameIdentity(lu) {
			d.log.Error("path refused", "err", fmt.Errorf("%w: path %s, LUN %d: %s, but device %s is %s",
				ErrIdentityMismatch, ep.desc, lu.LUN, lu.describe(), dev.name, dev.lu.describe()))
			continue
		}
		spec := d.pathSpec(dev, ep, lu)
		if err := dev.pd.AddPath(ctx, spec); err != nil {
			if errors.Is(err, paths.ErrPathExists) {
				continue // an endpoint of several LUs, or probed twice: nothing to do
			}
			d.log.Error("late path not added", "path", spec.ID, "err", err)
			continue
		}
		again := d.recordSpec(dev, spec, ep)
		d.log.Info("path admitted after start", "device", dev.name, "path", spec.ID, "new_device", created, "lost_before", again)
		admin, err := d.st.ListPathAdmin()
		if err != nil {
			d.log.Error("admin state of a late path not read", "path", spec.ID, "err", err)
		}
		for _, a := range admin {
			if a.Failed && a.PathID == spec.ID {
				if err := dev.pd.FailPath(spec.ID, "admin (restored): "+a.Reason); err != nil {
					d.log.Error("admin state of a late path not restored", "path", spec.ID, "err", err)
				}
			}
		}
		if created {
			if err := d.startBlockDevice(ctx, dev); err != nil {
				d.log.Error("block device of a late LU not started", "device", dev.name, "err", err)
			}
		}
	}
}

// deviceOfWWID finds the device of an LU.
func (d *Daemon) deviceOfWWID(wwid string) *device {
	for _, dev := range d.devices() {
		if dev.wwid == wwid {
			return dev
		}
	}
	return nil
}
