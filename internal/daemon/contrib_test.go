package daemon

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// contribDir holds the Grafana dashboard and the alerting rules.
const contribDir = "../../contrib"

// exportedMetrics are the names /metrics has, with a histogram's series.
func exportedMetrics() map[string]bool {
	names := []string{MetricPathState, MetricPathTimeInState, MetricPathUsable, MetricPathActive, MetricPathInflight,
		MetricPathCompletions, MetricPathErrors, MetricPathRetries, MetricPathReissued, MetricPathAborts, MetricPathLatencyEWMA,
		MetricPathReconnects, MetricPathReconnectFailures, MetricPathHeartbeats, MetricPathHeartbeatMisses,
		MetricPathHeartbeatRTT, MetricPathDetectionLatency, MetricDeviceInfo, MetricDeviceUsablePaths, MetricDeviceQueued,
		MetricDeviceNoPath, MetricDeviceFailovers, MetricBuildInfo,
		MetricDiscoveryScans, MetricDiscoveryScanErrors, MetricDiscoveryTraps, MetricDiscoveryTargets}
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		m[MetricDeviceIOLatency+s] = true
	}
	return m
}

// TestContribUsesExportedMetrics: every srp_mpathd_ series the dashboard
// and the alerts query exists, the dashboard is valid JSON and promtool
// accepts the rules.
func TestContribUsesExportedMetrics(t *testing.T) {
	known := exportedMetrics()
	name := regexp.MustCompile(`srp_mpathd_[a-z_]+`)
	for _, f := range []string{"grafana/srp-mpathd.json", "prometheus/alerts.yaml"} {
		b, err := os.ReadFile(filepath.Join(contribDir, f))
		if err != nil {
			t.Fatal(err)
		}
		used := name.FindAllString(string(b), -1)
		if len(used) == 0 {
			t.Errorf("%s uses no srp_mpathd metric", f)
		}
		for _, n := range used {
			if !known[n] {
				t.Errorf("%s uses %s, which the daemon does not export", f, n)
			}
		}
		if strings.HasSuffix(f, ".json") {
			var v map[string]any
			if err := json.Unmarshal(b, &v); err != nil {
				t.Errorf("%s: %v", f, err)
			}
		}
	}
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Skipf("promtool check rules skipped: %v (install Debian's prometheus package: make deps)", err)
	}
	out, err := exec.Command(bin, "check", "rules", filepath.Join(contribDir, "prometheus/alerts.yaml")).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}
