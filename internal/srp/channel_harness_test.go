package srp_test

import (
	"bytes"
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/leakcheck"
	"github.com/srp-mpathd/srp-mpathd/internal/srp"
	"github.com/srp-mpathd/srp-mpathd/internal/srp/scsi"
	"github.com/srp-mpathd/srp-mpathd/internal/srp/srptest"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs/sim"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

var (
	iniAddr = netip.MustParseAddr("198.18.1.1")
	tgtAddr = netip.MustParseAddr("198.18.1.2")
	tgtPort = netip.AddrPortFrom(tgtAddr, 5555)
)

const (
	testLUN    = 1
	testBlocks = 4096
)

// env is an initiator device and a target device joined by one link, with
// an srptest target listening on the target device.
type env struct {
	fab  *sim.Fabric
	link *sim.Link
	ini  *sim.Device
	tdev *sim.Device
	tgt  *srptest.Target
	port *srptest.Port
	lu   *srptest.LU
}

type envOpt func(*srptest.Config, *srptest.LUConfig)

func newEnv(t testing.TB, opts ...envOpt) *env {
	t.Helper()
	return newEnvSim(t, sim.Config{Seed: 1}, opts...)
}

func newEnvSim(t testing.TB, scfg sim.Config, opts ...envOpt) *env {
	t.Helper()
	fab := sim.New(scfg)
	t.Cleanup(func() { fab.Close() })
	must(t, fab.AddDevice("ini0", sim.PortConfig{Addrs: []netip.Addr{iniAddr}}))
	must(t, fab.AddDevice("tgt0", sim.PortConfig{Addrs: []netip.Addr{tgtAddr}}))
	link, err := fab.Connect(sim.PortRef{Device: "ini0", Port: 1}, sim.PortRef{Device: "tgt0", Port: 1})
	must(t, err)
	ini, err := fab.OpenDevice("ini0")
	must(t, err)
	tdev, err := fab.OpenDevice("tgt0")
	must(t, err)
	cfg := srptest.Config{}
	lc := srptest.LUConfig{LUN: testLUN, BlockSize: 512, Blocks: testBlocks, Serial: "SRPTEST0001", WriteCache: true, ThinProvisioning: true}
	for _, o := range opts {
		o(&cfg, &lc)
	}
	tgt := srptest.New(cfg)
	t.Cleanup(func() {
		if err := tgt.Close(); err != nil {
			t.Errorf("target close: %v", err)
		}
	})
	port, err := tgt.AddPort(tdev, tgtPort)
	must(t, err)
	lu, err := tgt.AddLU(lc)
	must(t, err)
	return &env{fab: fab, link: link, ini: ini, tdev: tdev, tgt: tgt, port: port, lu: lu}
}

func (e *env) params() srp.ChannelParams {
	return srp.ChannelParams{
		Src:          iniAddr,
		Dst:          tgtPort,
		InitiatorExt: 0xfe80000000000000,
		TargetPortID: e.tgt.PortID(),
		QueueDepth:   32,
		Immediate:    true,
	}
}

func (e *env) dial(t testing.TB, p srp.ChannelParams) *srp.Channel {
	t.Helper()
	c, err := srp.Dial(context.Background(), e.ini, p)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// waitResults polls c until n results arrived, sleeping on the simulator's
// readiness channel between polls.
func waitResults(t testing.TB, c *srp.Channel, out []srp.Result, n int) []srp.Result {
	t.Helper()
	got := out[:0]
	buf := make([]srp.Result, 16)
	deadline := time.After(10 * time.Second)
	for len(got) < n {
		k := c.Poll(buf)
		got = append(got, buf[:k]...)
		if k > 0 || len(got) >= n {
			continue
		}
		must(t, c.ArmNotify())
		if k = c.Poll(buf); k > 0 {
			got = append(got, buf[:k]...)
			continue
		}
		select {
		case <-c.Ready():
		case <-c.Failed():
			k = c.Poll(buf)
			got = append(got, buf[:k]...)
			if len(got) < n {
				t.Fatalf("channel failed with %d of %d results: %v", len(got), n, c.Err())
			}
		case <-deadline:
			t.Fatalf("timed out with %d of %d results (outstanding %d)", len(got), n, c.Outstanding())
		}
	}
	return got
}

// dataBuf is a registered data buffer split in per-tag slots.
type dataBuf struct {
	b    verbs.Buffer
	slot int
}

func newDataBuf(t testing.TB, dev verbs.Device, slots, slot int) *dataBuf {
	t.Helper()
	b, err := dev.AllocBuffer(slots*slot, verbs.AccessData)
	must(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return &dataBuf{b: b, slot: slot}
}

func (d *dataBuf) bytes(i int) []byte { return d.b.Bytes()[i*d.slot : (i+1)*d.slot] }

// rw fills cmd for a READ or WRITE of blocks at lba using data slot i.
func (d *dataBuf) rw(cmd *srp.Command, i int, write bool, lba uint64, blocks uint32, bs int) {
	n := int(blocks) * bs
	*cmd = srp.Command{ID: uint64(i), LUN: testLUN, Addr: d.b.Addr() + uint64(i*d.slot), RKey: d.b.RKey(), Len: uint32(n),
		Local: d.bytes(i)[:n], LKey: d.b.LKey(), Dir: srp.DataIn}
	cmd.CDBLen = scsi.RW(&cmd.CDB, write, lba, blocks, false)
	if write {
		cmd.Dir = srp.DataOut
	}
}

// do submits one command and waits for its result.
func do(t testing.TB, c *srp.Channel, cmd *srp.Command) srp.Result {
	t.Helper()
	must(t, c.Submit(cmd))
	var out [1]srp.Result
	r := waitResults(t, c, out[:], 1)
	return r[0]
}

func pattern(b []byte, seed uint64) {
	x := seed*0x9e3779b97f4a7c15 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
}

func checkLU(t testing.TB, lu *srptest.LU, off int64, want []byte) {
	t.Helper()
	got := make([]byte, len(want))
	if _, err := lu.ReadAt(got, off); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("LU data at %d differs", off)
	}
}

func netipPort(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }

func netipAddr() netip.Addr { return netip.Addr{} }
