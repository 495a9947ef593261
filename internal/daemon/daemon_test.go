package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// testDaemon is a daemon on the simulated fabric with its files in a
// temporary directory.
type testDaemon struct {
	*Daemon
	dir    string
	cancel context.CancelFunc
	done   chan error

	mu     sync.Mutex
	states []string // sd_notify states sent
}

func testLogger() *slog.Logger {
	if os.Getenv("DAEMON_DEBUG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startDaemon runs a daemon until the test ends and waits until it is
// ready; edit may change the options first.
func startDaemon(t *testing.T, edit func(*Options)) *testDaemon {
	t.Helper()
	dir := t.TempDir()
	td := &testDaemon{dir: dir, done: make(chan error, 1)}
	opts := Options{
		Fabric: FabricSim, StorePath: filepath.Join(dir, "store.db"), SocketPath: filepath.Join(dir, "control.sock"),
		RuntimeDir: dir, MetricsListen: "127.0.0.1:0", Logger: testLogger(),
		Notify: func(s string) error {
			td.mu.Lock()
			defer td.mu.Unlock()
			td.states = append(td.states, s)
			return nil
		},
	}
	if edit != nil {
		edit(&opts)
	}
	d, err := New(opts, "test")
	if err != nil {
		t.Fatal(err)
	}
	td.Daemon = d
	ctx, cancel := context.WithCancel(context.Background())
	td.cancel = cancel
	go func() { td.done <- d.Run(ctx) }()
	select {
	case <-d.Ready():
	case err := <-td.done:
		cancel()
		t.Fatalf("daemon did not start: %v", err)
	}
	t.Cleanup(func() { td.stop(t) })
	return td
}

// stop stops the daemon (once) and checks that it stopped cleanly.
func (td *testDaemon) stop(t *testing.T) {
	t.Helper()
	if td.cancel == nil {
		return
	}
	td.cancel()
	td.cancel = nil
	if err := <-td.done; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("daemon stopped with %v", err)
	}
}

func (td *testDaemon) notified() []string {
	td.mu.Lock()
	defer td.mu.Unlock()
	return append([]string(nil), td.states...)
}

func TestDaemonStartStop(t *testing.T) {
	td := startDaemon(t, nil)
	c := NewClient(td.SocketPath())
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Devices != SimTargets || st.Paths != SimTargets*SimPathsPerTarget {
		t.Fatalf("status: %+v", st)
	}
	t.Logf("%+v", st)
	topo, err := c.Topology(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range topo {
		for _, g := range d.Groups {
			for _, p := range g.Paths {
				t.Logf("%s %s %s", d.Name, p.ID, p.State)
			}
		}
	}
	td.stop(t)
	t.Log(td.notified())
}

// TestAPIErrors: error answers carry a code that maps back to the
// sentinel across the socket, and the read-only listener has no mutations.
func TestAPIErrors(t *testing.T) {
	td := startDaemon(t, nil)
	c := NewClient(td.SocketPath())
	ctx := context.Background()
	if _, err := c.Topology(ctx, "ublkb7"); !errors.Is(err, ErrUnknownDevice) {
		t.Errorf("unknown device: %v", err)
	}
	if _, err := c.FailPath(ctx, "nope", ""); !errors.Is(err, ErrUnknownPath) {
		t.Errorf("unknown path: %v", err)
	}
	if _, err := c.SetPolicy(ctx, PolicyRequest{Device: "ublkb0", Failback: "sometimes"}); !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "failback") {
		t.Errorf("bad policy: %v", err)
	}
	var ae *APIError
	if err := c.do(ctx, http.MethodPost, RoutePathFail, nil, map[string]string{"path": "x", "bogus": "1"}, nil); !errors.As(err, &ae) || ae.Status != http.StatusBadRequest {
		t.Errorf("unknown field: %v", err)
	}
	resp, err := http.Post("http://"+td.MetricsAddr()+RoutePathFail, "application/json", strings.NewReader(`{"path":"ublkb0:tgtA.1"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed && resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST on the metrics listener: %s", resp.Status)
	}
	if _, err := NewClient(filepath.Join(t.TempDir(), "none.sock")).Status(ctx); !errors.Is(err, ErrNoDaemon) {
		t.Errorf("no daemon: %v", err)
	}
}
