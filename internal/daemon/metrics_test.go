package daemon

import (
	"bytes"
	"context"
	"flag"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/srp-mpathd/srp-mpathd/internal/fsm"
	"github.com/srp-mpathd/srp-mpathd/internal/paths"
)

var update = flag.Bool("update", false, "rewrite golden files")

// goldenSample is a fixed view: one device with a running and a blocked
// path, some I/O in its latency histogram.
func goldenSample() metricsSample {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	h := newLatencyHist()
	for _, d := range []time.Duration{40 * time.Microsecond, 80 * time.Microsecond, 80 * time.Microsecond, 3 * time.Millisecond, 1200 * time.Millisecond} {
		h.observe(d)
	}
	st := paths.DeviceStatus{
		Name: "ublkb0", Policy: paths.DefaultPolicy(), Queued: 3, Failovers: 2,
		Paths: []paths.PathStatus{
			{ID: "ublkb0:tgtA.1", Target: "tgtA.1", State: fsm.Running, Since: now.Add(-90 * time.Second), Usable: true, Active: true,
				InFlight: 7, Latency: 85 * time.Microsecond, Completions: 123456, Errors: 1, Retries: 2, Reissued: 16, Aborts: 0,
				Reconnects: 1, HeartbeatsSent: 360, HeartbeatRTT: 250 * time.Millisecond},
			{ID: "ublkb0:tgtA.2", Target: "tgtA.2", State: fsm.Blocked, Since: now.Add(-1500 * time.Millisecond),
				Completions: 99, Errors: 16, ReconnectFailures: 3, HeartbeatsSent: 200, HeartbeatMisses: 1,
				Detection: 1250 * time.Millisecond, LastError: "heartbeat 200 not acknowledged within 1s"},
		},
	}
	return metricsSample{Now: now, Devices: []deviceMetrics{{Name: "ublkb0", WWID: "naa.6001405604fc1662f6fb236504fc1662", Status: st, Latency: h.snapshot()}},
		Discovery: &discoveryMetrics{Scans: 12, ScanErrors: 1, Trap64: 2, Trap65: 3, Targets: 4}}
}

func gatherText(t *testing.T, reg *prometheus.Registry) []byte {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// TestMetricsGolden compares /metrics of a fixed sample with
// testdata/metrics.golden (go test -update rewrites it) and checks it with
// promtool.
func TestMetricsGolden(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCollector(goldenSample))
	got := gatherText(t, reg)
	golden := filepath.Join("testdata", "metrics.golden")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("/metrics differs from %s (go test -update rewrites it):\n%s", golden, got)
	}
	// Every state of the state set is present, exactly one is 1.
	for _, p := range []string{"ublkb0:tgtA.1", "ublkb0:tgtA.2"} {
		ones := 0
		for _, s := range allStates {
			line := MetricPathState + `{device="ublkb0",path="` + p + `",state="` + s.String()
			i := bytes.Index(got, []byte(line))
			if i < 0 {
				t.Fatalf("no series for %s state %s", p, s)
			}
			if bytes.HasPrefix(got[i+bytes.IndexByte(got[i:], '}')+1:], []byte(" 1")) {
				ones++
			}
		}
		if ones != 1 {
			t.Errorf("%s: %d states are 1", p, ones)
		}
	}
	promtoolCheck(t, got)
}

// promtoolCheck runs `promtool check metrics` on text; it skips only when
// promtool is not installed (Debian's prometheus package; make deps).
func promtoolCheck(t *testing.T, text []byte) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Skipf("promtool check skipped: %v (install Debian's prometheus package: make deps)", err)
	}
	cmd := exec.Command(bin, "check", "metrics")
	cmd.Stdin = bytes.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestMetricsEndpoint scrapes a daemon on the simulated fabric: the
// collector's series, build info and the runtime collectors, and promtool
// accepts the whole page.
func TestMetricsEndpoint(t *testing.T) {
	td := startDaemon(t, nil)
	body := httpGet(t, "http://"+td.MetricsAddr()+RouteMetrics)
	for _, name := range []string{MetricPathState, MetricPathTimeInState, MetricPathCompletions, MetricPathHeartbeats,
		MetricPathHeartbeatRTT, MetricPathDetectionLatency, MetricDeviceQueued, MetricDeviceNoPath, MetricDeviceFailovers,
		MetricDeviceIOLatency + "_bucket", MetricBuildInfo, "go_goroutines", "process_resident_memory_bytes"} {
		if !strings.Contains(body, "\n"+name) {
			t.Errorf("/metrics has no %s", name)
		}
	}
	want := MetricPathState + `{device="ublkb0",path="ublkb0:tgtA.1",state="running",target="tgtA.1"} 1`
	if !strings.Contains(body, want) {
		t.Errorf("/metrics lacks %s", want)
	}
	promtoolCheck(t, []byte(body))
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, b)
	}
	return string(b)
}
