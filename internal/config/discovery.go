package config

import (
	"fmt"
	"slices"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/srp-mpathd/srp-mpathd/internal/srp/discovery"
)

// DiscoveryMode says whether the daemon discovers targets on the fabric.
type DiscoveryMode uint8

// Discovery modes. The zero value is not a mode.
const (
	// DiscoveryAuto discovers when the file has no static targets.
	DiscoveryAuto DiscoveryMode = iota + 1
	DiscoveryOn
	DiscoveryOff
)

var discoveryModeNames = map[DiscoveryMode]string{DiscoveryAuto: "auto", DiscoveryOn: "true", DiscoveryOff: "false"}

func (m DiscoveryMode) String() string { return enumString(discoveryModeNames, m) }

// ParseDiscoveryMode parses auto, true or false.
func ParseDiscoveryMode(s string) (DiscoveryMode, error) {
	return parseEnum(discoveryModeNames, s, "auto, true or false")
}

// Discovery is the discovery section: what replaces srp_daemon. The rules
// use srp_daemon.conf's syntax and meaning (first match decides; a target
// no rule matches is allowed).
type Discovery struct {
	Enabled DiscoveryMode
	// RescanInterval is the period of full rescans (srp_daemon -R); off
	// disables them (traps and port events still trigger scans).
	RescanInterval Timeout
	// Ports restricts discovery to these local ports (DEV:PORT); empty
	// means every InfiniBand port.
	Ports []discovery.PortRef
	// PKeys restricts the scan to these partitions (membership bit
	// ignored); empty means every P_Key in each port's table.
	PKeys []PKey
	// Rules allow or deny targets and carry per-target options.
	Rules discovery.Rules
}

// DiscoveryActive reports whether the daemon runs discovery under this
// configuration: on, or auto with no static targets.
func (c *Config) DiscoveryActive() bool {
	switch c.Discovery.Enabled {
	case DiscoveryOn:
		return true
	case DiscoveryOff:
		return false
	}
	return len(c.Targets) == 0
}

// RescanDuration is the engine's rescan period: negative when off.
func (d Discovery) RescanDuration() time.Duration {
	if d.RescanInterval.IsOff() {
		return -1
	}
	return d.RescanInterval.Duration()
}

// PKeyValues returns PKeys as the discovery engine takes them.
func (d Discovery) PKeyValues() []uint16 {
	out := make([]uint16, 0, len(d.PKeys))
	for _, p := range d.PKeys {
		out = append(out, uint16(p))
	}
	return out
}

// defaultRescanInterval is srp_daemon_port@.service's -R 60.
const defaultRescanInterval = 60 * time.Second

// minRescanInterval keeps a typo (1ms) from flooding the SA with queries.
const minRescanInterval = time.Second

func defaultDiscovery() Discovery {
	return Discovery{Enabled: DiscoveryAuto, RescanInterval: Timeout(defaultRescanInterval)}
}

type rawDiscovery struct {
	Enabled        yaml.Node   `yaml:"enabled"`
	RescanInterval yaml.Node   `yaml:"rescan_interval"`
	Ports          []yaml.Node `yaml:"ports"`
	PKeys          []yaml.Node `yaml:"pkeys"`
	Rules          []yaml.Node `yaml:"rules"`
}

const (
	acceptDiscoveryMode = "auto (on when there are no static targets), true, false"
	acceptRescan        = "a duration of at least 1s, e.g. 60s, or off"
	acceptPortRef       = "an RDMA device and port, e.g. mlx5_0:1"
	acceptRule          = "an srp_daemon.conf line: a|d [id_ext=..,ioc_guid=..,dgid=..,pkey=..,service_id=..][,options]"
)

func parseRescan(s string) (Timeout, error) {
	v, err := ParseTimeout(s)
	if err == nil && !v.IsOff() && v.Duration() < minRescanInterval {
		return 0, fmt.Errorf("%s is below %s: write off to disable periodic rescans", v, minRescanInterval)
	}
	return v, err
}

func parseDiscovery(p *problems, r *rawDiscovery) Discovery {
	d := defaultDiscovery()
	const pre = "discovery."
	field(p, pre+"enabled", &r.Enabled, acceptDiscoveryMode, ParseDiscoveryMode, &d.Enabled)
	field(p, pre+"rescan_interval", &r.RescanInterval, acceptRescan, parseRescan, &d.RescanInterval)
	for i := range r.Ports {
		var ref discovery.PortRef
		path := fmt.Sprintf("%sports[%d]", pre, i)
		if field(p, path, &r.Ports[i], acceptPortRef, discovery.ParsePortRef, &ref) {
			if slices.Contains(d.Ports, ref) {
				p.add(path, r.Ports[i].Line, "", "%s is listed twice", ref)
				continue
			}
			d.Ports = append(d.Ports, ref)
		}
	}
	for i := range r.PKeys {
		var k PKey
		if field(p, fmt.Sprintf("%spkeys[%d]", pre, i), &r.PKeys[i], acceptPKey, ParsePKey, &k) {
			d.PKeys = append(d.PKeys, k)
		}
	}
	for i := range r.Rules {
		var rule discovery.Rule
		if field(p, fmt.Sprintf("%srules[%d]", pre, i), &r.Rules[i], acceptRule, discovery.ParseRule, &rule) {
			d.Rules = append(d.Rules, rule)
		}
	}
	return d
}
