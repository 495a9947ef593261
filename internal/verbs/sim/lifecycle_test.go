package sim_test

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/clock"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs/sim"
)

// Closing a device handle closes its connections (the peer sees a DREQ),
// listeners and event channel.
func TestDeviceClose(t *testing.T) {
	p := newPair(t, sim.Config{Seed: 1, Clock: clock.NewManual(epoch)})
	ini, tgt := p.connect(t, dialParams(), targetParams())
	must(t, p.tgt.Close())
	if ev := <-ini.CMEvents(); ev.Kind != verbs.CMDisconnected {
		t.Fatalf("initiator event %+v, want disconnected", ev)
	}
	if _, ok := <-tgt.CMEvents(); ok {
		t.Fatal("closed device's connection still delivers events")
	}
	if _, ok := <-p.l.Requests(); ok {
		t.Fatal("listener not closed")
	}
	if _, ok := <-p.tgt.Events(); ok {
		t.Fatal("event channel not closed")
	}
	if _, err := p.tgt.AllocBuffer(10, verbs.AccessData); !errors.Is(err, verbs.ErrClosed) {
		t.Fatalf("AllocBuffer on a closed device: %v", err)
	}
	must(t, p.tgt.Close()) // idempotent
}

// Fabric.Close stops the timers of pending work, so nothing runs (or
// leaks, see TestMain) after it with the Real clock.
func TestFabricCloseStopsTimers(t *testing.T) {
	p := newPair(t, sim.Config{Seed: 1, Timewait: time.Hour, CMTimeout: time.Hour})
	p.link.SetLatency(time.Hour)
	ini, tgt := p.connect(t, dialParams(), targetParams())
	b := alloc(t, p.ini, 64)
	must(t, ini.PostSend(sendWR(1, sge(b, 0, 8))))
	must(t, tgt.Disconnect())
	must(t, p.fab.Close())
	if _, err := p.fab.Open("ini0"); !errors.Is(err, verbs.ErrClosed) {
		t.Fatalf("Open after Close: %v", err)
	}
}

// An InfiniBand port reports its LID, SM LID, P_Keys and a GID table of
// the port GUID only; Devices lists devices in the order added.
func TestInfiniBandPort(t *testing.T) {
	fab := sim.New(sim.Config{Seed: 1, Clock: clock.NewManual(epoch)})
	defer fab.Close()
	must(t, fab.AddDevice("mlx5_0", sim.PortConfig{
		LinkLayer: verbs.LinkInfiniBand,
		Addrs:     []netip.Addr{netip.MustParseAddr("192.168.50.1")},
		PKeys:     []uint16{0xffff, 0x8001},
		LID:       5, SMLID: 1,
	}))
	must(t, fab.AddDevice("mlx5_1", sim.PortConfig{LinkLayer: verbs.LinkInfiniBand, LID: 6, SMLID: 1}))
	if err := fab.AddDevice("mlx5_0", sim.PortConfig{}); !errors.Is(err, sim.ErrExists) {
		t.Fatalf("duplicate AddDevice: %v", err)
	}
	if _, err := fab.Connect(sim.PortRef{Device: "mlx5_0", Port: 1}, sim.PortRef{Device: "mlx5_1", Port: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := fab.Connect(sim.PortRef{Device: "mlx5_0", Port: 1}, sim.PortRef{Device: "mlx5_1", Port: 1}); !errors.Is(err, sim.ErrExists) {
		t.Fatalf("second link on a port: %v", err)
	}
	infos, _ := fab.Devices()
	if len(infos) != 2 || infos[0].Name != "mlx5_0" || infos[1].Name != "mlx5_1" || infos[0].NodeGUID == infos[1].NodeGUID {
		t.Fatalf("Devices = %+v", infos)
	}
	d, err := fab.OpenDevice("mlx5_0")
	must(t, err)
	pa, err := d.Port(1)
	must(t, err)
	if pa.LinkLayer != verbs.LinkInfiniBand || pa.LID != 5 || pa.SMLID != 1 || pa.GIDTableLen != 1 || pa.ActiveMTU != 4096 || pa.State != verbs.PortActive {
		t.Fatalf("port %+v", pa)
	}
	g, _ := d.GID(1, 0)
	if g.InterfaceID() != infos[0].NodeGUID+1 {
		t.Fatalf("GID 0 %v: interface id is not the port GUID %#x", g, infos[0].NodeGUID+1)
	}
	if i, err := d.PKeyIndex(1, 0x8001); err != nil || i != 1 {
		t.Fatalf("PKeyIndex(0x8001) = %d, %v", i, err)
	}
	if _, err := fab.Open("nope"); !errors.Is(err, verbs.ErrNoDevice) {
		t.Fatalf("Open(nope): %v", err)
	}
}
