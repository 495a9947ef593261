package sim_test

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/clock"
	"github.com/srp-mpathd/srp-mpathd/internal/srp/mad"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs/sim"
)

const (
	testSMLID   = 100
	madTimeout  = time.Second
	iniMADLID   = 1
	tgtMADLID   = 2
	tgtService  = 0x1122334455667788
	testMaxReq  = 8276
	mgmtTimeout = 10 * time.Second
)

// madNet is an initiator and a target IB port on one link with an SM, and
// a DM agent on the target port.
type madNet struct {
	clk   *clock.Manual
	f     *sim.Fabric
	sm    *sim.SubnetManager
	agent *sim.DMAgent
	ini   *sim.Device
	mp    verbs.MADPort
}

func newMADNet(t *testing.T, iniPKeys, tgtPKeys []uint16) *madNet {
	t.Helper()
	clk := clock.NewManual(time.Unix(0, 0))
	f := sim.New(sim.Config{Seed: 1, Clock: clk})
	t.Cleanup(func() { _ = f.Close() })
	must(t, f.AddDevice("ini", sim.PortConfig{LinkLayer: verbs.LinkInfiniBand, LID: iniMADLID, SMLID: testSMLID, PKeys: iniPKeys}))
	must(t, f.AddDevice("tgt", sim.PortConfig{LinkLayer: verbs.LinkInfiniBand, LID: tgtMADLID, SMLID: testSMLID, PKeys: tgtPKeys}))
	l, err := f.Connect(sim.PortRef{Device: "ini", Port: 1}, sim.PortRef{Device: "tgt", Port: 1})
	must(t, err)
	sm, err := f.AddSubnetManager(l, sim.SMConfig{LID: testSMLID})
	must(t, err)
	a, err := f.AddDMAgent(sim.PortRef{Device: "tgt", Port: 1}, sim.SRPTController(tgtService, testMaxReq))
	must(t, err)
	ini, err := f.OpenDevice("ini")
	must(t, err)
	mp, err := ini.MAD(1)
	must(t, err)
	return &madNet{clk: clk, f: f, sm: sm, agent: a, ini: ini, mp: mp}
}

func (n *madNet) dm(t *testing.T, pkey uint16, attr mad.AttrID, mod uint32) mad.DMMessage {
	t.Helper()
	req, err := mad.DMRequest(mad.MethodGet, attr, mod, 7, nil)
	must(t, err)
	resp, err := n.mp.Send(context.Background(), req, verbs.MADAddr{LID: tgtMADLID, QPN: sim.GSIQPN, QKey: sim.GSIQKey, PKey: pkey}, madTimeout)
	must(t, err)
	m, err := mad.DecodeDM(resp)
	must(t, err)
	if m.TID != 7 || m.Method != mad.MethodGetResp {
		t.Fatalf("response header %+v", m.Header)
	}
	return m
}

// The DM agent checks what ib_srpt checks.
func TestDMAgentStatus(t *testing.T) {
	n := newMADNet(t, nil, nil)
	for _, tc := range []struct {
		name string
		attr mad.AttrID
		mod  uint32
		want mad.Status
	}{
		{"iou", mad.AttrIOUnitInfo, 0, 0},
		{"profile", mad.AttrIOControllerProfile, 1, 0},
		{"empty slot", mad.AttrIOControllerProfile, 2, mad.DMStatusNoIOC},
		{"slot 0", mad.AttrIOControllerProfile, 0, mad.StatusInvalidField},
		{"entries", mad.AttrServiceEntries, mad.ServiceEntriesMod(1, 0, 0), 0},
		{"entries past end", mad.AttrServiceEntries, mad.ServiceEntriesMod(1, 0, 1), mad.StatusInvalidField},
		{"entries first>last", mad.AttrServiceEntries, mad.ServiceEntriesMod(1, 1, 0), mad.StatusInvalidField},
		{"unknown attr", 0x0099, 0, mad.StatusMethodAttrUnsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if m := n.dm(t, 0xffff, tc.attr, tc.mod); m.Status != tc.want {
				t.Fatalf("status %v, want %v", m.Status, tc.want)
			}
		})
	}
	m := n.dm(t, 0xffff, mad.AttrServiceEntries, mad.ServiceEntriesMod(1, 0, 0))
	es, err := mad.DecodeServiceEntries(m.Data, 1)
	must(t, err)
	if id, ok := es[0].SRPIDExt(); !ok || id != tgtService || es[0].ID != tgtService {
		t.Fatalf("service entry %+v", es[0])
	}
}

// A DM MAD needs a P_Key both ports hold, one side a full member; else it
// times out on the fabric clock. A P_Key not in the local table fails at
// once.
func TestMADPartitions(t *testing.T) {
	n := newMADNet(t, []uint16{0xffff, 0x0002, 0x8003}, []uint16{0x0002, 0x0003})
	to := func(pkey uint16) verbs.MADAddr {
		return verbs.MADAddr{LID: tgtMADLID, QPN: sim.GSIQPN, QKey: sim.GSIQKey, PKey: pkey}
	}
	req, err := mad.DMRequest(mad.MethodGet, mad.AttrIOUnitInfo, 0, 1, nil)
	must(t, err)
	if _, err := n.mp.Send(context.Background(), req, to(0x8009), madTimeout); !errors.Is(err, verbs.ErrNotFound) {
		t.Fatalf("pkey not in the local table: %v", err)
	}
	if _, err := n.mp.Send(context.Background(), req, to(0x8003), madTimeout); err != nil {
		t.Fatalf("full member 0x8003 to limited 0x0003: %v", err)
	}
	done := make(chan error, 1)
	go func() { _, err := n.mp.Send(context.Background(), req, to(0x0002), madTimeout); done <- err }()
	waitTimer(t, n.clk)
	n.clk.Advance(madTimeout)
	select {
	case err := <-done:
		if !errors.Is(err, verbs.ErrTimeout) {
			t.Fatalf("limited to limited: %v, want timeout", err)
		}
	case <-time.After(mgmtTimeout):
		t.Fatal("Send did not time out")
	}
}

// waitTimer waits (real time, bounded) until a goroutine armed a timer on clk.
func waitTimer(t *testing.T, clk *clock.Manual) {
	t.Helper()
	deadline := time.Now().Add(mgmtTimeout)
	for {
		if _, ok := clk.Next(); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no timer armed")
		}
		runtime.Gosched()
	}
}

// The SA keeps subscriptions, sends Reports to them, counts ReportResps,
// and forgets them on reregister or when the MAD port closes.
func TestSATraps(t *testing.T) {
	n := newMADNet(t, nil, nil)
	sa := verbs.MADAddr{LID: testSMLID, QPN: sim.GSIQPN, QKey: sim.GSIQKey, PKey: 0xffff}
	for _, trap := range []uint16{mad.TrapGIDInService, mad.TrapGIDOutOfService} {
		ii := mad.Subscription(trap, true, 0)
		req, err := mad.SARequest(mad.MethodSet, mad.AttrInformInfo, 0, uint64(trap), mad.SubscriptionCompMask(true), &ii)
		must(t, err)
		resp, err := n.mp.Send(context.Background(), req, sa, madTimeout)
		must(t, err)
		if m, err := mad.DecodeSA(resp); err != nil || m.Status != 0 || m.Method != mad.MethodGetResp {
			t.Fatalf("InformInfo Set: %+v %v", m.Header, err)
		}
	}
	if got := len(n.sm.Subscriptions()); got != 2 {
		t.Fatalf("%d subscriptions", got)
	}
	must(t, n.sm.SetInService(sim.PortRef{Device: "tgt", Port: 1}, false))
	ctx, cancel := context.WithTimeout(context.Background(), mgmtTimeout)
	defer cancel()
	b, from, err := n.mp.Recv(ctx)
	must(t, err)
	m, err := mad.DecodeSA(b)
	must(t, err)
	notice, err := mad.DecodeNotice(m.Data)
	must(t, err)
	if m.Method != mad.MethodReport || notice.TrapNum != mad.TrapGIDOutOfService || from.LID != testSMLID {
		t.Fatalf("report %+v notice %+v from %+v", m.Header, notice, from)
	}
	m.Method = mad.MethodReportResp
	if r, err := n.mp.Send(context.Background(), m.Marshal(), from, madTimeout); r != nil || err != nil {
		t.Fatalf("ReportResp: %v %v", r, err)
	}
	if n.sm.ReportResps() != 1 {
		t.Fatalf("ReportResps %d", n.sm.ReportResps())
	}
	// Out of service, the target's agent is unreachable and unlisted.
	req, err := mad.SARequest(mad.MethodGet, mad.AttrNodeRecord, 0, 9, mad.NodeRecCompLID, &mad.NodeRecord{LID: tgtMADLID})
	must(t, err)
	resp, err := n.mp.Send(context.Background(), req, sa, madTimeout)
	must(t, err)
	if m, _ := mad.DecodeSA(resp); m.Status != mad.SAStatusNoRecords {
		t.Fatalf("NodeRecord of an out-of-service port: status %v", m.Status)
	}
	n.sm.Reregister()
	if got := len(n.sm.Subscriptions()); got != 0 {
		t.Fatalf("%d subscriptions after reregister", got)
	}
	ev := <-n.ini.Events()
	for ev.Kind != verbs.EventClientReregister {
		ev = <-n.ini.Events()
	}
	must(t, n.mp.Close())
	if _, _, err := n.mp.Recv(context.Background()); !errors.Is(err, verbs.ErrClosed) {
		t.Fatalf("Recv after Close: %v", err)
	}
}

// SetPKeys rewrites the table and raises EventPKeyChange.
func TestSetPKeys(t *testing.T) {
	n := newMADNet(t, nil, nil)
	must(t, n.f.SetPKeys(sim.PortRef{Device: "ini", Port: 1}, 0x8001, 0xffff))
	if i, err := n.ini.PKeyIndex(1, 0xffff); err != nil || i != 1 {
		t.Fatalf("index %d %v", i, err)
	}
	for ev := range n.ini.Events() {
		if ev.Kind == verbs.EventPKeyChange {
			return
		}
	}
	t.Fatal("no PKeyChange event")
}

// SetPortUp takes one port off the link: PortError on its device, trap 65
// from the SA, its DM agent unreachable; back up, trap 64 and PortActive.
func TestSetPortUp(t *testing.T) {
	n := newMADNet(t, nil, nil)
	sa := verbs.MADAddr{LID: testSMLID, QPN: sim.GSIQPN, QKey: sim.GSIQKey, PKey: 0xffff}
	for _, trap := range []uint16{mad.TrapGIDInService, mad.TrapGIDOutOfService} {
		ii := mad.Subscription(trap, true, 0)
		req, err := mad.SARequest(mad.MethodSet, mad.AttrInformInfo, 0, 1, mad.SubscriptionCompMask(true), &ii)
		must(t, err)
		_, err = n.mp.Send(context.Background(), req, sa, madTimeout)
		must(t, err)
	}
	tdev, err := n.f.OpenDevice("tgt")
	must(t, err)
	ref := sim.PortRef{Device: "tgt", Port: 1}
	for _, up := range []bool{false, true} {
		must(t, n.f.SetPortUp(ref, up))
		ctx, cancel := context.WithTimeout(context.Background(), mgmtTimeout)
		b, _, err := n.mp.Recv(ctx)
		cancel()
		must(t, err)
		m, err := mad.DecodeSA(b)
		must(t, err)
		notice, err := mad.DecodeNotice(m.Data)
		must(t, err)
		want, wantEv := uint16(mad.TrapGIDOutOfService), verbs.EventPortError
		if up {
			want, wantEv = mad.TrapGIDInService, verbs.EventPortActive
		}
		if notice.TrapNum != want {
			t.Fatalf("up=%v: trap %d, want %d", up, notice.TrapNum, want)
		}
		if ev := <-tdev.Events(); ev.Kind != wantEv || ev.Port != 1 {
			t.Fatalf("up=%v: event %+v", up, ev)
		}
		if attr, err := tdev.Port(1); err != nil || (attr.State == verbs.PortActive) != up {
			t.Fatalf("up=%v: port state %v %v", up, attr.State, err)
		}
	}
}
