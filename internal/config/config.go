package config

import (
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"time"
)

// DefaultPath is where the daemon reads its configuration unless --config
// says otherwise.
const DefaultPath = "/etc/srp-mpathd/config.yaml"

// Config is a validated configuration. It is immutable after Parse: the
// daemon swaps whole Configs, never edits one.
type Config struct {
	File      string                    // where it was loaded from; "" for Parse
	Defaults  Defaults                  // every field set (defaults applied)
	Targets   []Target                  // static targets, one per path
	Devices   map[string]DeviceOverride // by WWID
	Blacklist []BlacklistRule
	Discovery Discovery // fabric discovery (srp_daemon's job)
}

// Defaults holds the settings that apply unless a device overrides them.
type Defaults struct {
	Device DeviceSettings
	Path   PathSettings
}

// DeviceSettings are per multipath device (per WWID): defaults ← devices
// section ← store policy override.
type DeviceSettings struct {
	Selector    Selector
	Grouping    Grouping
	Failback    Failback
	NoPathRetry NoPathRetry
	IOTimeout   Timeout // per-I/O deadline before abort and retry elsewhere
	QueueDepth  int     // ublk tags per queue
	UblkQueues  int     // ublk hardware queues (one locked thread each)
	MaxIOSize   Size    // largest I/O the ublk device accepts
}

// PathSettings are per path (an RDMA channel to a target port, shared by
// every LU behind it), so they are set in defaults only. The three SRP
// timers follow the kernel's scsi_transport_srp rules (srp_tmo_valid).
type PathSettings struct {
	ReconnectDelay    Timeout
	FastIOFailTmo     Timeout
	DevLossTmo        Timeout
	HeartbeatInterval Timeout
	HeartbeatTimeout  time.Duration
	AckTimeout        AckTimeout
	RetryCount        int
	HoldDown          time.Duration // a reconnected path waits this long before it carries I/O, unless no other path can (fsm.Config.Settle)
	FlapThreshold     int           // failures within FlapWindow that make a path flapping; 0 = off
	FlapWindow        time.Duration
	FlapHoldDown      time.Duration // hold-down of a flapping path
}

// DeviceOverride is the devices section entry of one WWID; nil fields
// inherit.
type DeviceOverride struct {
	Selector    *Selector
	Grouping    *Grouping
	Failback    *Failback
	NoPathRetry *NoPathRetry
	IOTimeout   *Timeout
	QueueDepth  *int
	UblkQueues  *int
	MaxIOSize   *Size
}

// Target is one statically configured path to an SRP target port over
// RDMA/CM.
type Target struct {
	Name         string     // unique; defaults to "<address>:<port>"
	Address      netip.Addr // the target's RDMA/CM address
	Port         uint16     // its RDMA/CM port (ib_srpt rdma_cm_port)
	IDExt        GUID       // target_port_id[0:8]
	IOCGUID      GUID       // target_port_id[8:16]; defaults to IDExt (LIO requires both = its service GUID)
	ServiceID    GUID       // IB CM service id; defaults to IOCGUID
	InitiatorExt GUID       // initiator_port_id[0:8]
	Source       Source     // local address or device:port; zero = routing decides
	PKey         PKey
}

// BlacklistRule excludes LUs. Every pattern that is set must match; a rule
// sets at least one.
type BlacklistRule struct {
	WWID, Vendor, Product *regexp.Regexp
	Line                  int
}

// Matches reports whether the rule excludes the LU.
func (r BlacklistRule) Matches(wwid, vendor, product string) bool {
	return (r.WWID == nil || r.WWID.MatchString(wwid)) &&
		(r.Vendor == nil || r.Vendor.MatchString(vendor)) &&
		(r.Product == nil || r.Product.MatchString(product))
}

// Blacklisted reports whether some rule excludes the LU, and which (index
// into Blacklist, -1 if none).
func (c *Config) Blacklisted(wwid, vendor, product string) (bool, int) {
	for i, r := range c.Blacklist {
		if r.Matches(wwid, vendor, product) {
			return true, i
		}
	}
	return false, -1
}

// Defaults of srp-mpathd. The SRP timers are ib_srp's module defaults;
// the policy is dm-multipath's (service-time, failover); the heartbeat is
// ours.
const (
	defaultReconnectDelay    = 10 * time.Second
	defaultFastIOFailTmo     = 15 * time.Second
	defaultDevLossTmo        = 600 * time.Second
	defaultHeartbeatInterval = 250 * time.Millisecond
	defaultHeartbeatTimeout  = 500 * time.Millisecond
	defaultAckTimeout        = 14 // ≈ 67ms per try (research/srp-protocol.md §2.7)
	defaultRetryCount        = 7
	defaultHoldDown          = 5 * time.Second
	defaultFlapThreshold     = 3
	defaultFlapWindow        = time.Minute
	defaultFlapHoldDown      = time.Minute
	defaultIOTimeout         = 30 * time.Second
	defaultQueueDepth        = 128
	defaultUblkQueues        = 1
	defaultMaxIOSize         = 512 * kib
)

// Default returns the configuration of an empty file.
func Default() *Config {
	return &Config{
		Defaults: Defaults{
			Device: DeviceSettings{
				Selector:    SelectorServiceTime,
				Grouping:    GroupingFailover,
				Failback:    Failback{Mode: FailbackImmediate},
				NoPathRetry: NoPathRetry{Mode: NoPathQueue},
				IOTimeout:   Timeout(defaultIOTimeout),
				QueueDepth:  defaultQueueDepth,
				UblkQueues:  defaultUblkQueues,
				MaxIOSize:   defaultMaxIOSize,
			},
			Path: PathSettings{
				ReconnectDelay:    Timeout(defaultReconnectDelay),
				FastIOFailTmo:     Timeout(defaultFastIOFailTmo),
				DevLossTmo:        Timeout(defaultDevLossTmo),
				HeartbeatInterval: Timeout(defaultHeartbeatInterval),
				HeartbeatTimeout:  defaultHeartbeatTimeout,
				AckTimeout:        defaultAckTimeout,
				RetryCount:        defaultRetryCount,
				HoldDown:          defaultHoldDown,
				FlapThreshold:     defaultFlapThreshold,
				FlapWindow:        defaultFlapWindow,
				FlapHoldDown:      defaultFlapHoldDown,
			},
		},
		Devices:   map[string]DeviceOverride{},
		Discovery: defaultDiscovery(),
	}
}

// Load reads and parses the file at path. A missing file is an *OpError
// wrapping fs.ErrNotExist (the daemon may then run on Default()). Problems
// in the file are an *Error listing all of them, with the file named.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &OpError{Op: "load", Path: path, Err: err}
	}
	c, err := parse(data, path)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Parse parses and validates a YAML configuration. On any problem it
// returns nil and an *Error listing every problem found.
func Parse(data []byte) (*Config, error) { return parse(data, "") }

// PolicyOverride is a per-WWID policy override kept outside the file (by
// internal/store), as the admin typed it. Empty fields override nothing.
type PolicyOverride struct {
	Selector, Grouping, Failback, NoPathRetry string
}

// ValidatePolicyOverride checks an override before it is stored. The error
// is an *Error naming each bad field as policy.<field>.
func ValidatePolicyOverride(o PolicyOverride) error {
	var p problems
	applyPolicyOverride(&p, "policy", &DeviceSettings{}, o)
	return p.err("")
}

// Effective returns the device settings of wwid: defaults, then the devices
// section, then the store's policy override o. An invalid override (stored
// by an older build, say) is an *Error and yields no settings.
func (c *Config) Effective(wwid string, o PolicyOverride) (DeviceSettings, error) {
	s := c.Defaults.Device
	if d, ok := c.Devices[wwid]; ok {
		d.apply(&s)
	}
	var p problems
	applyPolicyOverride(&p, fmt.Sprintf("store.policy[%q]", wwid), &s, o)
	if err := p.err(""); err != nil {
		return DeviceSettings{}, err
	}
	return s, nil
}

func (d DeviceOverride) apply(s *DeviceSettings) {
	set(&s.Selector, d.Selector)
	set(&s.Grouping, d.Grouping)
	set(&s.Failback, d.Failback)
	set(&s.NoPathRetry, d.NoPathRetry)
	set(&s.IOTimeout, d.IOTimeout)
	set(&s.QueueDepth, d.QueueDepth)
	set(&s.UblkQueues, d.UblkQueues)
	set(&s.MaxIOSize, d.MaxIOSize)
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

func applyPolicyOverride(p *problems, prefix string, s *DeviceSettings, o PolicyOverride) {
	overrideField(p, prefix+".selector", o.Selector, acceptSelector, ParseSelector, &s.Selector)
	overrideField(p, prefix+".grouping", o.Grouping, acceptGrouping, ParseGrouping, &s.Grouping)
	overrideField(p, prefix+".failback", o.Failback, acceptFailback, ParseFailback, &s.Failback)
	overrideField(p, prefix+".no_path_retry", o.NoPathRetry, acceptNoPath, ParseNoPathRetry, &s.NoPathRetry)
}

func overrideField[T any](p *problems, path, v, accepted string, parse func(string) (T, error), dst *T) {
	if v == "" {
		return
	}
	x, err := parse(v)
	if err != nil {
		p.add(path, 0, accepted, "%v", err)
		return
	}
	*dst = x
}
