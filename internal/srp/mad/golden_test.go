package mad

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
)

// readGolden reads testdata/golden/<name>.hex ('#' comments, whitespace
// ignored) and zero-pads it to size bytes (§5 prints only the head of a
// MAD).
func readGolden(t testing.TB, name string, size int) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "golden", name+".hex"))
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for line := range strings.Lines(string(raw)) {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		sb.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(sb.String())
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(b) > size {
		t.Fatalf("%s: %d bytes, more than %d", name, len(b), size)
	}
	return append(b, make([]byte, size-len(b))...)
}

func gid(prefix, guid uint64) verbs.GID {
	var g verbs.GID
	be.PutUint64(g[:8], prefix)
	be.PutUint64(g[8:], guid)
	return g
}

// The §5 vector identities.
const (
	vecLinkLocal = 0xfe80000000000000
	vecTargetID  = 0x505400fffe654321
)

// Vectors 16 and 17: the DM requests srp_daemon sends (srpd.c
// do_port/get_iou_info/get_svc_entries).
func TestGoldenDMRequests(t *testing.T) {
	for _, tc := range []struct {
		name string
		attr AttrID
		mod  uint32
		tid  uint64
	}{
		{"dm_get_iounitinfo", AttrIOUnitInfo, 0, 1},
		{"dm_get_service_entries", AttrServiceEntries, ServiceEntriesMod(1, 0, 0), 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := readGolden(t, tc.name, Size)
			got, err := DMRequest(MethodGet, tc.attr, tc.mod, tc.tid, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("encode:\n got %x\nwant %x", got, want)
			}
			m, err := DecodeDM(want)
			if err != nil {
				t.Fatal(err)
			}
			wantHdr := Header{BaseVersion: 1, Class: ClassDM, ClassVersion: DMClassVersion, Method: MethodGet,
				TID: tc.tid, AttrID: tc.attr, AttrMod: tc.mod}
			if diff := cmp.Diff(wantHdr, m.Header); diff != "" {
				t.Fatalf("decode (-want +got):\n%s", diff)
			}
		})
	}
}

// Vector 18: the InformInfo Set for traps 64 and 65 (srp_handle_traps.c
// register_to_trap; 65 is srp-mpathd's extension).
func TestGoldenInformInfo(t *testing.T) {
	for _, tc := range []struct {
		name string
		trap uint16
	}{{"sa_set_informinfo_64", TrapGIDInService}, {"sa_set_informinfo_65", TrapGIDOutOfService}} {
		t.Run(tc.name, func(t *testing.T) {
			want := readGolden(t, tc.name, Size)
			ii := Subscription(tc.trap, true, 0)
			got, err := SARequest(MethodSet, AttrInformInfo, 0, 0xffff, SubscriptionCompMask(true), &ii)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("encode:\n got %x\nwant %x", got, want)
			}
			m, err := DecodeSA(want)
			if err != nil {
				t.Fatal(err)
			}
			if m.SA.CompMask != 0x10f2 || m.Method != MethodSet || m.AttrID != AttrInformInfo {
				t.Fatalf("header: %+v", m)
			}
			dec, err := DecodeInformInfo(m.Data)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(ii, dec); diff != "" {
				t.Fatalf("decode (-want +got):\n%s", diff)
			}
		})
	}
	if SubscriptionCompMask(false) != 0x11f2 {
		t.Fatalf("unsubscribe mask %#x, srp_daemon uses 0x11f2", SubscriptionCompMask(false))
	}
}

// Vector 19: the Notice of trap 64.
func TestGoldenNotice(t *testing.T) {
	want := readGolden(t, "notice_trap64", NoticeLen)
	n := Notice{IsGeneric: true, Type: NoticeTypeSM, ProducerType: ProducerClassManager, TrapNum: TrapGIDInService,
		IssuerLID: 1, IssuerGID: gid(vecLinkLocal, 0x0002c90300000001)}
	n.SetGID(gid(vecLinkLocal, vecTargetID))
	got := make([]byte, NoticeLen)
	if err := n.Encode(got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("encode:\n got %x\nwant %x", got, want)
	}
	dec, err := DecodeNotice(want)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(n, dec); diff != "" {
		t.Fatalf("decode (-want +got):\n%s", diff)
	}
	if dec.GID() != gid(vecLinkLocal, vecTargetID) {
		t.Fatalf("GID %v", dec.GID())
	}
}

// Vector 20: the IOControllerProfile ib_srpt builds (srpt_get_ioc).
func TestGoldenIOControllerProfile(t *testing.T) {
	want := readGolden(t, "ioc_profile_srpt", IOControllerProfileLen)
	p := IOControllerProfile{GUID: vecTargetID, VendorID: 0x2c9, DeviceID: 0x1003, SubsysVendorID: 0x2c9,
		IOClass: IOClassSRPRev16A, IOSubclass: SRPIOSubclass, Protocol: SRPProtocol, ProtocolVersion: SRPProtocolVersion,
		SendQueueDepth: 128, RDMAReadDepth: 4, SendSize: 8276, RDMASize: 64 << 10, OpCapMask: 0x2b, NumServices: 1,
		ID: "Linux SRP target"}
	got := make([]byte, IOControllerProfileLen)
	if err := p.Encode(got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("encode:\n got %x\nwant %x", got, want)
	}
	dec, err := DecodeIOControllerProfile(want)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(p, dec); diff != "" {
		t.Fatalf("decode (-want +got):\n%s", diff)
	}
}

// Vector 21: ib_srpt's one service entry.
func TestGoldenServiceEntry(t *testing.T) {
	want := readGolden(t, "service_entry_srpt", ServiceEntryLen)
	es := ServiceEntries{{Name: SRPServiceName(vecTargetID), ID: vecTargetID}}
	got := make([]byte, es.Len())
	if err := es.Encode(got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:ServiceEntryLen], want) || !bytes.Equal(got[ServiceEntryLen:], make([]byte, 3*ServiceEntryLen)) {
		t.Fatalf("encode:\n got %x\nwant %x", got, want)
	}
	dec, err := DecodeServiceEntries(want, 1)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(es, dec); diff != "" {
		t.Fatalf("decode (-want +got):\n%s", diff)
	}
	id, ok := dec[0].SRPIDExt()
	if !ok || id != vecTargetID {
		t.Fatalf("id_ext %#x %v", id, ok)
	}
}
