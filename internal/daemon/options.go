package daemon

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/config"
	"github.com/srp-mpathd/srp-mpathd/internal/ublk"
)

// Fabric names accepted by Options.Fabric.
const (
	FabricSim  = "sim"
	FabricRDMA = "rdma"
)

// Defaults of Options.
const (
	DefaultSocketPath    = "/run/srp-mpathd/control.sock"
	DefaultStorePath     = "/var/lib/srp-mpathd/store.db"
	DefaultRuntimeDir    = "/run/srp-mpathd"
	DefaultMetricsListen = "127.0.0.1:9730"
	// DefaultDrainTimeout bounds how long a graceful stop waits for I/O in
	// progress (I/O parked without a path may never finish).
	DefaultDrainTimeout = 10 * time.Second
	// socketMode: root and the configured group may use the control API.
	socketMode = 0o660
)

// Options configure a Daemon. The zero value of every field but Policy
// means its default.
type Options struct {
	// Fabric is FabricSim (the built-in simulated topology with software
	// targets) or FabricRDMA.
	Fabric string
	// StorePath is the identity store file.
	StorePath string
	// SocketPath is the control API's unix socket; SocketGroup the group
	// that may use it besides root (a name or a number; "" keeps root).
	SocketPath  string
	SocketGroup string
	// MetricsListen is the TCP address of /metrics, the dashboard and the
	// read-only JSON API; "-" disables it.
	MetricsListen string
	// RuntimeDir holds devices/ublkbN, the files the udev rule imports.
	RuntimeDir string
	// RemoveDevices makes a graceful stop remove the devices instead of
	// leaving them for recovery by the next daemon.
	RemoveDevices bool
	// DrainTimeout bounds the wait for I/O in progress at stop.
	DrainTimeout time.Duration
	// Config is the configuration (policies, timers); nil means
	// config.Default(). Per-device overrides from the store apply on top.
	Config *config.Config
	// ReloadConfig, if set, is called on every reload (SIGHUP) for the
	// configuration read again; nil keeps Config.
	ReloadConfig func() (*config.Config, error)
	// Reload delivers reload requests (the CLI forwards SIGHUP).
	Reload <-chan struct{}
	// SimWorkload runs an in-process verified random I/O workload on every
	// simulated device (the demo's stand-in for md).
	SimWorkload bool
	// SimWorkloadDepth is the workload's I/O in flight per device (default
	// and maximum: the queue depth, 16).
	SimWorkloadDepth int
	// SimLinkLatency is the one-way latency of the simulated links.
	SimLinkLatency time.Duration
	// SimTopology replaces the built-in simulated topology (the zero
	// value keeps it): tests describe partitions and targets that join
	// the fabric later.
	SimTopology SimTopology
	// Notify sends an sd_notify state ("READY=1", ...); nil uses
	// go-systemd's SdNotify (a no-op outside systemd).
	Notify func(state string) error
	// Logger receives the daemon's log; nil discards it.
	Logger *slog.Logger
	// OnReady, if set, is called once every task is up (after READY=1).
	OnReady func(*Daemon)
	// NoUblk serves the devices of the rdma fabric to in-process queue
	// runners instead of ublk block devices (logins and path handling
	// only).
	NoUblk bool
	// UblkDriver is the ublk driver; nil means ublk.Linux{} with
	// FabricRDMA and no ublk with FabricSim. Tests set it (ublkfake) to
	// serve the simulated devices through ublk.
	UblkDriver ublk.Driver
	// ProbeTimeout bounds one path's login and LU probe at start
	// (default DefaultProbeTimeout).
	ProbeTimeout time.Duration
	// NoListeners skips the control socket and the metrics listener (the
	// demo runs the daemon's core only, and can run in a synctest bubble).
	NoListeners bool
}

// withDefaults fills defaults and validates; the error names the field.
func (o Options) withDefaults() (Options, error) {
	bad := func(field, value, want string) (Options, error) {
		return o, fmt.Errorf("%w: %s %q: want %s", ErrBadOptions, field, value, want)
	}
	if o.Fabric == "" {
		o.Fabric = FabricRDMA
	}
	if o.Fabric != FabricSim && o.Fabric != FabricRDMA {
		return bad("fabric", o.Fabric, FabricRDMA+" or "+FabricSim)
	}
	if o.StorePath == "" {
		o.StorePath = DefaultStorePath
	}
	if o.SocketPath == "" {
		o.SocketPath = DefaultSocketPath
	}
	if o.RuntimeDir == "" {
		o.RuntimeDir = DefaultRuntimeDir
	}
	if o.MetricsListen == "" {
		o.MetricsListen = DefaultMetricsListen
	}
	if o.MetricsListen != "-" {
		if _, err := netip.ParseAddrPort(o.MetricsListen); err != nil && !strings.HasPrefix(o.MetricsListen, "localhost:") {
			return bad("metrics-listen", o.MetricsListen, "host:port with an IP address, or - to disable")
		}
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = DefaultDrainTimeout
	}
	if o.Config == nil {
		o.Config = config.Default()
	}
	if _, err := policyOf(o.Config.Defaults.Device, o.Config.Defaults.Path); err != nil {
		return o, fmt.Errorf("%w: %w", ErrBadOptions, err)
	}
	if o.SimWorkloadDepth <= 0 || o.SimWorkloadDepth > runnerDepth {
		o.SimWorkloadDepth = runnerDepth
	}
	if o.ProbeTimeout <= 0 {
		o.ProbeTimeout = DefaultProbeTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Notify == nil {
		o.Notify = sdNotify
	}
	return o, nil
}
