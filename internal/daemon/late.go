package daemon

import (
	"context"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/srp-mpathd/srp-mpathd/internal/paths"
)

// lateProbeInterval paces the retries of endpoints whose probe failed at
// start when the configuration's reconnect_delay is off.
const lateProbeInterval = 10 * time.Second

// admitLate retries the probe of every endpoint that failed (at start, or
// when discovery found it), each reconnect_delay, until each succeeds or
// ctx ends. A path that comes up is admitted by admitEndpoint.
func (d *Daemon) admitLate(ctx context.Context, g *errgroup.Group, pending []*endpoint) error {
	ps := d.config().Defaults.Path
	interval := ps.ReconnectDelay.Duration()
	if ps.ReconnectDelay.IsOff() || interval <= 0 {
		interval = lateProbeInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for len(pending) > 0 {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		var still []*endpoint
		for _, ep := range pending {
			lus, err := probeEndpoint(ctx, ep, d.opts.ProbeTimeout)
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				d.log.Debug("path still down", "path", ep.desc, "err", err)
				still = append(still, ep)
				continue
			}
			d.admitEndpoint(ctx, g, ep, lus)
		}
		pending = still
	}
	return nil
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
			d.log.Error("late path not added", "path", spec.ID, "err", err)
			continue
		}
		d.specMu.Lock()
		if !slices.ContainsFunc(dev.specs, func(s paths.PathSpec) bool { return s.ID == spec.ID }) {
			dev.specs = append(dev.specs, spec)
		}
		d.specMu.Unlock()
		d.log.Info("path admitted after start", "device", dev.name, "path", spec.ID, "new_device", created)
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
