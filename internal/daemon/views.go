package daemon

import (
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/store"
)

// The control API's documents (JSON). They are the contract between the
// daemon, the CLI and the dashboard; fields are only ever added.

// Status is GET /v1/status.
type Status struct {
	Version            string    `json:"version"`
	Fabric             string    `json:"fabric"`
	Ublk               string    `json:"ublk"`
	StartedAt          time.Time `json:"started_at"`
	UptimeSeconds      float64   `json:"uptime_seconds"`
	Store              string    `json:"store"`
	Socket             string    `json:"socket"`
	Metrics            string    `json:"metrics,omitempty"`
	Devices            int       `json:"devices"`
	DevicesWithoutPath int       `json:"devices_without_path"`
	Paths              int       `json:"paths"`
	PathsRunning       int       `json:"paths_running"`
	Policy             string    `json:"policy"`
}

// DeviceView is one device in GET /v1/devices.
type DeviceView struct {
	Name          string  `json:"name"`
	WWID          string  `json:"wwid"`
	DevID         int     `json:"dev_id"`
	Block         string  `json:"block,omitempty"` // /dev/ublkbN once a ublk device serves it
	SizeBytes     uint64  `json:"size_bytes"`
	BlockSize     uint32  `json:"block_size"`
	Vendor        string  `json:"vendor"`
	Product       string  `json:"product"`
	Target        string  `json:"target"`
	Policy        string  `json:"policy"`
	Paths         int     `json:"paths"`
	PathsUsable   int     `json:"paths_usable"`
	Queued        int64   `json:"queued"`
	NoPathSeconds float64 `json:"no_path_seconds"`
	Failovers     uint64  `json:"failovers"`
	IOCompleted   uint64  `json:"io_completed"`
	IOFailed      uint64  `json:"io_failed"`
	// Lost: dev_loss_tmo removed every path; I/O fails (EIO) until the
	// daemon logs in on one again.
	Lost bool `json:"lost"`
}

// PathView is one path in the topology.
type PathView struct {
	ID                string    `json:"id"`
	Device            string    `json:"device"`
	Target            string    `json:"target"`
	Priority          int       `json:"priority"`
	State             string    `json:"state"`
	Since             time.Time `json:"since"`
	SecondsInState    float64   `json:"seconds_in_state"`
	Usable            bool      `json:"usable"`
	Active            bool      `json:"active"`
	InFlight          int64     `json:"in_flight"`
	LatencyEWMAUs     float64   `json:"latency_ewma_us"`
	LastError         string    `json:"last_error,omitempty"`
	Reason            string    `json:"reason,omitempty"`
	AdminDown         bool      `json:"admin_down"`
	Flapping          bool      `json:"flapping"`
	Completions       uint64    `json:"completions"`
	Errors            uint64    `json:"errors"`
	Retries           uint64    `json:"retries"`
	Reissued          uint64    `json:"reissued"`
	Aborts            uint64    `json:"aborts"`
	Reconnects        uint64    `json:"reconnects"`
	ReconnectFailures uint64    `json:"reconnect_failures"`
	HeartbeatsSent    uint64    `json:"heartbeats_sent"`
	HeartbeatMisses   uint64    `json:"heartbeat_misses"`
	HeartbeatRTTUs    float64   `json:"heartbeat_rtt_us"`
	DetectionMs       float64   `json:"detection_ms"`
}

// GroupView is one path group (dm-multipath's priority group).
type GroupView struct {
	Priority int        `json:"priority"`
	Active   bool       `json:"active"`
	Paths    []PathView `json:"paths"`
}

// TopologyView is one device with its groups and paths (GET /v1/topology),
// the `multipath -ll` of srp-mpathd.
type TopologyView struct {
	DeviceView
	Grouping    string      `json:"grouping"`
	Selector    string      `json:"selector"`
	Failback    string      `json:"failback"`
	NoPathRetry string      `json:"no_path_retry"`
	Groups      []GroupView `json:"groups"`
}

// TargetView is one target (GET /v1/targets).
type TargetView struct {
	Name   string `json:"name"`
	PortID string `json:"port_id"`
	// Source says where the daemon learnt the target: "discovered"
	// (fabric discovery), "static" (the config's targets) or "built-in"
	// (the simulated topology with discovery off).
	Source string           `json:"source"`
	Ports  []TargetPortView `json:"ports"`
	LUs    []TargetLUView   `json:"lus"`
}

// TargetPortView is one target port and the path that uses it.
type TargetPortView struct {
	Address string   `json:"address"`
	Paths   []string `json:"paths"`
	States  []string `json:"states"`
}

// TargetLUView is one LU of a target and the device serving it.
type TargetLUView struct {
	LUN    uint64 `json:"lun"`
	WWID   string `json:"wwid"`
	Device string `json:"device"`
}

// TransitionView is one path state change (GET /v1/transitions).
type TransitionView struct {
	At      time.Time `json:"at"`
	Device  string    `json:"device"`
	Path    string    `json:"path"`
	From    string    `json:"from"`
	To      string    `json:"to"`
	Reason  string    `json:"reason,omitempty"`
	Actions string    `json:"actions,omitempty"`
}

// PolicyView is a device's policy (GET/POST /v1/policy).
type PolicyView struct {
	Device      string       `json:"device"`
	WWID        string       `json:"wwid"`
	Grouping    string       `json:"grouping"`
	Selector    string       `json:"selector"`
	Failback    string       `json:"failback"`
	NoPathRetry string       `json:"no_path_retry"`
	Override    store.Policy `json:"override"`
	Effective   string       `json:"effective"`
}

// PolicyRequest is POST /v1/policy: the fields to override ("" leaves a
// field as it is, "default" removes its override).
type PolicyRequest struct {
	Device      string `json:"device"`
	Grouping    string `json:"grouping,omitempty"`
	Selector    string `json:"selector,omitempty"`
	Failback    string `json:"failback,omitempty"`
	NoPathRetry string `json:"no_path_retry,omitempty"`
}

// PathRequest is POST /v1/paths/fail and /v1/paths/reinstate.
type PathRequest struct {
	Path   string `json:"path"`
	Reason string `json:"reason,omitempty"`
}

// PathResult answers a path request with the path's new state.
type PathResult struct {
	Path  string `json:"path"`
	State string `json:"state"`
}

// errorBody is every error answer.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// DiscoveryView is fabric discovery as the daemon runs it.
type DiscoveryView struct {
	// Active: the engine runs (config discovery.enabled, and a port to
	// scan); Mode is the configured enabled value.
	Active         bool      `json:"active"`
	Mode           string    `json:"mode"`
	Ports          []string  `json:"ports"`
	RescanInterval string    `json:"rescan_interval"`
	Scans          uint64    `json:"scans"`
	ScanErrors     uint64    `json:"scan_errors"`
	Trap64         uint64    `json:"trap64"`
	Trap65         uint64    `json:"trap65"`
	TargetsFound   uint64    `json:"targets_found"`
	TargetsGone    uint64    `json:"targets_gone"`
	LastScan       time.Time `json:"last_scan"`
	LastError      string    `json:"last_error,omitempty"`
	// Targets are the targets the engine knows and the rules allow.
	Targets []DiscoveredTargetView `json:"targets"`
}

// DiscoveredTargetView is one discovered target (one local port, one
// partition) and the target port it was logged in to.
type DiscoveredTargetView struct {
	// Target is in ib_srp's add_target form (what srp_daemon writes).
	Target    string `json:"target"`
	LocalPort string `json:"local_port"`
	PKey      string `json:"pkey"`
	Static    bool   `json:"static"`
	// TargetPort is the path's target port name ("" if not logged in).
	TargetPort string `json:"target_port"`
}

// RescanResult answers a rescan request.
type RescanResult struct {
	Requested bool `json:"requested"`
}
