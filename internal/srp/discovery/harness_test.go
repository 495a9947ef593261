package discovery

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/srp-mpathd/srp-mpathd/internal/clock"
	"github.com/srp-mpathd/srp-mpathd/internal/srp/mad"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs/sim"
)

// The test subnet: an initiator "ini" with two InfiniBand ports, port 1 on
// subnet A and port 2 on subnet B (two links, each with its own SM), and
// target devices with one port on each subnet.
const (
	smLID      = 100
	iniLID     = 1
	maxReqSize = 8276
)

// Initiator P_Key tables. On port 1, partition 0x8001 sits at index 3, as
// the issue asks; port 2 has it at index 1. 0x0005 is a limited membership
// (it shares nothing with another limited member).
var (
	iniPKeys1 = []uint16{0xffff, 0x8002, 0x0005, 0x8001}
	iniPKeys2 = []uint16{0xffff, 0x8001, 0x0005}
)

// testTarget describes one simulated target device.
type testTarget struct {
	name    string
	pkeys   [2][]uint16 // per port (subnet A, subnet B)
	noDM    bool        // no DM agent (not an I/O unit)
	service string      // service name; "" = SRP.T10:<guid>
	lid     uint16
}

type harness struct {
	t      *testing.T
	clk    *clock.Manual
	f      *sim.Fabric
	links  [2]*sim.Link
	sms    [2]*sim.SubnetManager
	guids  map[string]uint64 // target name → node GUID (= service GUID)
	agents map[string][2]*sim.DMAgent
	byName map[string]testTarget
}

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// newHarness builds the fabric with the given targets, links up, SMs on.
func newHarness(t *testing.T, targets ...testTarget) *harness {
	t.Helper()
	clk := clock.NewManual(epoch)
	h := newHarnessClock(t, clk, targets...)
	h.clk = clk
	return h
}

// newHarnessClock builds the harness on any clock (clock.Real inside a
// synctest bubble for tests that run the multipath layer); h.clk is nil.
func newHarnessClock(t *testing.T, clk clock.Clock, targets ...testTarget) *harness {
	t.Helper()
	h := &harness{t: t, f: sim.New(sim.Config{Seed: 1, Clock: clk}), guids: map[string]uint64{},
		agents: map[string][2]*sim.DMAgent{}, byName: map[string]testTarget{}}
	t.Cleanup(func() { _ = h.f.Close() })
	ib := func(lid uint16, pkeys []uint16, side int) sim.PortConfig {
		// IPoIB addresses: 10.0.<subnet>.<LID>, for RDMA/CM logins.
		return sim.PortConfig{LinkLayer: verbs.LinkInfiniBand, LID: lid, SMLID: smLID, PKeys: pkeys,
			Addrs: []netip.Addr{ipoib(side, lid)}}
	}
	must(t, h.f.AddDevice("ini", ib(iniLID, iniPKeys1, 0), ib(iniLID, iniPKeys2, 1)))
	for i, tt := range targets {
		if tt.lid == 0 {
			tt.lid = uint16(10 + i)
		}
		h.byName[tt.name] = tt
		must(t, h.f.AddDevice(tt.name, ib(tt.lid, tt.pkeys[0], 0), ib(tt.lid, tt.pkeys[1], 1)))
	}
	infos, err := h.f.Devices()
	must(t, err)
	for _, info := range infos {
		h.guids[info.Name] = info.NodeGUID
	}
	for side := range 2 {
		refs := []sim.PortRef{{Device: "ini", Port: uint8(side + 1)}}
		for _, tt := range targets {
			refs = append(refs, sim.PortRef{Device: tt.name, Port: uint8(side + 1)})
		}
		l, err := h.f.Connect(refs...)
		must(t, err)
		h.links[side] = l
		sm, err := h.f.AddSubnetManager(l, sim.SMConfig{LID: smLID})
		must(t, err)
		h.sms[side] = sm
	}
	for _, tt := range targets {
		if !tt.noDM {
			h.addAgents(tt.name)
		}
	}
	return h
}

func (h *harness) controller(name string) sim.IOController {
	tt := h.byName[name]
	c := sim.SRPTController(h.guids[name], maxReqSize)
	if tt.service != "" {
		c.Services[0].Name = tt.service
	}
	return c
}

// addAgents starts the DM agents of a target on both its ports.
func (h *harness) addAgents(name string) {
	var as [2]*sim.DMAgent
	for side := range 2 {
		a, err := h.f.AddDMAgent(sim.PortRef{Device: name, Port: uint8(side + 1)}, h.controller(name))
		must(h.t, err)
		as[side] = a
	}
	h.agents[name] = as
}

// portGID is the GID of a target's port (side 0 = port 1).
func (h *harness) portGID(name string, side int) verbs.GID {
	return gidFrom(0xfe80000000000000, h.guids[name]+uint64(side+1))
}

// want is the target a scan must report for name through local port side
// and pkey.
func (h *harness) want(name string, side int, pkey uint16) Target {
	guid := h.guids[name]
	idx := uint16(0)
	tbl := iniPKeys1
	if side == 1 {
		tbl = iniPKeys2
	}
	for i, p := range tbl {
		if p == pkey {
			idx = uint16(i)
		}
	}
	return Target{IDExt: guid, IOCGUID: guid, DGID: h.portGID(name, side), PKey: pkey, PKeyIndex: idx, ServiceID: guid,
		MaxIUSize: maxReqSize, IOClass: mad.IOClassSRPRev16A, Local: PortRef{Device: "ini", Port: uint8(side + 1)},
		DLID: h.byName[name].lid, IOCName: "Linux SRP target"}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func targetStrings(ts []Target) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = fmt.Sprintf("%v %v", t.Local, t)
	}
	return out
}

// cmpTargets compares Targets (netip types have unexported fields).
var cmpTargets = cmpopts.EquateComparable(netip.AddrPort{})

// iniPorts are the initiator's ports: the sim fabric also holds the
// targets' devices, which a real host would not see.
var iniPorts = []PortRef{{Device: "ini", Port: 1}, {Device: "ini", Port: 2}}

// ipoib is the IPoIB address of the port with lid on subnet side.
func ipoib(side int, lid uint16) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 0, byte(side + 1), byte(lid)})
}
