package discovery

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
)

// openPort is a local port opened for discovery.
type openPort struct {
	ref PortRef
	dev verbs.Device
	mp  verbs.MADPort
}

// openPorts opens the ports the options select: the named ones (an error
// each if not InfiniBand), or every InfiniBand port of every device (RoCE
// ports skipped silently). Devices are opened once each; the caller closes
// the returned devices, which closes their MAD ports too.
func openPorts(fabric verbs.Fabric, opts *Options) (ports []openPort, devs []verbs.Device, err error) {
	byName := map[string]verbs.Device{}
	open := func(name string) (verbs.Device, error) {
		if d := byName[name]; d != nil {
			return d, nil
		}
		d, err := fabric.Open(name)
		if err != nil {
			return nil, err
		}
		byName[name] = d
		devs = append(devs, d)
		return d, nil
	}
	refs := opts.Ports
	explicit := len(refs) > 0
	if !explicit {
		infos, err := fabric.Devices()
		if err != nil {
			return nil, nil, &OpError{Op: "list devices", Err: err}
		}
		for _, info := range infos {
			for p := uint8(1); p <= info.Ports && p != 0; p++ {
				refs = append(refs, PortRef{Device: info.Name, Port: p})
			}
		}
	}
	var errs []error
	for _, ref := range refs {
		d, err := open(ref.Device)
		if err != nil {
			errs = append(errs, &OpError{Op: "open device", Port: ref, Err: err})
			continue
		}
		attr, err := d.Port(ref.Port)
		if err != nil {
			errs = append(errs, &OpError{Op: "query port", Port: ref, Err: err})
			continue
		}
		if attr.LinkLayer != verbs.LinkInfiniBand {
			if explicit {
				errs = append(errs, &OpError{Op: "query port", Port: ref, Err: fmt.Errorf("link layer %v: %w",
					attr.LinkLayer, ErrNotInfiniBand)})
			}
			continue
		}
		mp, err := d.MAD(ref.Port)
		if err != nil {
			errs = append(errs, &OpError{Op: "open mad port", Port: ref, Err: err})
			continue
		}
		ports = append(ports, openPort{ref: ref, dev: d, mp: mp})
	}
	return ports, devs, errors.Join(errs...)
}

func closeAll(ports []openPort, devs []verbs.Device) error {
	var errs []error
	for _, p := range ports {
		errs = append(errs, p.mp.Close())
	}
	for _, d := range devs {
		errs = append(errs, d.Close())
	}
	return errors.Join(errs...)
}

// Discover scans the fabric once, as `ibsrpdm -c` / `srp_daemon -o`: on
// every selected InfiniBand port, through every selected P_Key the port
// shares with each DM-capable port, it lists the SRP targets the rules
// allow, plus the allowed static targets. It returns what it found even
// when some port or remote failed; the error then joins every failure.
// The result is sorted by local port, DGID (or Dest), P_Key, id_ext and
// service id.
func Discover(ctx context.Context, fabric verbs.Fabric, opts Options) ([]Target, error) {
	o := opts.withDefaults()
	ports, devs, openErr := openPorts(fabric, &o)
	defer func() { _ = closeAll(ports, devs) }()
	if len(ports) == 0 && len(o.Static) == 0 {
		return nil, errors.Join(ErrNoPorts, openErr)
	}
	var tid atomic.Uint64
	var out []Target
	errs := []error{openErr}
	for _, p := range ports {
		s := scanner{ref: p.ref, dev: p.dev, mp: p.mp, opts: &o, log: o.Logger, tid: &tid}
		res := s.full(ctx)
		out = append(out, res.targets...)
		errs = append(errs, res.err)
	}
	for _, t := range o.Static {
		t.Static = true
		out = append(out, t)
	}
	out = applyRules(out, o.Rules)
	SortTargets(out)
	return out, errors.Join(errs...)
}

// SortTargets orders targets by local port, DGID or Dest, P_Key, id_ext,
// service id.
func SortTargets(ts []Target) {
	slices.SortStableFunc(ts, func(a, b Target) int {
		return cmp.Or(
			cmp.Compare(a.Local.Device, b.Local.Device),
			cmp.Compare(a.Local.Port, b.Local.Port),
			bytes.Compare(a.DGID[:], b.DGID[:]),
			a.Dest.Compare(b.Dest),
			cmp.Compare(a.PKey, b.PKey),
			cmp.Compare(a.IDExt, b.IDExt),
			cmp.Compare(a.IOCGUID, b.IOCGUID),
			cmp.Compare(a.ServiceID, b.ServiceID),
		)
	})
}
