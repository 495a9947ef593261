package daemon

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/config"
	"github.com/srp-mpathd/srp-mpathd/internal/ublk/uapi"
	"github.com/srp-mpathd/srp-mpathd/internal/ublk/ublkfake"
)

// ioTestTimeout bounds one block request in the ublk test. The simulator
// has no completion fds, so the ublk queue thread sees a completion only
// when something wakes it (the paths heartbeat tick at the latest).
const ioTestTimeout = 20 * time.Second

// TestUblkOverSim: with a ublk driver (ublkfake), every simulated LU is a
// ublk device with the store's id and the probed geometry; block I/O goes
// through paths and the SRP channels to the target and back; a graceful
// stop detaches (the device stays, quiesced) and the next daemon recovers
// the same id.
func TestUblkOverSim(t *testing.T) {
	k := ublkfake.New(ublkfake.Config{})
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Defaults.Device.QueueDepth = 16
	cfg.Defaults.Device.MaxIOSize = 64 << 10
	edit := func(pid int32) func(*Options) {
		return func(o *Options) {
			o.UblkDriver, o.Config = k.Process(pid), cfg
			o.StorePath, o.DrainTimeout = filepath.Join(dir, "store.db"), ioTestTimeout
		}
	}
	td := startDaemon(t, edit(100))
	if got := k.DeviceIDs(); len(got) != SimTargets {
		t.Fatalf("ublk devices %v, want %d", got, SimTargets)
	}
	for _, dv := range td.Devices() {
		if dv.Block != "/dev/ublkb"+dv.Name[len(blockDevPrefix):] {
			t.Errorf("%s: block %q", dv.Name, dv.Block)
		}
	}
	info, _ := k.Info(0)
	params, _ := k.Params(0)
	if info.State != uapi.StateLive || params.Basic.DevSectors != simBlocks*simBlockSize/512 || params.Basic.LogicalBSShift != 9 {
		t.Errorf("device 0: state %v, %d sectors, lbs shift %d; want LIVE, %d, 9", info.State, params.Basic.DevSectors, params.Basic.LogicalBSShift, simBlocks)
	}

	ctx, cancel := context.WithTimeout(context.Background(), ioTestTimeout)
	defer cancel()
	data := bytes.Repeat([]byte("srp-mpathd ublk "), 4096/16)
	if res, err := k.Do(ctx, 0, ublkfake.NewBlockRequest(uapi.OpWrite, 8192, data)); err != nil || res != int32(len(data)) {
		t.Fatalf("write: %d, %v", res, err)
	}
	got := make([]byte, len(data))
	if res, err := k.Do(ctx, 0, ublkfake.NewBlockRequest(uapi.OpRead, 8192, got)); err != nil || res != int32(len(got)) {
		t.Fatalf("read: %d, %v", res, err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("read back differs from what was written")
	}
	td.stop(t)
	if info, ok := k.Info(0); !ok || info.State != uapi.StateQuiesced {
		t.Fatalf("after a graceful stop: %+v (exists %v), want QUIESCED for recovery", info.State, ok)
	}

	td = startDaemon(t, edit(101))
	if info, _ := k.Info(0); info.State != uapi.StateLive || len(k.DeviceIDs()) != SimTargets {
		t.Errorf("after restart: state %v, devices %v; want LIVE, %d", info.State, k.DeviceIDs(), SimTargets)
	}
	td.stop(t)
	if v := k.Violations(); len(v) != 0 {
		t.Errorf("ublk rule violations: %v", v)
	}
}
