package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/srp-mpathd/srp-mpathd/internal/daemon"
)

// readyWriter collects the daemon's log and closes ready at its "ready"
// line (a readiness signal without polling).
type readyWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	once  sync.Once
	ready chan struct{}
}

func (w *readyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), "msg=ready") {
		w.once.Do(func() { close(w.ready) })
	}
	return len(p), nil
}

func (w *readyWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestDaemonCommand runs `srp-mpathd daemon --fabric sim` in process, asks
// it for its status over the socket and stops it through its context.
func TestDaemonCommand(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "d.sock")
	cfg := filepath.Join("testdata", "good.yaml")
	root := NewRoot()
	logw := &readyWriter{ready: make(chan struct{})}
	root.SetArgs([]string{"daemon", "--fabric", "sim", "--config", cfg, "--store", filepath.Join(dir, "store.db"),
		"--socket", sock, "--runtime-dir", dir, "--metrics-listen", "127.0.0.1:0"})
	root.SetOut(&bytes.Buffer{})
	root.SetErr(logw)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	select {
	case <-logw.ready:
	case err := <-done:
		cancel()
		t.Fatalf("daemon exited: %v\n%s", err, logw)
	}
	out, stderr, code := run(t, "status", "--json", "--socket", sock)
	if code != ExitOK {
		cancel()
		t.Fatalf("status: exit %d: %s", code, stderr)
	}
	var st daemon.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	// testdata/good.yaml sets the selector and reconnect_delay.
	if st.Fabric != daemon.FabricSim || !strings.Contains(st.Policy, "selector=round-robin") || !strings.Contains(st.Policy, "reconnect_delay=5s") {
		t.Errorf("status: %+v", st)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("daemon stopped with %v\n%s", err, logw)
	}
}

func TestDaemonCommandBadInput(t *testing.T) {
	runFail(t, ExitUsage, `fabric "infiniband"`, "daemon", "--fabric", "infiniband", "--config", "testdata/good.yaml")
	runFail(t, ExitUsage, `--log-level "loud"`, "daemon", "--log-level", "loud")
	runFail(t, ExitUsage, "selector", "daemon", "--fabric", "sim", "--config", "testdata/bad.yaml")
	runFail(t, ExitFailure, "no such file", "daemon", "--fabric", "sim", "--config", "testdata/missing.yaml")
}
