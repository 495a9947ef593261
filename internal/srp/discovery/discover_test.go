package discovery

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/srp-mpathd/srp-mpathd/internal/srp/mad"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs/sim"
)

// partitionTargets is the 2 ports × 3 P_Keys layout: which partitions each
// target port is in.
func partitionTargets() []testTarget {
	return []testTarget{
		{name: "tdefault", pkeys: [2][]uint16{{0xffff}, {0xffff}}},
		// Only through 0x8001: index 3 on ini:1, index 1 on ini:2.
		{name: "tp8001", pkeys: [2][]uint16{{0x8001}, {0x8001}}},
		// 0x8002 on subnet A; on B a partition the initiator lacks.
		{name: "tp8002", pkeys: [2][]uint16{{0x8002}, {0x8003}}},
		// Two partitions: found once through each.
		{name: "tmulti", pkeys: [2][]uint16{{0xffff, 0x8001}, {0x8001, 0xffff}}},
		// Limited member meets limited member: no partition is shared.
		{name: "tlimited", pkeys: [2][]uint16{{0x0005}, {0x0005}}},
		// An I/O unit whose service is not SRP.
		{name: "tother", pkeys: [2][]uint16{{0xffff}, {0xffff}}, service: "FOO.BAR:0000000000000001"},
		// A plain CA without a DM agent.
		{name: "tplain", pkeys: [2][]uint16{{0xffff}, {0xffff}}, noDM: true},
	}
}

// Done-when: discovery across 2 ports × 3 P_Keys finds exactly the targets
// each partition allows (research/srp-protocol.md §4.3, §4.4).
func TestDiscoverPartitions(t *testing.T) {
	h := newHarness(t, partitionTargets()...)
	got, err := Discover(context.Background(), h.f, Options{Ports: iniPorts})
	must(t, err)
	want := []Target{
		h.want("tdefault", 0, 0xffff), h.want("tp8001", 0, 0x8001), h.want("tp8002", 0, 0x8002),
		h.want("tmulti", 0, 0xffff), h.want("tmulti", 0, 0x8001),
		h.want("tdefault", 1, 0xffff), h.want("tp8001", 1, 0x8001),
		h.want("tmulti", 1, 0xffff), h.want("tmulti", 1, 0x8001),
	}
	SortTargets(want)
	if diff := cmp.Diff(targetStrings(want), targetStrings(got)); diff != "" {
		t.Fatalf("targets (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, got, cmpTargets); diff != "" {
		t.Fatalf("targets (-want +got):\n%s", diff)
	}
	if tp := h.want("tp8001", 0, 0x8001); tp.PKeyIndex != 3 {
		t.Fatalf("0x8001 at index %d on ini:1, the test means index 3", tp.PKeyIndex)
	}
}

// --pkey and --port restrict the scan.
func TestDiscoverRestrict(t *testing.T) {
	h := newHarness(t, partitionTargets()...)
	got, err := Discover(context.Background(), h.f, Options{PKeys: []uint16{0x8001},
		Ports: []PortRef{{Device: "ini", Port: 1}}})
	must(t, err)
	want := []Target{h.want("tmulti", 0, 0x8001), h.want("tp8001", 0, 0x8001)}
	SortTargets(want)
	if diff := cmp.Diff(want, got, cmpTargets); diff != "" {
		t.Fatalf("targets (-want +got):\n%s", diff)
	}
}

// The rules decide, first match wins, options are attached.
func TestDiscoverRules(t *testing.T) {
	h := newHarness(t, partitionTargets()...)
	rules, err := ParseRules(strings.NewReader(
		"# deny tp8002, allow tmulti on 8001 with options, deny the rest of tmulti\n" +
			"d id_ext=" + hex16(h.guids["tp8002"]) + "\n" +
			"a ioc_guid=" + hex16(h.guids["tmulti"]) + ",pkey=8001,queue_size=128,max_sect=1024\n" +
			"d ioc_guid=" + hex16(h.guids["tmulti"]) + "\n"))
	must(t, err)
	got, err := Discover(context.Background(), h.f, Options{Rules: rules, Ports: []PortRef{{"ini", 1}}})
	must(t, err)
	m := h.want("tmulti", 0, 0x8001)
	m.Options = "queue_size=128,max_sect=1024"
	want := []Target{h.want("tdefault", 0, 0xffff), h.want("tp8001", 0, 0x8001), m}
	SortTargets(want)
	if diff := cmp.Diff(want, got, cmpTargets); diff != "" {
		t.Fatalf("targets (-want +got):\n%s", diff)
	}
	if s := m.String(); !strings.HasSuffix(s, ",pkey=8001,service_id="+hex16(h.guids["tmulti"])+",queue_size=128,max_sect=1024") {
		t.Fatalf("String() = %q", s)
	}
}

// The SA's status is read: a PathRecord denied is a failure of that
// remote, never "the partition is shared" (srp_daemon's gap, anchors.md).
func TestDiscoverChecksSAStatus(t *testing.T) {
	f := sim.New(sim.Config{Seed: 1})
	t.Cleanup(func() { _ = f.Close() })
	ib := func(lid uint16) sim.PortConfig {
		return sim.PortConfig{LinkLayer: verbs.LinkInfiniBand, LID: lid, SMLID: smLID}
	}
	must(t, f.AddDevice("ini", ib(1)))
	must(t, f.AddDevice("tgt", ib(2)))
	l, err := f.Connect(sim.PortRef{Device: "ini", Port: 1}, sim.PortRef{Device: "tgt", Port: 1})
	must(t, err)
	_, err = f.AddSubnetManager(l, sim.SMConfig{LID: smLID, DenyPathRecords: true})
	must(t, err)
	a, err := f.AddDMAgent(sim.PortRef{Device: "tgt", Port: 1}, sim.SRPTController(7, maxReqSize))
	must(t, err)
	got, err := Discover(context.Background(), f, Options{Ports: []PortRef{{"ini", 1}}})
	if len(got) != 0 || !errors.Is(err, mad.ErrStatus) {
		t.Fatalf("Discover = %v, %v; want nothing and a status error", got, err)
	}
	var se *mad.StatusError
	if !errors.As(err, &se) || se.Status != mad.SAStatusDenied {
		t.Fatalf("error %v, want SA status denied", err)
	}
	if a.Queries() != 0 {
		t.Fatalf("%d DM queries sent through a partition the SA never confirmed", a.Queries())
	}
}

// Without the SA's capability-mask match, discovery walks every node.
func TestDiscoverNodeWalk(t *testing.T) {
	f := sim.New(sim.Config{Seed: 1})
	t.Cleanup(func() { _ = f.Close() })
	ib := func(lid uint16, pk ...uint16) sim.PortConfig {
		return sim.PortConfig{LinkLayer: verbs.LinkInfiniBand, LID: lid, SMLID: smLID, PKeys: pk}
	}
	must(t, f.AddDevice("ini", ib(1, 0xffff, 0x8001)))
	must(t, f.AddDevice("t1", ib(2, 0x8001)))
	must(t, f.AddDevice("t2", ib(3)))
	l, err := f.Connect(sim.PortRef{Device: "ini", Port: 1}, sim.PortRef{Device: "t1", Port: 1}, sim.PortRef{Device: "t2", Port: 1})
	must(t, err)
	_, err = f.AddSubnetManager(l, sim.SMConfig{LID: smLID, NoMaskMatch: true})
	must(t, err)
	_, err = f.AddDMAgent(sim.PortRef{Device: "t1", Port: 1}, sim.SRPTController(0x11, maxReqSize))
	must(t, err)
	got, err := Discover(context.Background(), f, Options{Ports: []PortRef{{"ini", 1}}})
	must(t, err)
	if len(got) != 1 || got[0].IDExt != 0x11 || got[0].PKey != 0x8001 || got[0].PKeyIndex != 1 || got[0].DLID != 2 {
		t.Fatalf("got %v", targetStrings(got))
	}
}

// RoCE has no SA: a named RoCE port is an error, an unnamed one is
// skipped, and static targets come through the rules.
func TestDiscoverRoCEStatic(t *testing.T) {
	f := sim.New(sim.Config{Seed: 1})
	t.Cleanup(func() { _ = f.Close() })
	must(t, f.AddDevice("rxe0", sim.PortConfig{}))
	st, err := ParseTarget("id_ext=505400fffe654321,ioc_guid=505400fffe654321,dest=192.168.7.2:5555,service_id=505400fffe654321")
	must(t, err)
	got, err := Discover(context.Background(), f, Options{Static: []Target{st}})
	must(t, err)
	if len(got) != 1 || got[0].String() != "id_ext=505400fffe654321,ioc_guid=505400fffe654321,dest=192.168.7.2:5555,pkey=ffff,service_id=505400fffe654321" {
		t.Fatalf("got %v", targetStrings(got))
	}
	_, err = Discover(context.Background(), f, Options{Ports: []PortRef{{"rxe0", 1}}})
	if !errors.Is(err, ErrNotInfiniBand) || !errors.Is(err, ErrNoPorts) {
		t.Fatalf("named RoCE port: %v", err)
	}
	rules, err := ParseRules(strings.NewReader("d dest=x\n"))
	if err == nil {
		t.Fatalf("rules %v accepted an unknown key", rules)
	}
}

func hex16(v uint64) string {
	const digits = "0123456789abcdef"
	b := make([]byte, 16)
	for i := range b {
		b[15-i] = digits[v>>(4*i)&0xf]
	}
	return string(b)
}
