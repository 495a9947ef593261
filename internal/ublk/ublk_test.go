package ublk_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/srp-mpathd/srp-mpathd/internal/leakcheck"
	"github.com/srp-mpathd/srp-mpathd/internal/ublk"
	"github.com/srp-mpathd/srp-mpathd/internal/ublk/uapi"
	"github.com/srp-mpathd/srp-mpathd/internal/ublk/ublkfake"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

const (
	testID   = 7
	testSize = 8 << 20
	pidA     = 1000
	pidB     = 2000
	// testTimeout bounds every wait on the fake; a hang is a failure.
	testTimeout = 20 * time.Second
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func logger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func newControl(t *testing.T, p *ublkfake.Process) *ublk.Control {
	t.Helper()
	ctl, err := ublk.NewControl(p, logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ctl.Close() })
	return ctl
}

func memSpec(t *testing.T, b ublk.Backend, recovery bool) ublk.DeviceSpec {
	return ublk.DeviceSpec{ID: testID, Queues: 2, Depth: 8, MaxIO: 64 << 10, Size: testSize, LogicalBlockSize: 512,
		Discard: true, Recovery: recovery, Handler: ublk.NewBackendHandler(b, 2), Logger: logger(t)}
}

func noViolations(t *testing.T, k *ublkfake.Kernel) {
	t.Helper()
	if v := k.Violations(); len(v) > 0 {
		t.Errorf("driver rule violations:\n%s", strings.Join(v, "\n"))
	}
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31) ^ seed
	}
	return b
}

func do(t *testing.T, k *ublkfake.Kernel, r *ublkfake.BlockRequest) int32 {
	t.Helper()
	res, err := k.Do(testCtx(t), testID, r)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// writeRead writes a pattern through the device and reads it back.
func writeRead(t *testing.T, k *ublkfake.Kernel, off int64, n int, seed byte) {
	t.Helper()
	data := pattern(n, seed)
	w := ublkfake.NewBlockRequest(uapi.OpWrite, off, data)
	if res := do(t, k, w); res != int32(n) {
		t.Fatalf("write res %d", res)
	}
	got := make([]byte, n)
	r := ublkfake.NewBlockRequest(uapi.OpRead, off, got)
	r.Queue = 1
	if res := do(t, k, r); res != int32(n) {
		t.Fatalf("read res %d", res)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("read back differs from written data")
	}
}

// commands returns the control log without encodings, e.g. "ADD_DEV=0".
func commands(k *ublkfake.Kernel) []string {
	var out []string
	for _, c := range k.CommandLog() {
		op, rest, _ := strings.Cut(c, "(")
		_, res, _ := strings.Cut(rest, ")")
		out = append(out, op+res)
	}
	return out
}

// TestCreateServeStop follows research §1.7 "Create" and "Graceful stop".
func TestCreateServeStop(t *testing.T) {
	k := ublkfake.New(ublkfake.Config{})
	ctl := newControl(t, k.Process(pidA))
	mem := ublk.NewMemory(testSize, 512)
	d, err := ublk.Create(testCtx(t), ctl, memSpec(t, mem, true))
	if err != nil {
		t.Fatal(err)
	}
	info, _ := k.Info(testID)
	if info.State != uapi.StateLive || info.ServerPID != pidA {
		t.Fatalf("after create: %v pid %d", info.State, info.ServerPID)
	}
	if want := uapi.FlagsRecoveryWithReissue | uapi.FlagCmdIoctlEncode; info.Flags&want != want {
		t.Errorf("flags %v lack %v", info.Flags, want)
	}
	if ctl.Encoding() != "ioctl" {
		t.Errorf("encoding %s", ctl.Encoding())
	}
	p, _ := k.Params(testID)
	if p.Basic.DevSectors != testSize>>9 || p.Basic.LogicalBSShift != 9 || p.Types != uapi.ParamTypeBasic|uapi.ParamTypeDiscard {
		t.Errorf("params %+v", p)
	}
	// Larger than MaxIO: the kernel splits it (the fake requeues the rest).
	writeRead(t, k, 4096, 200<<10, 1)
	writeRead(t, k, testSize-512, 512, 2)

	z := ublkfake.NewBlockRequest(uapi.OpWriteZeroes, 4096, nil)
	z.Len = 4096
	if res := do(t, k, z); res != 0 {
		t.Fatalf("write zeroes res %d", res)
	}
	got := make([]byte, 4096)
	if res := do(t, k, ublkfake.NewBlockRequest(uapi.OpRead, 4096, got)); res != 4096 || !bytes.Equal(got, make([]byte, 4096)) {
		t.Fatalf("after write zeroes: res %d", res)
	}
	if res := do(t, k, ublkfake.NewBlockRequest(uapi.OpFlush, 0, nil)); res != 0 {
		t.Fatalf("flush res %d", res)
	}
	zone := ublkfake.NewBlockRequest(uapi.OpZoneOpen, 0, nil)
	if res := do(t, k, zone); res != -int32(unix.EOPNOTSUPP) {
		t.Fatalf("zone op res %d", res)
	}
	// Beyond the backend: its error reaches the block layer as an errno.
	if res := do(t, k, ublkfake.NewBlockRequest(uapi.OpRead, testSize, make([]byte, 512))); res != -int32(unix.EINVAL) {
		t.Fatalf("read past end res %d", res)
	}

	if err := d.Stop(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if ids := k.DeviceIDs(); len(ids) != 0 {
		t.Fatalf("devices left: %v", ids)
	}
	want := []string{"GET_FEATURES=0", "ADD_DEV=0", "SET_PARAMS=0", "START_DEV=0", "STOP_DEV=0", "DEL_DEV_ASYNC=0"}
	if got := commands(k); !slices.Equal(got, want) {
		t.Errorf("commands %v, want %v", got, want)
	}
	noViolations(t, k)
}

// TestKernel61 runs on a model of 6.1: ioctl opcodes fail with -ENODEV, so
// Control falls back to legacy and I/O uses legacy opcodes (pitfall 7).
func TestKernel61(t *testing.T) {
	k := ublkfake.New(ublkfake.Config{Kernel61: true})
	ctl := newControl(t, k.Process(pidA))
	if _, ok, err := ctl.Features(testCtx(t)); ok || err != nil {
		t.Fatalf("Features on 6.1 = ok %v err %v", ok, err)
	}
	d, err := ublk.Create(testCtx(t), ctl, memSpec(t, ublk.NewMemory(testSize, 512), true))
	if err != nil {
		t.Fatal(err)
	}
	if ctl.Encoding() != "legacy" {
		t.Errorf("encoding %s", ctl.Encoding())
	}
	if d.Info().Flags&uapi.FlagCmdIoctlEncode != 0 {
		t.Errorf("6.1 kept CMD_IOCTL_ENCODE: %v", d.Info().Flags)
	}
	writeRead(t, k, 0, 8192, 3)
	if err := d.Stop(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	log := k.CommandLog()
	if log[0] != "GET_FEATURES(ioctl)=ENODEV" || log[1] != "ADD_DEV(ioctl)=ENODEV" || log[2] != "ADD_DEV(legacy)=0" {
		t.Errorf("negotiation log %v", log)
	}
	noViolations(t, k)
}

// TestNoLegacyOpcodes: a kernel with LEGACY_OPCODES=n works because ioctl
// is tried first.
func TestNoLegacyOpcodes(t *testing.T) {
	k := ublkfake.New(ublkfake.Config{NoLegacyOpcodes: true})
	ctl := newControl(t, k.Process(pidA))
	d, err := ublk.Create(testCtx(t), ctl, memSpec(t, ublk.NewMemory(testSize, 4096), false))
	if err != nil {
		t.Fatal(err)
	}
	writeRead(t, k, 8192, 4096, 4)
	if err := d.Stop(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	for _, c := range k.CommandLog() {
		if strings.Contains(c, "legacy") {
			t.Errorf("legacy opcode issued: %s", c)
		}
	}
	noViolations(t, k)
}

// gateBackend holds writes until released and can hold OnQueueStop, to
// create in-flight requests and late-released references at a kill.
type gateBackend struct {
	*ublk.Memory
	mu      sync.Mutex
	holding bool
	held    chan struct{} // one token per write that started holding
	release chan struct{}
}

func (g *gateBackend) WriteAt(ctx context.Context, p []byte, off int64, fua bool) error {
	g.mu.Lock()
	hold := g.holding
	g.mu.Unlock()
	if hold {
		g.held <- struct{}{}
		select {
		case <-g.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return g.Memory.WriteAt(ctx, p, off, fua)
}

// TestRecoveryReissue kills the server with writes in flight; a new process
// recovers the same device id (START/END_USER_RECOVERY) and the kernel
// reissues the writes, which complete without error (research §0.3).
func TestRecoveryReissue(t *testing.T) {
	k := ublkfake.New(ublkfake.Config{})
	mem := ublk.NewMemory(testSize, 512)
	gate := &gateBackend{Memory: mem, holding: true, held: make(chan struct{}, 8), release: make(chan struct{})}
	ctlA := newControl(t, k.Process(pidA))
	dA, err := ublk.Create(testCtx(t), ctlA, memSpec(t, gate, true))
	if err != nil {
		t.Fatal(err)
	}
	const inflight = 3
	var reqs []*ublkfake.BlockRequest
	for i := range inflight {
		r := ublkfake.NewBlockRequest(uapi.OpWrite, int64(i)*4096, pattern(4096, byte(10+i)))
		r.Queue = i
		if err := k.Submit(testID, r); err != nil {
			t.Fatal(err)
		}
		reqs = append(reqs, r)
	}
	for range inflight {
		<-gate.held
	}
	k.Kill(pidA)
	<-dA.Done()
	if err := dA.Err(); !errors.Is(err, ublkfake.ErrKilled) {
		t.Errorf("old server's queues: %v", err)
	}
	info, _ := k.Info(testID)
	if info.State != uapi.StateQuiesced {
		t.Fatalf("after kill: %v", info.State)
	}
	gate.mu.Lock()
	gate.holding = false
	gate.mu.Unlock()

	ctlB := newControl(t, k.Process(pidB))
	spec := memSpec(t, mem, true)
	spec.Queues, spec.Depth = 1, 1 // ignored: recovery takes the kernel's geometry
	dB, err := ublk.Open(testCtx(t), ctlB, spec)
	if err != nil {
		t.Fatal(err)
	}
	if !dB.Recovered() || dB.ID() != testID || len(dB.Queues()) != 2 {
		t.Fatalf("recovered=%v id=%d queues=%d", dB.Recovered(), dB.ID(), len(dB.Queues()))
	}
	for i, r := range reqs {
		res, err := r.Wait(testCtx(t))
		if err != nil || res != 4096 {
			t.Fatalf("reissued write %d: res %d err %v", i, res, err)
		}
	}
	for i := range inflight {
		got := make([]byte, 4096)
		if res := do(t, k, ublkfake.NewBlockRequest(uapi.OpRead, int64(i)*4096, got)); res != 4096 || !bytes.Equal(got, pattern(4096, byte(10+i))) {
			t.Fatalf("block %d after recovery: res %d", i, res)
		}
	}
	info, _ = k.Info(testID)
	if info.State != uapi.StateLive || info.ServerPID != pidB {
		t.Fatalf("after recovery: %v pid %d", info.State, info.ServerPID)
	}
	if err := dB.Stop(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	close(gate.release)
	noViolations(t, k)
}

// TestDetachLeavesOwnedRequests: a detach whose context ends while the
// handler still owns a request (I/O waiting for a path) does not wait for
// ever: the queues leave, Detach says ErrRequestsLeft, the device is
// quiesced, and the next server gets the request again and completes it.
func TestDetachLeavesOwnedRequests(t *testing.T) {
	k := ublkfake.New(ublkfake.Config{})
	mem := ublk.NewMemory(testSize, 512)
	gate := &gateBackend{Memory: mem, holding: true, held: make(chan struct{}, 8), release: make(chan struct{})}
	defer close(gate.release)
	dA, err := ublk.Create(testCtx(t), newControl(t, k.Process(pidA)), memSpec(t, gate, true))
	if err != nil {
		t.Fatal(err)
	}
	w := ublkfake.NewBlockRequest(uapi.OpWrite, 8192, pattern(4096, 42))
	if err := k.Submit(testID, w); err != nil {
		t.Fatal(err)
	}
	<-gate.held
	ctx, cancel := context.WithTimeout(testCtx(t), 100*time.Millisecond)
	defer cancel()
	if err := dA.Detach(ctx); !errors.Is(err, ublk.ErrRequestsLeft) {
		t.Fatalf("Detach with a request owned: %v, want ErrRequestsLeft", err)
	}
	if info, _ := k.Info(testID); info.State != uapi.StateQuiesced {
		t.Fatalf("after the detach: %v, want quiesced", info.State)
	}
	gate.mu.Lock()
	gate.holding = false
	gate.mu.Unlock()
	dB, err := ublk.Open(testCtx(t), newControl(t, k.Process(pidB)), memSpec(t, mem, true))
	if err != nil {
		t.Fatal(err)
	}
	if res, err := w.Wait(testCtx(t)); err != nil || res != 4096 {
		t.Fatalf("the request left at the detach: res %d err %v", res, err)
	}
	got := make([]byte, 4096)
	if res := do(t, k, ublkfake.NewBlockRequest(uapi.OpRead, 8192, got)); res != 4096 || !bytes.Equal(got, pattern(4096, 42)) {
		t.Fatalf("block after recovery: res %d", res)
	}
	if err := dB.Stop(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	noViolations(t, k)
}

// slowStop is a handler whose OnQueueStop waits for a signal: the dead
// server keeps its rings open, so START_USER_RECOVERY sees -EBUSY first.
type slowStop struct {
	ublk.NullHandler
	stopping chan struct{}
	release  chan struct{}
	once     sync.Once
}

func (s *slowStop) OnQueueStart(*ublk.Queue) error { return nil }
func (s *slowStop) OnQueueStop(*ublk.Queue) {
	s.once.Do(func() { close(s.stopping) })
	<-s.release
}

func TestRecoveryWaitsForOldReferences(t *testing.T) {
	k := ublkfake.New(ublkfake.Config{})
	h := &slowStop{stopping: make(chan struct{}), release: make(chan struct{})}
	ctlA := newControl(t, k.Process(pidA))
	spec := ublk.DeviceSpec{ID: testID, Queues: 1, Depth: 4, MaxIO: 4096, Size: testSize, Recovery: true, Handler: h}
	dA, err := ublk.Create(testCtx(t), ctlA, spec)
	if err != nil {
		t.Fatal(err)
	}
	k.Kill(pidA)
	<-h.stopping
	ctlB := newControl(t, k.Process(pidB))
	spec.Handler = ublk.NullHandler{}
	type result struct {
		d   *ublk.Device
		err error
	}
	done := make(chan result)
	go func() {
		d, err := ublk.Open(testCtx(t), ctlB, spec)
		done <- result{d, err}
	}()
	// Let START_USER_RECOVERY fail with EBUSY at least once, then release.
	if err := k.WaitCommand(testCtx(t), "START_USER_RECOVERY(ioctl)=EBUSY"); err != nil {
		t.Fatal(err)
	}
	close(h.release)
	<-dA.Done()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if res := do(t, k, ublkfake.NewBlockRequest(uapi.OpRead, 0, make([]byte, 4096))); res != 4096 {
		t.Fatalf("read after recovery: %d", res)
	}
	if err := r.d.Stop(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	noViolations(t, k)
}

// TestOpenRefusesLiveServer: a device served by a live process is not taken.
func TestOpenRefusesLiveServer(t *testing.T) {
	k := ublkfake.New(ublkfake.Config{})
	ctlA := newControl(t, k.Process(pidA))
	spec := ublk.DeviceSpec{ID: testID, Queues: 1, Depth: 2, MaxIO: 4096, Size: testSize, Recovery: true, Handler: ublk.NullHandler{}}
	dA, err := ublk.Create(testCtx(t), ctlA, spec)
	if err != nil {
		t.Fatal(err)
	}
	ctlB := newControl(t, k.Process(pidB))
	if _, err := ublk.Open(testCtx(t), ctlB, spec); !errors.Is(err, ublk.ErrDeviceBusy) {
		t.Fatalf("Open of a live device: %v", err)
	}
	if err := dA.Stop(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	noViolations(t, k)
}

// TestServeDetachRecover: Serve with Detach leaves the device quiesced; a
// second Serve (another process) recovers it by id.
func TestServeDetachRecover(t *testing.T) {
	k := ublkfake.New(ublkfake.Config{})
	mem := ublk.NewMemory(testSize, 4096)
	serve := func(pid int32, detach bool) (cancel func() error, dev *ublk.Device) {
		ctx, stop := context.WithCancel(testCtx(t))
		ready := make(chan *ublk.Device, 1)
		errc := make(chan error, 1)
		go func() {
			errc <- ublk.Serve(ctx, ublk.ServeSpec{ID: testID, Backend: mem, Queues: 2, Depth: 4, MaxIO: 16 << 10,
				Recover: true, Detach: detach, Driver: k.Process(pid), Logger: logger(t),
				OnReady: func(d *ublk.Device) { ready <- d }})
		}()
		select {
		case d := <-ready:
			return func() error { stop(); return <-errc }, d
		case err := <-errc:
			stop()
			t.Fatal(err)
		}
		return nil, nil
	}
	stopA, dA := serve(pidA, true)
	if dA.Recovered() {
		t.Fatal("first server recovered")
	}
	writeRead(t, k, 0, 16<<10, 6)
	if err := stopA(); err != nil {
		t.Fatal(err)
	}
	if info, _ := k.Info(testID); info.State != uapi.StateQuiesced {
		t.Fatalf("after detach: %v", info.State)
	}
	// I/O submitted while no server runs waits for the successor.
	waiting := ublkfake.NewBlockRequest(uapi.OpRead, 0, make([]byte, 4096))
	if err := k.Submit(testID, waiting); err != nil {
		t.Fatal(err)
	}
	stopB, dB := serve(pidB, false)
	if !dB.Recovered() {
		t.Fatal("second server did not recover")
	}
	if res, err := waiting.Wait(testCtx(t)); err != nil || res != 4096 || !bytes.Equal(waiting.Data, pattern(4096, 6)) {
		t.Fatalf("request queued during the outage: res %d err %v", res, err)
	}
	if err := stopB(); err != nil {
		t.Fatal(err)
	}
	if ids := k.DeviceIDs(); len(ids) != 0 {
		t.Fatalf("devices left: %v", ids)
	}
	noViolations(t, k)
}

// TestNoRecoveryKill: without USER_RECOVERY the disk goes away with the
// server, and Open deletes the leftover and adds the device again.
func TestNoRecoveryKill(t *testing.T) {
	k := ublkfake.New(ublkfake.Config{})
	spec := ublk.DeviceSpec{ID: testID, Queues: 1, Depth: 2, MaxIO: 4096, Size: testSize, Handler: ublk.NullHandler{}}
	dA, err := ublk.Create(testCtx(t), newControl(t, k.Process(pidA)), spec)
	if err != nil {
		t.Fatal(err)
	}
	k.Kill(pidA)
	<-dA.Done()
	if info, _ := k.Info(testID); info.State != uapi.StateDead {
		t.Fatalf("state %v", info.State)
	}
	if err := k.Submit(testID, ublkfake.NewBlockRequest(uapi.OpRead, 0, make([]byte, 512))); !errors.Is(err, ublkfake.ErrNoDisk) {
		t.Fatalf("submit to a dead disk: %v", err)
	}
	dB, err := ublk.Open(testCtx(t), newControl(t, k.Process(pidB)), spec)
	if err != nil {
		t.Fatal(err)
	}
	if dB.Recovered() {
		t.Fatal("recovered a device without USER_RECOVERY")
	}
	if err := dB.Stop(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	noViolations(t, k)
}

// recorder checks what a Handler sees of a request.
type recorder struct {
	ublk.NullHandler
	mu   sync.Mutex
	seen []ublk.Request
}

func (r *recorder) Start(q *ublk.Queue, req *ublk.Request) {
	r.mu.Lock()
	r.seen = append(r.seen, ublk.Request{Op: req.Op, Flags: req.Flags, Off: req.Off, Len: req.Len, Queue: req.Queue, Tag: req.Tag})
	r.mu.Unlock()
	r.NullHandler.Start(q, req)
}

func TestRequestFields(t *testing.T) {
	k := ublkfake.New(ublkfake.Config{})
	h := &recorder{}
	spec := ublk.DeviceSpec{ID: testID, Queues: 2, Depth: 2, MaxIO: 8192, Size: testSize, Handler: h}
	d, err := ublk.Create(testCtx(t), newControl(t, k.Process(pidA)), spec)
	if err != nil {
		t.Fatal(err)
	}
	r := ublkfake.NewBlockRequest(uapi.OpWrite, 1<<20, make([]byte, 8192))
	r.Flags = uapi.IOFUA | uapi.IOFailFastTransport
	r.Queue = 1
	if res := do(t, k, r); res != 8192 {
		t.Fatalf("res %d", res)
	}
	if err := d.Stop(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	last := h.seen[len(h.seen)-1]
	want := ublk.Request{Op: ublk.OpWrite, Flags: ublk.FlagFUA | ublk.FlagFailFastTransport, Off: 1 << 20, Len: 8192, Queue: 1, Tag: last.Tag}
	if fmt.Sprintf("%+v", last) != fmt.Sprintf("%+v", want) {
		t.Errorf("request %+v, want %+v", last, want)
	}
	// The first request was START_DEV's partition-table read.
	if first := h.seen[0]; first.Op != ublk.OpRead || first.Off != 0 {
		t.Errorf("first request %+v, want the partition scan read", first)
	}
}

func TestSpecValidation(t *testing.T) {
	k := ublkfake.New(ublkfake.Config{})
	ctl := newControl(t, k.Process(pidA))
	for _, s := range []ublk.DeviceSpec{
		{ID: 1, Size: testSize},
		{ID: 1, Size: testSize, Handler: ublk.NullHandler{}, LogicalBlockSize: 1000},
		{ID: 1, Size: 1000, Handler: ublk.NullHandler{}},
		{ID: 1, Size: testSize, Handler: ublk.NullHandler{}, MaxIO: 100},
		{ID: 1, Size: testSize, Handler: ublk.NullHandler{}, Depth: 5000},
	} {
		if _, err := ublk.Create(testCtx(t), ctl, s); !errors.Is(err, ublk.ErrInvalidSpec) {
			t.Errorf("spec %+v: %v", s, err)
		}
	}
	if len(k.CommandLog()) != 0 {
		t.Errorf("invalid specs reached the driver: %v", k.CommandLog())
	}
}

func TestErrnoFor(t *testing.T) {
	for _, c := range []struct {
		err  error
		want unix.Errno
	}{
		{unix.ENOSPC, unix.ENOSPC}, {context.DeadlineExceeded, unix.ETIMEDOUT}, {ublk.ErrUnsupportedOp, unix.EOPNOTSUPP},
		{errors.New("x"), unix.EIO}, {&ublk.OpError{Op: "x", Err: unix.ENOLINK}, unix.ENOLINK},
	} {
		if got := ublk.ErrnoFor(c.err); got != -int32(c.want) {
			t.Errorf("ErrnoFor(%v) = %d, want %d", c.err, got, -int32(c.want))
		}
	}
	if ublk.ErrnoFor(nil) != 0 {
		t.Error("nil")
	}
}

// TestZeroAllocsPerIO measures the whole round trip through the fake (block
// layer → queue thread → handler → COMMIT_AND_FETCH) with the inline
// handler and with the backend adapter.
func TestZeroAllocsPerIO(t *testing.T) {
	for _, c := range []struct {
		name string
		h    ublk.Handler
	}{
		{"inline", ublk.NullHandler{}},
		{"backend", ublk.NewBackendHandler(ublk.Null{Size: testSize, LogicalBlockSize: 512}, 1)},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := ublkfake.New(ublkfake.Config{NoPartitionScan: true})
			spec := ublk.DeviceSpec{ID: testID, Queues: 1, Depth: 4, MaxIO: 4096, Size: testSize, Handler: c.h}
			d, err := ublk.Create(testCtx(t), newControl(t, k.Process(pidA)), spec)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := d.Stop(testCtx(t)); err != nil {
					t.Error(err)
				}
			}()
			r := ublkfake.NewBlockRequest(uapi.OpRead, 0, make([]byte, 4096))
			ctx := testCtx(t)
			allocs := testing.AllocsPerRun(500, func() {
				if res, err := k.Do(ctx, testID, r); err != nil || res != 4096 {
					t.Fatalf("res %d err %v", res, err)
				}
			})
			if allocs != 0 {
				t.Errorf("%v allocations per I/O", allocs)
			}
		})
	}
}

func BenchmarkFakeRoundTrip(b *testing.B) {
	k := ublkfake.New(ublkfake.Config{NoPartitionScan: true})
	ctl, err := ublk.NewControl(k.Process(pidA), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer ctl.Close()
	ctx := context.Background()
	d, err := ublk.Create(ctx, ctl, ublk.DeviceSpec{ID: testID, Queues: 1, Depth: 4, MaxIO: 4096, Size: testSize, Handler: ublk.NullHandler{}})
	if err != nil {
		b.Fatal(err)
	}
	r := ublkfake.NewBlockRequest(uapi.OpRead, 0, make([]byte, 4096))
	for b.Loop() {
		_, _ = k.Do(ctx, testID, r)
	}
	b.StopTimer()
	_ = d.Stop(ctx)
}

// TestQueueMemory: caller-supplied buffers (registered before the device
// exists, as the SRP layer does) are the ones the kernel copies through.
func TestQueueMemory(t *testing.T) {
	const depth, maxIO = 4, 8192
	k := ublkfake.New(ublkfake.Config{})
	var mems [][]byte
	for range 2 {
		m, free, err := ublk.AllocQueueMemory(depth * maxIO)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = free() }()
		mems = append(mems, m)
	}
	mem := ublk.NewMemory(testSize, 512)
	spec := ublk.DeviceSpec{ID: testID, Queues: 2, Depth: depth, MaxIO: maxIO, Size: testSize,
		Handler: ublk.NewBackendHandler(mem, 1), QueueMemory: mems}
	d, err := ublk.Create(testCtx(t), newControl(t, k.Process(pidA)), spec)
	if err != nil {
		t.Fatal(err)
	}
	for q, qq := range d.Queues() {
		if &qq.BufferMemory()[0] != &mems[q][0] || &d.TagBuffer(q, 1)[0] != &mems[q][maxIO] {
			t.Errorf("queue %d does not use the supplied memory", q)
		}
	}
	writeRead(t, k, 0, 3*maxIO, 8)
	if err := d.Stop(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	noViolations(t, k)
	spec.QueueMemory = mems[:1]
	if _, err := ublk.Create(testCtx(t), newControl(t, k.Process(pidB)), spec); !errors.Is(err, ublk.ErrInvalidSpec) {
		t.Errorf("one memory for two queues: %v", err)
	}
}

// TestStopWithDiskHolder is the lab's md case: something outside the server
// still holds the disk when the server stops. DEL_DEV_ASYNC returns at once
// and the id is freed when the holder lets go; without it (6.4–6.8)
// DEL_DEV waits, and Stop gives up when its context ends.
func TestStopWithDiskHolder(t *testing.T) {
	for _, async := range []bool{true, false} {
		t.Run(fmt.Sprint("async=", async), func(t *testing.T) {
			k := ublkfake.New(ublkfake.Config{NoDelAsync: !async})
			ctl := newControl(t, k.Process(pidA))
			spec := ublk.DeviceSpec{ID: testID, Queues: 1, Depth: 2, MaxIO: 4096, Size: testSize, Recovery: true, Handler: ublk.NullHandler{}}
			d, err := ublk.Create(testCtx(t), ctl, spec)
			if err != nil {
				t.Fatal(err)
			}
			release, err := k.OpenDisk(testID)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(testCtx(t))
			if !async {
				// DEL_DEV waits for the holder: end the wait once it started.
				go func() {
					_ = k.WaitDeleting(ctx, testID)
					cancel()
				}()
			}
			err = d.Stop(ctx)
			cancel()
			switch {
			case async && err != nil:
				t.Fatalf("Stop: %v", err)
			case !async && !errors.Is(err, ublk.ErrCommandAbandoned):
				t.Fatalf("Stop with a holder and a sync DEL_DEV: %v", err)
			}
			if ids := k.DeviceIDs(); len(ids) != 1 {
				t.Fatalf("the id was freed while the disk is held: %v", ids)
			}
			release()
			if err := k.WaitGone(testCtx(t), testID); err != nil {
				t.Fatal(err)
			}
			noViolations(t, k)
		})
	}
}

// TestPinQueues: with PinQueues each queue thread runs on the CPUs the
// driver maps to its queue.
func TestPinQueues(t *testing.T) {
	k := ublkfake.New(ublkfake.Config{})
	ctl := newControl(t, k.Process(pidA))
	set, err := ctl.QueueAffinity(testCtx(t), testID, 0)
	if !errors.Is(err, unix.ENODEV) {
		t.Fatalf("affinity of a missing device: %v %v", set, err)
	}
	h := &affinityRecorder{seen: make(chan unix.CPUSet, 2)}
	spec := ublk.DeviceSpec{ID: testID, Queues: 2, Depth: 2, MaxIO: 4096, Size: testSize, PinQueues: true, Handler: h}
	d, err := ublk.Create(testCtx(t), ctl, spec)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		got := <-h.seen
		if got.Count() == 0 {
			t.Error("queue thread has no CPU")
		}
	}
	want, err := ctl.QueueAffinity(testCtx(t), testID, 1)
	if err != nil || (runtime.NumCPU() > 1 && want.IsSet(0)) {
		t.Errorf("queue 1 affinity %v %v", want, err)
	}
	if err := d.Stop(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	noViolations(t, k)
}

type affinityRecorder struct {
	ublk.NullHandler
	seen chan unix.CPUSet
}

func (a *affinityRecorder) OnQueueStart(q *ublk.Queue) error {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return err
	}
	a.seen <- set
	return nil
}

func (a *affinityRecorder) OnQueueStop(*ublk.Queue) {}
