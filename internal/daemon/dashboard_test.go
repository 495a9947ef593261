package daemon

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// chromiumTimeout bounds one headless browser run.
const chromiumTimeout = 90 * time.Second

// findChromium returns Debian's chromium, or skips.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("dashboard browser test skipped: no chromium in PATH (install Debian's chromium package: make deps)")
	return ""
}

// runChromium loads url headless, lets the page's script run for budget of
// virtual time, and returns the DOM (and writes a screenshot if shot != "").
func runChromium(t *testing.T, bin, url string, budget time.Duration, shot string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), chromiumTimeout)
	defer cancel()
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
		"--user-data-dir=" + t.TempDir(), "--virtual-time-budget=" + strconv.FormatInt(budget.Milliseconds(), 10)}
	if shot != "" {
		args = append(args, "--window-size=1400,800", "--screenshot="+shot)
	} else {
		args = append(args, "--dump-dom")
	}
	cmd := exec.CommandContext(ctx, bin, append(args, url)...)
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("chromium: %v\n%s", err, stderr)
	}
	return string(out)
}

// TestDashboardInBrowser loads the dashboard in headless Chromium against a
// daemon on the simulated fabric; after the page has polled the API twice,
// the link of path ublkb0:tgtA.1 goes down; the page must then show the path
// blocked, having shown it running before (its row's data-history).
func TestDashboardInBrowser(t *testing.T) {
	bin := findChromium(t)
	td := startDaemon(t, func(o *Options) {
		o.SimWorkload, o.SimWorkloadDepth, o.SimLinkLatency = true, 1, time.Millisecond
	})
	const victim = "ublkb0:tgtA.1"
	var (
		polls atomic.Int32
		once  sync.Once
	)
	h := td.metricsHandler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		if r.URL.Path == RouteTopology && polls.Add(1) >= 2 {
			once.Do(func() { td.Sim().Targets[0].Links[0].Down() })
		}
	}))
	defer srv.Close()

	dom := runChromium(t, bin, srv.URL+"/", 8*time.Second, "")
	if polls.Load() < 3 {
		t.Fatalf("the page polled %s %d times", RouteTopology, polls.Load())
	}
	row := regexp.MustCompile(`<tr data-path="` + regexp.QuoteMeta(victim) + `"[^>]*>`).FindString(dom)
	if row == "" {
		t.Fatalf("no row for %s in the page:\n%s", victim, dom)
	}
	if !strings.Contains(row, `data-state="blocked"`) || !strings.Contains(row, `data-history="running&gt;blocked"`) {
		t.Fatalf("the page did not show %s going from running to blocked: %s", victim, row)
	}
	if !strings.Contains(dom, "port-error") {
		t.Errorf("the transition's reason is not on the page")
	}
	for _, other := range []string{"ublkb0:tgtA.2", "ublkb1:tgtB.1"} {
		if !regexp.MustCompile(`<tr data-path="` + regexp.QuoteMeta(other) + `" data-state="running"`).MatchString(dom) {
			t.Errorf("%s is not shown running", other)
		}
	}
	if !strings.Contains(dom, "<polyline") {
		t.Errorf("no latency sparkline was drawn")
	}

	shot := filepath.Join(t.ArtifactDir(), "dashboard.png")
	runChromium(t, bin, srv.URL+"/", 2*time.Second, shot)
	if fi, err := os.Stat(shot); err != nil || fi.Size() == 0 {
		t.Fatalf("no screenshot: %v", err)
	}
	t.Logf("screenshot: %s", shot)
}

// TestDashboardServerRendered: the page works without script too: the
// server renders the devices, paths and transitions.
func TestDashboardServerRendered(t *testing.T) {
	td := startDaemon(t, nil)
	if _, err := td.FailPath("ublkb1:tgtB.2", "dashboard test"); err != nil {
		t.Fatal(err)
	}
	page := httpGet(t, "http://"+td.MetricsAddr()+"/")
	for _, want := range []string{`data-device="ublkb0"`, `data-path="ublkb1:tgtB.2" data-state="fail-fast"`, "dashboard test", "<script>"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if regexp.MustCompile(`(src|href)=["']?(https?:)?//|url\(`).MatchString(page) {
		t.Errorf("the page refers to an external resource")
	}
}
