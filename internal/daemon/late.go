package daemon

import (
	"context"
	"fmt"
	"time"
)

// lateProbeInterval paces the retries of endpoints whose probe failed at
// start when the configuration's reconnect_delay is off.
const lateProbeInterval = 10 * time.Second

// admitLate retries the probe of every endpoint that failed at start, each
// reconnect_delay, until each succeeds or ctx ends. A path that comes up
// joins the device of its WWID if it reports the same identity (an LU
// first seen now gets no device until the daemon restarts: the device list
// is fixed once the daemon is ready).
func (d *Daemon) admitLate(ctx context.Context, pending []*endpoint) error {
	interval := d.cfg.Defaults.Path.ReconnectDelay.Duration()
	if d.cfg.Defaults.Path.ReconnectDelay.IsOff() || interval <= 0 {
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
			d.admitEndpoint(ctx, ep, lus)
		}
		pending = still
	}
	return nil
}

// admitEndpoint adds ep as a path of every device whose LU it reaches; an
// admin fail stored for the path is applied at once.
func (d *Daemon) admitEndpoint(ctx context.Context, ep *endpoint, lus []LUInfo) {
	for _, lu := range lus {
		dev := d.deviceOfWWID(lu.WWID)
		if dev == nil {
			d.log.Warn("LU found after start: it is served once the daemon restarts", "path", ep.desc, "lun", lu.LUN, "wwid", lu.WWID)
			continue
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
		dev.specs = append(dev.specs, spec)
		d.specMu.Unlock()
		d.log.Info("path admitted after start", "device", dev.name, "path", spec.ID)
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
	}
}

// deviceOfWWID finds the device of an LU (the list is fixed once ready).
func (d *Daemon) deviceOfWWID(wwid string) *device {
	for _, dev := range d.devs {
		if dev.wwid == wwid {
			return dev
		}
	}
	return nil
}
