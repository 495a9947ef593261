package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/paths"
	"github.com/srp-mpathd/srp-mpathd/internal/srp"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
)

// probeQueueDepth is the tag count of a probe channel: one command at a
// time, with room for the target's unsolicited requests.
const probeQueueDepth = 8

// endpoint is one path to a target port, as the fabric knows it before any
// LU is: the local device and port it leaves from and how to log in.
// Both fabrics (sim, rdma) produce endpoints; probing, admission and
// device building are the same code for both.
type endpoint struct {
	// target names the target port group the path belongs to (reconnect
	// limits, status); desc names the path in logs.
	target string
	desc   string
	// tport names the target port (paths.PathSpec.Target: per-target
	// reconnect limits, the metrics' target label).
	tport string
	// pathID names the path of device dev (the CLI's path ids).
	pathID  func(dev string) string
	dev     verbs.Device
	devName string
	port    uint8
	// dgid is the target port's GID when discovery found it (trap 65
	// names it); zero for a static target.
	dgid verbs.GID
	// dial logs in one channel for ublk queue queue with depth tags.
	dial func(ctx context.Context, queue, depth int) (*srp.Channel, error)
}

// pathLUs is what probing one endpoint found.
type pathLUs struct {
	ep  *endpoint
	lus []LUInfo
	err error
}

// probeEndpoint logs in a probe channel, lists and probes the LUs, and
// logs out, all within timeout.
func probeEndpoint(ctx context.Context, ep *endpoint, timeout time.Duration) (_ []LUInfo, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ch, err := ep.dial(ctx, 0, probeQueueDepth)
	if err != nil {
		return nil, fmt.Errorf("%w: login: %w", ErrProbe, err)
	}
	defer func() { err = errors.Join(err, ch.Close()) }()
	return probeTarget(ctx, ch, ep.dev)
}

// lunPath is one admitted path of an LU.
type lunPath struct {
	ep *endpoint
	lu LUInfo
}

// lunGroup is one LU (one WWID) with every path that reports it alike.
type lunGroup struct {
	ref   LUInfo // the first path's view
	paths []lunPath
}

// groupPaths groups the probed LUs by WWID in discovery order. A path
// whose view of a WWID differs from the first path's (capacity, block
// size) is refused with an error naming both (DESIGN.md "Identity").
func groupPaths(found []pathLUs) (groups []*lunGroup, refused []error) {
	byWWID := map[string]*lunGroup{}
	for _, f := range found {
		if f.err != nil {
			continue
		}
		for _, lu := range f.lus {
			g := byWWID[lu.WWID]
			if g == nil {
				g = &lunGroup{ref: lu}
				byWWID[lu.WWID] = g
				groups = append(groups, g)
			}
			if !g.ref.sameIdentity(lu) {
				refused = append(refused, fmt.Errorf("%w: path %s, LUN %d: %s, but path %s, LUN %d: %s; the path is not used",
					ErrIdentityMismatch, f.ep.desc, lu.LUN, lu.describe(), g.paths[0].ep.desc, g.ref.LUN, g.ref.describe()))
				continue
			}
			g.paths = append(g.paths, lunPath{ep: f.ep, lu: lu})
		}
	}
	return groups, refused
}

// connector makes a path's per-queue channels. Every channel's LU is
// checked against the admitted identity before it carries I/O, so a
// reconnect that reaches a different LU (the target was reconfigured) is
// refused and the path stays down with that reason.
func connector(ep *endpoint, want LUInfo, depth int, log *slog.Logger) paths.Connector {
	return func(ctx context.Context, queue int) (paths.Channel, error) {
		ch, err := ep.dial(ctx, queue, depth)
		if err != nil {
			return nil, err
		}
		got, err := probeOne(ctx, ch, ep.dev, want.LUN)
		if err == nil && !got.sameIdentity(want) {
			err = fmt.Errorf("%w: path %s, LUN %d now reports %s, the device is %s", ErrIdentityMismatch, ep.desc, want.LUN, got.describe(), want.describe())
		}
		if err != nil {
			log.Error("channel refused", "path", ep.desc, "queue", queue, "err", err)
			return nil, errors.Join(err, ch.Close())
		}
		return ch, nil
	}
}
