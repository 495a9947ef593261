package daemon

import (
	"fmt"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/config"
	"github.com/srp-mpathd/srp-mpathd/internal/fsm"
	"github.com/srp-mpathd/srp-mpathd/internal/paths"
	"github.com/srp-mpathd/srp-mpathd/internal/store"
)

// ioTimeoutOff stands for io_timeout "off": paths needs a positive
// deadline, so "off" becomes the longest one it accepts.
const ioTimeoutOff = 365 * 24 * time.Hour

// The one translation from the configuration's vocabulary to the paths
// package's policy.
var (
	selectors = map[config.Selector]paths.Selector{
		config.SelectorRoundRobin: paths.SelectRoundRobin, config.SelectorQueueLength: paths.SelectQueueLength,
		config.SelectorServiceTime: paths.SelectServiceTime,
	}
	groupings = map[config.Grouping]paths.Grouping{
		config.GroupingFailover: paths.GroupFailover, config.GroupingMultibus: paths.GroupMultibus,
	}
)

// policyOf builds a device's policy from its effective settings and the
// path settings of the configuration.
func policyOf(ds config.DeviceSettings, ps config.PathSettings) (paths.Policy, error) {
	p := paths.DefaultPolicy()
	var ok bool
	if p.Selector, ok = selectors[ds.Selector]; !ok {
		return p, fmt.Errorf("%w: selector %v", ErrBadOptions, ds.Selector)
	}
	if p.Grouping, ok = groupings[ds.Grouping]; !ok {
		return p, fmt.Errorf("%w: grouping %v", ErrBadOptions, ds.Grouping)
	}
	switch ds.Failback.Mode {
	case config.FailbackManual:
		p.Failback = paths.FailbackManual
	case config.FailbackDeferred:
		p.Failback = paths.Failback(ds.Failback.Delay)
	default:
		p.Failback = paths.FailbackImmediate
	}
	switch ds.NoPathRetry.Mode {
	case config.NoPathFail:
		p.NoPathRetry = paths.NoPathFail
	case config.NoPathTimed:
		p.NoPathRetry = paths.NoPathRetry(ds.NoPathRetry.Limit)
	default:
		p.NoPathRetry = paths.NoPathQueue
	}
	p.IOTimeout = ds.IOTimeout.Duration()
	if ds.IOTimeout.IsOff() {
		p.IOTimeout = ioTimeoutOff
	}
	p.HeartbeatInterval, p.HeartbeatTimeout = 0, ps.HeartbeatTimeout
	if !ps.HeartbeatInterval.IsOff() {
		p.HeartbeatInterval = ps.HeartbeatInterval.Duration()
	}
	// Both encode "off" as -1.
	p.Path = fsm.Config{
		ReconnectDelay: fsm.Timeout(ps.ReconnectDelay), FastIOFailTmo: fsm.Timeout(ps.FastIOFailTmo),
		DevLossTmo: fsm.Timeout(ps.DevLossTmo), FlapCount: ps.FlapThreshold, FlapWindow: ps.FlapWindow,
		HoldDown: ps.FlapHoldDown, Settle: ps.HoldDown,
	}
	return p, p.Validate()
}

func overrideOf(o store.Policy) config.PolicyOverride {
	return config.PolicyOverride{Selector: o.Selector, Grouping: o.Grouping, Failback: o.Failback, NoPathRetry: o.NoPathRetry}
}

// effectivePolicy is a device's policy: the configuration's defaults ← its
// devices section ← the store's override.
func effectivePolicy(cfg *config.Config, wwid string, o store.Policy) (paths.Policy, error) {
	ds, err := cfg.Effective(wwid, overrideOf(o))
	if err != nil {
		return paths.Policy{}, err
	}
	return policyOf(ds, cfg.Defaults.Path)
}
