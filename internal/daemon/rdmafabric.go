package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/config"
	"github.com/srp-mpathd/srp-mpathd/internal/srp"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs/rdma"
)

// sysfsRoot is where ReadSysfs finds /sys/class/infiniband.
const sysfsRoot = "/sys"

// rdmaFabric is FabricRDMA: the host's RDMA devices through rdma-core, and
// the configuration's static targets (one target entry = one path). Each
// local device is opened once per process and shared by every path that
// leaves from it (its protection domain holds every queue's registration).
type rdmaFabric struct {
	fab   *rdma.Fabric
	sysfs []verbs.SysfsDevice
	devs  map[string]verbs.Device
	order []verbs.Device // open order, for the event readers and Close
}

// openRDMA opens rdma-core and reads the RDMA↔netdev mapping.
func openRDMA(log *slog.Logger) (*rdmaFabric, error) {
	fab, err := rdma.Open(log)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFabricUnavailable, err)
	}
	sysfs, err := verbs.ReadSysfs(sysfsRoot)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFabricUnavailable, err)
	}
	return &rdmaFabric{fab: fab, sysfs: sysfs, devs: map[string]verbs.Device{}}, nil
}

// device opens name once.
func (f *rdmaFabric) device(name string) (verbs.Device, error) {
	if d := f.devs[name]; d != nil {
		return d, nil
	}
	d, err := f.fab.Open(name)
	if err != nil {
		return nil, err
	}
	f.devs[name] = d
	f.order = append(f.order, d)
	return d, nil
}

// endpoints maps every configured target to its local device and port.
// A target whose source cannot be mapped is reported in errs (naming the
// config entry) and left out; the others still serve.
//
// Every login is bounded by loginTimeout: a reconnect started while the
// path drops packets silently would otherwise wait out the CM's own REQ
// retries (a minute and more) before the next attempt could begin.
func (f *rdmaFabric) endpoints(cfg *config.Config, loginTimeout time.Duration, log *slog.Logger) (eps []*endpoint, errs []error) {
	ps := cfg.Defaults.Path
	ack, retry := uint8(ps.AckTimeout), uint8(min(max(ps.RetryCount, 0), maxRetryCount))
	for i, t := range cfg.Targets {
		field := fmt.Sprintf("targets[%d] (%s)", i, t.Name)
		src := t.Source.Addr
		if !src.IsValid() {
			errs = append(errs, fmt.Errorf("%w: %s: source must be the IP address of the local RDMA port with --fabric rdma (got %q)", ErrBadOptions, field, t.Source.String()))
			continue
		}
		devName, port, _, err := verbs.ResolveAddr(f.sysfs, src)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: source %v: %w", field, src, err))
			continue
		}
		dev, err := f.device(devName)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: open %s: %w", field, devName, err))
			continue
		}
		dst := netip.AddrPortFrom(t.Address, t.Port)
		pid := srp.TargetPortID{IDExt: uint64(t.IDExt), IOCGUID: uint64(t.IOCGUID)}
		iniExt := uint64(t.InitiatorExt)
		name := t.Name
		eps = append(eps, &endpoint{
			target: name, tport: name, desc: fmt.Sprintf("%s (%s %s:%d → %v)", name, src, devName, port, dst),
			pathID:  func(dev string) string { return dev + ":" + name },
			dev:     dev,
			devName: devName,
			port:    port,
			// Every channel of the path shares the initiator port id and
			// logs in with MULTI, as ib_srp's ch_count channels do: one
			// I_T nexus, one LIO ACL.
			dial: func(ctx context.Context, _, depth int) (*srp.Channel, error) {
				ctx, cancel := context.WithTimeout(ctx, loginTimeout)
				defer cancel()
				return srp.Dial(ctx, dev, srp.ChannelParams{
					Src: src, Dst: dst, InitiatorExt: iniExt, TargetPortID: pid,
					QueueDepth: depth, Immediate: true, MultiChannel: true, Port: port,
					AckTimeout: ack, RetryCount: retry, Logger: log,
				})
			},
		})
	}
	return eps, errs
}

// Close closes every opened device.
func (f *rdmaFabric) Close() error {
	var errs []error
	for _, d := range f.order {
		errs = append(errs, d.Close())
	}
	return errors.Join(errs...)
}
