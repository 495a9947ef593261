package daemon

import (
	"net/http"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/srp-mpathd/srp-mpathd/internal/fsm"
	"github.com/srp-mpathd/srp-mpathd/internal/paths"
)

// Metric names, srp_mpathd_<subsystem>_<name>_<unit>; the tests and the
// contrib dashboard and alerts use the same names.
const (
	MetricPathState             = "srp_mpathd_path_state"
	MetricPathTimeInState       = "srp_mpathd_path_time_in_state_seconds"
	MetricPathUsable            = "srp_mpathd_path_usable"
	MetricPathActive            = "srp_mpathd_path_active"
	MetricPathInflight          = "srp_mpathd_path_inflight_requests"
	MetricPathCompletions       = "srp_mpathd_path_completions_total"
	MetricPathErrors            = "srp_mpathd_path_errors_total"
	MetricPathRetries           = "srp_mpathd_path_retries_total"
	MetricPathReissued          = "srp_mpathd_path_reissued_total"
	MetricPathAborts            = "srp_mpathd_path_aborts_total"
	MetricPathLatencyEWMA       = "srp_mpathd_path_latency_ewma_seconds"
	MetricPathReconnects        = "srp_mpathd_path_reconnects_total"
	MetricPathReconnectFailures = "srp_mpathd_path_reconnect_failures_total"
	MetricPathHeartbeats        = "srp_mpathd_path_heartbeats_total"
	MetricPathHeartbeatMisses   = "srp_mpathd_path_heartbeat_misses_total"
	MetricPathHeartbeatRTT      = "srp_mpathd_path_heartbeat_rtt_seconds"
	MetricPathDetectionLatency  = "srp_mpathd_path_detection_latency_seconds"

	MetricDeviceInfo        = "srp_mpathd_device_info"
	MetricDeviceUsablePaths = "srp_mpathd_device_usable_paths"
	MetricDeviceQueued      = "srp_mpathd_device_queued_requests"
	MetricDeviceNoPath      = "srp_mpathd_device_no_path_seconds"
	MetricDeviceFailovers   = "srp_mpathd_device_failovers_total"
	MetricDeviceIOLatency   = "srp_mpathd_device_io_latency_seconds"

	MetricDiscoveryScans      = "srp_mpathd_discovery_scans_total"
	MetricDiscoveryScanErrors = "srp_mpathd_discovery_scan_errors_total"
	MetricDiscoveryTraps      = "srp_mpathd_discovery_traps_total"
	MetricDiscoveryTargets    = "srp_mpathd_discovery_targets"

	MetricBuildInfo = "srp_mpathd_build_info"
)

// Labels.
var (
	pathLabels   = []string{"device", "path", "target"}
	deviceLabels = []string{"device"}
)

// latencyBuckets are the upper bounds (seconds) of the I/O latency
// histogram: 50 µs (an RDMA round trip) to 30 s (the I/O timeout).
var latencyBuckets = []float64{50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5, 5, 10, 30}

// latencyHist is a histogram written by one queue runner and read at
// scrape time (atomics, no allocation per observation).
type latencyHist struct {
	counts []atomic.Uint64 // per bucket, plus +Inf last
	sumNS  atomic.Int64
}

func newLatencyHist() *latencyHist {
	return &latencyHist{counts: make([]atomic.Uint64, len(latencyBuckets)+1)}
}

func (h *latencyHist) observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(latencyBuckets) && s > latencyBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumNS.Add(int64(d))
}

// histSnapshot is a histogram's cumulative counts at one moment.
type histSnapshot struct {
	Count   uint64
	Sum     float64
	Buckets map[float64]uint64
}

func (h *latencyHist) snapshot() histSnapshot {
	s := histSnapshot{Buckets: make(map[float64]uint64, len(latencyBuckets))}
	for i, ub := range latencyBuckets {
		s.Count += h.counts[i].Load()
		s.Buckets[ub] = s.Count
	}
	s.Count += h.counts[len(latencyBuckets)].Load()
	s.Sum = time.Duration(h.sumNS.Load()).Seconds()
	return s
}

// deviceMetrics is what the collector reads of one device at scrape time.
type deviceMetrics struct {
	Name, WWID string
	Status     paths.DeviceStatus
	Latency    histSnapshot
}

// discoveryMetrics is what the collector reads of discovery (nil when
// discovery does not run: no discovery series then).
type discoveryMetrics struct {
	Scans, ScanErrors, Trap64, Trap65 uint64
	Targets                           int
}

// metricsSample is one scrape's view of the daemon.
type metricsSample struct {
	Now       time.Time
	Devices   []deviceMetrics
	Discovery *discoveryMetrics
}

// collector builds every series from the paths snapshots at scrape time
// (node_exporter style), so there is no second copy of the state to keep in
// sync; every state of a path's state set is exported as 0 or 1, so series
// do not vanish when a path changes state.
type collector struct {
	sample func() metricsSample

	pathState, timeInState, usable, active, inflight           *prometheus.Desc
	completions, errors, retries, reissued, aborts, ewma       *prometheus.Desc
	reconnects, reconnectFailures, heartbeats, hbMisses, hbRTT *prometheus.Desc
	detection                                                  *prometheus.Desc
	devInfo, devUsable, devQueued, devNoPath, devFailovers     *prometheus.Desc
	devLatency                                                 *prometheus.Desc
	discScans, discScanErrors, discTraps, discTargets          *prometheus.Desc
}

func newCollector(sample func() metricsSample) *collector {
	pd := func(name, help string, extra ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, append(append([]string(nil), pathLabels...), extra...), nil)
	}
	dd := func(name, help string, extra ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, append(append([]string(nil), deviceLabels...), extra...), nil)
	}
	return &collector{
		sample:            sample,
		pathState:         pd(MetricPathState, "1 for the path's current state, 0 for every other state.", "state"),
		timeInState:       pd(MetricPathTimeInState, "Seconds since the path entered its current state."),
		usable:            pd(MetricPathUsable, "1 if the path may carry I/O now."),
		active:            pd(MetricPathActive, "1 if the path is in the device's active path group."),
		inflight:          pd(MetricPathInflight, "I/O requests in flight on the path."),
		completions:       pd(MetricPathCompletions, "I/O requests completed on the path."),
		errors:            pd(MetricPathErrors, "I/O attempts on the path that failed."),
		retries:           pd(MetricPathRetries, "I/O attempts retried after a SCSI-level error on the path."),
		reissued:          pd(MetricPathReissued, "I/O requests reissued elsewhere after the path failed."),
		aborts:            pd(MetricPathAborts, "ABORT TASK requests sent on the path."),
		ewma:              pd(MetricPathLatencyEWMA, "Service time EWMA of the path (the selector's input)."),
		reconnects:        pd(MetricPathReconnects, "Successful reconnects of the path."),
		reconnectFailures: pd(MetricPathReconnectFailures, "Failed reconnect attempts of the path."),
		heartbeats:        pd(MetricPathHeartbeats, "Heartbeats (zero-length RDMA WRITEs) sent on the path."),
		hbMisses:          pd(MetricPathHeartbeatMisses, "Heartbeats not acknowledged in time."),
		hbRTT:             pd(MetricPathHeartbeatRTT, "Upper bound of the last heartbeat round trip."),
		detection:         pd(MetricPathDetectionLatency, "How long the last heartbeat-detected failure went unnoticed at most."),
		devInfo:           dd(MetricDeviceInfo, "Always 1; labels identify the device.", "wwid"),
		devUsable:         dd(MetricDeviceUsablePaths, "Paths that may carry I/O now."),
		devQueued:         dd(MetricDeviceQueued, "I/O requests waiting for a path, a credit or a retry backoff."),
		devNoPath:         dd(MetricDeviceNoPath, "Seconds the device has been without a usable path (0 while it has one)."),
		devFailovers:      dd(MetricDeviceFailovers, "Switches of the active path group to another group."),
		devLatency:        dd(MetricDeviceIOLatency, "Latency of I/O requests from submission to completion, all paths and retries included."),
		discScans:         prometheus.NewDesc(MetricDiscoveryScans, "Full fabric discovery scans of a local port.", nil, nil),
		discScanErrors:    prometheus.NewDesc(MetricDiscoveryScanErrors, "Discovery scans that failed in part or whole.", nil, nil),
		discTraps:         prometheus.NewDesc(MetricDiscoveryTraps, "Subnet manager traps received: 64 GID in service, 65 GID out of service.", []string{"trap"}, nil),
		discTargets:       prometheus.NewDesc(MetricDiscoveryTargets, "Targets discovery knows and the rules allow (per local port and partition).", nil, nil),
	}
}

// allStates is every state of the path state set.
var allStates = []fsm.State{fsm.Running, fsm.Blocked, fsm.FailFast, fsm.Lost, fsm.HeldDown}

// Describe sends every descriptor.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.pathState, c.timeInState, c.usable, c.active, c.inflight,
		c.completions, c.errors, c.retries, c.reissued, c.aborts, c.ewma, c.reconnects, c.reconnectFailures,
		c.heartbeats, c.hbMisses, c.hbRTT, c.detection, c.devInfo, c.devUsable, c.devQueued, c.devNoPath,
		c.devFailovers, c.devLatency, c.discScans, c.discScanErrors, c.discTraps, c.discTargets} {
		ch <- d
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Collect builds the series from one sample.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.sample()
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	counter := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	for _, dm := range s.Devices {
		st := dm.Status
		usable := 0
		for _, p := range st.Paths {
			l := []string{dm.Name, p.ID, p.Target}
			for _, state := range allStates {
				gauge(c.pathState, b2f(p.State == state), append(l, state.String())...)
			}
			in := 0.0
			if !p.Since.IsZero() && s.Now.After(p.Since) {
				in = s.Now.Sub(p.Since).Seconds()
			}
			gauge(c.timeInState, in, l...)
			gauge(c.usable, b2f(p.Usable), l...)
			gauge(c.active, b2f(p.Active), l...)
			gauge(c.inflight, float64(p.InFlight), l...)
			counter(c.completions, p.Completions, l...)
			counter(c.errors, p.Errors, l...)
			counter(c.retries, p.Retries, l...)
			counter(c.reissued, p.Reissued, l...)
			counter(c.aborts, p.Aborts, l...)
			gauge(c.ewma, p.Latency.Seconds(), l...)
			counter(c.reconnects, p.Reconnects, l...)
			counter(c.reconnectFailures, p.ReconnectFailures, l...)
			counter(c.heartbeats, p.HeartbeatsSent, l...)
			counter(c.hbMisses, p.HeartbeatMisses, l...)
			gauge(c.hbRTT, p.HeartbeatRTT.Seconds(), l...)
			gauge(c.detection, p.Detection.Seconds(), l...)
			if p.Usable {
				usable++
			}
		}
		gauge(c.devInfo, 1, dm.Name, dm.WWID)
		gauge(c.devUsable, float64(usable), dm.Name)
		gauge(c.devQueued, float64(st.Queued), dm.Name)
		gauge(c.devNoPath, st.NoPathFor.Seconds(), dm.Name)
		counter(c.devFailovers, st.Failovers, dm.Name)
		ch <- prometheus.MustNewConstHistogram(c.devLatency, dm.Latency.Count, dm.Latency.Sum, dm.Latency.Buckets, dm.Name)
	}
	if dm := s.Discovery; dm != nil {
		counter(c.discScans, dm.Scans)
		counter(c.discScanErrors, dm.ScanErrors)
		counter(c.discTraps, dm.Trap64, "64")
		counter(c.discTraps, dm.Trap65, "65")
		gauge(c.discTargets, float64(dm.Targets))
	}
}

// metricsSample reads every device.
func (d *Daemon) metricsSample() metricsSample {
	s := metricsSample{Now: time.Now()}
	for _, dev := range d.devices() {
		s.Devices = append(s.Devices, deviceMetrics{Name: dev.name, WWID: dev.wwid, Status: dev.pd.Snapshot(), Latency: dev.hist.snapshot()})
	}
	if dc := d.disc; dc != nil {
		s.Discovery = &discoveryMetrics{Scans: dc.scans.Load(), ScanErrors: dc.scanErrors.Load(), Trap64: dc.trapsIn.Load(),
			Trap65: dc.trapsOut.Load(), Targets: len(dc.eng.Targets())}
	}
	return s
}

// newRegistry is the daemon's own registry: the collector, build info, and
// the Go runtime and process collectors.
func newRegistry(d *Daemon, version string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCollector(d.metricsSample))
	bi := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: MetricBuildInfo, Help: "Always 1; labels describe the build.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	bi.Set(1)
	reg.MustRegister(bi, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

func metricsHTTP(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}
