package srptest_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
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

// TestMain fails the package if a session or accept goroutine outlives
// Target.Close (goroutines of the runtime or the fuzzing engine do not
// count).
func TestMain(m *testing.M) { leakcheck.Main(m) }

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// fabric is an initiator with one port per target port, each on its own
// link (two independent paths, as in the lab).
type fabric struct {
	fab   *sim.Fabric
	ini   *sim.Device
	tgt   *srptest.Target
	links []*sim.Link
	iniIP []netip.Addr
	tgtAP []netip.AddrPort
}

func newFabric(t *testing.T, paths int, cfg srptest.Config) *fabric {
	t.Helper()
	f := &fabric{fab: sim.New(sim.Config{Seed: 2})}
	t.Cleanup(func() { f.fab.Close() })
	var iniPorts []sim.PortConfig
	for i := range paths {
		ip := netip.AddrFrom4([4]byte{198, 18, byte(i + 1), 1})
		f.iniIP = append(f.iniIP, ip)
		iniPorts = append(iniPorts, sim.PortConfig{Addrs: []netip.Addr{ip}})
	}
	must(t, f.fab.AddDevice("ini0", iniPorts...))
	var err error
	f.ini, err = f.fab.OpenDevice("ini0")
	must(t, err)
	f.tgt = srptest.New(cfg)
	t.Cleanup(func() { must(t, f.tgt.Close()) })
	for i := range paths {
		name := fmt.Sprintf("tgt%d", i)
		ip := netip.AddrFrom4([4]byte{198, 18, byte(i + 1), 2})
		must(t, f.fab.AddDevice(name, sim.PortConfig{Addrs: []netip.Addr{ip}}))
		l, err := f.fab.Connect(sim.PortRef{Device: "ini0", Port: uint8(i + 1)}, sim.PortRef{Device: name, Port: 1})
		must(t, err)
		f.links = append(f.links, l)
		dev, err := f.fab.OpenDevice(name)
		must(t, err)
		ap := netip.AddrPortFrom(ip, 5555)
		f.tgtAP = append(f.tgtAP, ap)
		_, err = f.tgt.AddPort(dev, ap)
		must(t, err)
	}
	return f
}

func (f *fabric) dial(t *testing.T, path int) *srp.Channel {
	t.Helper()
	c, err := srp.Dial(context.Background(), f.ini, srp.ChannelParams{
		Src: f.iniIP[path], Dst: f.tgtAP[path], InitiatorExt: 0xfe80000000000000, TargetPortID: f.tgt.PortID(),
		QueueDepth: 8, Immediate: true,
	})
	must(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// initiator issues single commands over a channel with one data buffer.
type initiator struct {
	t   *testing.T
	c   *srp.Channel
	buf verbs.Buffer
}

func newInitiator(t *testing.T, f *fabric, path int) *initiator {
	c := f.dial(t, path)
	b, err := f.ini.AllocBuffer(256<<10, verbs.AccessData)
	must(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return &initiator{t: t, c: c, buf: b}
}

// run executes one command; data-out comes from out, data-in lands in the
// returned slice (n bytes requested).
func (in *initiator) run(lun uint64, cdb scsi.CDB, cdbLen int, out []byte, n int) (srp.Result, []byte) {
	in.t.Helper()
	cmd := srp.Command{ID: 1, LUN: lun, CDB: cdb, CDBLen: cdbLen, Addr: in.buf.Addr(), RKey: in.buf.RKey(), LKey: in.buf.LKey()}
	switch {
	case out != nil:
		copy(in.buf.Bytes(), out)
		cmd.Dir, cmd.Len, cmd.Local = srp.DataOut, uint32(len(out)), in.buf.Bytes()[:len(out)]
	case n > 0:
		clear(in.buf.Bytes()[:n])
		cmd.Dir, cmd.Len = srp.DataIn, uint32(n)
	}
	must(in.t, in.c.Submit(&cmd))
	var res [1]srp.Result
	deadline := time.After(10 * time.Second)
	for in.c.Poll(res[:]) == 0 {
		must(in.t, in.c.ArmNotify())
		if in.c.Poll(res[:]) == 1 {
			break
		}
		select {
		case <-in.c.Ready():
		case <-deadline:
			in.t.Fatal("no response")
		}
	}
	if res[0].Err != nil {
		in.t.Fatalf("transport error: %v", res[0].Err)
	}
	return res[0], in.buf.Bytes()[:n]
}

func (in *initiator) good(lun uint64, cdb scsi.CDB, cdbLen int, out []byte, n int) []byte {
	in.t.Helper()
	r, data := in.run(lun, cdb, cdbLen, out, n)
	if r.Status != 0 {
		in.t.Fatalf("status %#x sense % x", r.Status, r.Sense[:r.SenseLen])
	}
	return data
}

func (in *initiator) sense(lun uint64, cdb scsi.CDB, cdbLen int, out []byte, n int) scsi.Sense {
	in.t.Helper()
	r, _ := in.run(lun, cdb, cdbLen, out, n)
	if r.Status != 0x02 {
		in.t.Fatalf("status %#x, want CHECK CONDITION", r.Status)
	}
	s, err := scsi.ParseSense(r.Sense[:r.SenseLen])
	must(in.t, err)
	return s
}

// TestSCSIEmulation checks the identity, geometry and data commands an
// initiator relies on, against the scsi package's parsers.
func TestSCSIEmulation(t *testing.T) {
	for _, bs := range []int{srptest.BlockSize512, srptest.BlockSize4096} {
		t.Run(fmt.Sprint(bs), func(t *testing.T) {
			f := newFabric(t, 1, srptest.Config{})
			naa := []byte{0x60, 0x01, 0x40, 0x5a, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
			lu, err := f.tgt.AddLU(srptest.LUConfig{LUN: 3, BlockSize: bs, Blocks: 1000, NAA: naa, Serial: "SER123",
				WriteCache: true, ThinProvisioning: true})
			must(t, err)
			_, err = f.tgt.AddLU(srptest.LUConfig{LUN: 0, BlockSize: 512, Blocks: 8})
			must(t, err)
			in := newInitiator(t, f, 0)
			var cdb scsi.CDB

			n := scsi.Inquiry(&cdb, 96)
			inq, err := scsi.ParseInquiry(in.good(3, cdb, n, nil, 96))
			must(t, err)
			if inq.Vendor != "LIO-ORG" || !inq.CmdQue || inq.Qualifier != 0 {
				t.Fatalf("inquiry %+v", inq)
			}
			n = scsi.InquiryVPD(&cdb, scsi.PageUnitSerial, 255)
			serial, err := scsi.ParseUnitSerial(in.good(3, cdb, n, nil, 255))
			must(t, err)
			if serial != "SER123" {
				t.Fatalf("serial %q", serial)
			}
			n = scsi.InquiryVPD(&cdb, scsi.PageDeviceID, 255)
			id, err := scsi.ParseDeviceID(in.good(3, cdb, n, nil, 255))
			must(t, err)
			if len(id.Designators) != 2 || !bytes.Equal(id.Designators[0].ID, naa) || id.Designators[0].Type != scsi.DesignatorType(3) {
				t.Fatalf("device id %+v", id)
			}
			wwid, err := id.WWID()
			must(t, err)
			if got, err := lu.WWID(); err != nil || got != wwid || wwid != "3"+hex.EncodeToString(naa) {
				t.Fatalf("LU.WWID %q (%v), initiator's %q", got, err, wwid)
			}
			n = scsi.InquiryVPD(&cdb, scsi.PageBlockLimits, 255)
			bl, err := scsi.ParseBlockLimits(in.good(3, cdb, n, nil, 255))
			must(t, err)
			if bl.MaxUnmapLBACount == 0 || bl.MaxTransferLength != uint32(srptest.DefaultMaxTransfer/bs) {
				t.Fatalf("block limits %+v", bl)
			}
			n = scsi.InquiryVPD(&cdb, scsi.PageLBProvisioning, 255)
			lbp, err := scsi.ParseLBProvisioning(in.good(3, cdb, n, nil, 255))
			must(t, err)
			if !lbp.LBPU || !lbp.LBPWS {
				t.Fatalf("provisioning %+v", lbp)
			}
			n = scsi.InquiryVPD(&cdb, scsi.PageSupported, 255)
			pages, err := scsi.ParseSupportedPages(in.good(3, cdb, n, nil, 255))
			must(t, err)
			if len(pages) != 5 {
				t.Fatalf("pages %v", pages)
			}
			n = scsi.ReadCapacity16(&cdb, 32)
			capa, err := scsi.ParseReadCapacity16(in.good(3, cdb, n, nil, 32))
			must(t, err)
			if capa.Blocks != 1000 || capa.BlockSize != uint32(bs) || !capa.LBPME {
				t.Fatalf("capacity %+v", capa)
			}
			n = scsi.ReportLUNs(&cdb, scsi.ReportAll, 256)
			luns, err := scsi.ParseReportLUNs(in.good(3, cdb, n, nil, 256))
			must(t, err)
			if len(luns) != 2 {
				t.Fatalf("luns %v", luns)
			}
			n = scsi.ModeSense10(&cdb, 0x08, 0, scsi.PageCurrent, true, 64)
			ms := in.good(3, cdb, n, nil, 64)
			if ms[8] != 0x08 || ms[8+2]&0x04 == 0 {
				t.Fatalf("caching page % x: WCE not set", ms[:28])
			}
			lu.SetWriteCache(false)
			if ms := in.good(3, cdb, n, nil, 64); ms[8+2]&0x04 != 0 {
				t.Fatal("WCE still set")
			}
			n = scsi.TestUnitReady(&cdb)
			in.good(3, cdb, n, nil, 0)

			// Write two blocks, read them back, check the store.
			data := make([]byte, 2*bs)
			for i := range data {
				data[i] = byte(i*7 + 1)
			}
			n = scsi.RW16(&cdb, true, 100, 2, false)
			in.good(3, cdb, n, data, 0)
			n = scsi.RW(&cdb, false, 100, 2, false)
			if got := in.good(3, cdb, n, nil, 2*bs); !bytes.Equal(got, data) {
				t.Fatal("read back differs")
			}
			stored := make([]byte, len(data))
			_, err = lu.ReadAt(stored, 100*int64(bs))
			must(t, err)
			if !bytes.Equal(stored, data) {
				t.Fatal("store differs")
			}
			n = scsi.SyncCache(&cdb, 0, 0, false)
			in.good(3, cdb, n, nil, 0)

			// WRITE SAME replicates one block; with UNMAP it zeroes.
			n = scsi.WriteSame16(&cdb, 200, 3, false)
			in.good(3, cdb, n, data[:bs], 0)
			for b := int64(200); b < 203; b++ {
				_, err = lu.ReadAt(stored[:bs], b*int64(bs))
				must(t, err)
				if !bytes.Equal(stored[:bs], data[:bs]) {
					t.Fatalf("WRITE SAME block %d differs", b)
				}
			}
			n = scsi.WriteSame16(&cdb, 200, 1, true)
			in.good(3, cdb, n, data[:bs], 0)
			_, err = lu.ReadAt(stored[:bs], 200*int64(bs))
			must(t, err)
			if !bytes.Equal(stored[:bs], make([]byte, bs)) {
				t.Fatal("WRITE SAME with UNMAP did not zero")
			}
			// UNMAP the written blocks.
			param := make([]byte, 8+16)
			binary.BigEndian.PutUint16(param[0:], 6+16)
			binary.BigEndian.PutUint16(param[2:], 16)
			binary.BigEndian.PutUint64(param[8:], 100)
			binary.BigEndian.PutUint32(param[16:], 2)
			n = scsi.Unmap(&cdb, uint16(len(param)), false)
			in.good(3, cdb, n, param, 0)
			_, err = lu.ReadAt(stored, 100*int64(bs))
			must(t, err)
			if !bytes.Equal(stored, make([]byte, len(stored))) {
				t.Fatal("UNMAP did not zero")
			}

			// Errors: out of range, unknown opcode, missing LU.
			n = scsi.RW(&cdb, false, 999, 2, false)
			if s := in.sense(3, cdb, n, nil, 2*bs); s.ASC != 0x21 {
				t.Fatalf("out of range: %+v", s)
			}
			cdb = scsi.CDB{0xee}
			if s := in.sense(3, cdb, 6, nil, 0); s.ASC != 0x20 {
				t.Fatalf("bad opcode: %+v", s)
			}
			n = scsi.TestUnitReady(&cdb)
			if s := in.sense(9, cdb, n, nil, 0); s.ASC != 0x25 {
				t.Fatalf("missing LU: %+v", s)
			}
			if st := lu.Stats(); st.Writes != 1 || st.WriteSames != 2 || st.Unmaps != 1 || st.Syncs != 1 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// TestResiduals: a read whose buffer is larger than the transfer reports an
// underflow; a smaller one an overflow.
func TestResiduals(t *testing.T) {
	f := newFabric(t, 1, srptest.Config{})
	_, err := f.tgt.AddLU(srptest.LUConfig{LUN: 1, BlockSize: 512, Blocks: 64})
	must(t, err)
	in := newInitiator(t, f, 0)
	var cdb scsi.CDB
	n := scsi.RW(&cdb, false, 0, 1, false)
	r, _ := in.run(1, cdb, n, nil, 1024)
	if r.Status != 0 || r.Residual != 512 {
		t.Fatalf("underflow: %+v", r)
	}
	r, _ = in.run(1, cdb, n, nil, 256)
	if r.Status != 0 || r.Residual != -256 {
		t.Fatalf("overflow: %+v", r)
	}
}

// TestMultiPort: a target with two ports on two devices serves the same LU
// on both; faults and session kills are per port.
func TestMultiPort(t *testing.T) {
	f := newFabric(t, 2, srptest.Config{})
	lu, err := f.tgt.AddLU(srptest.LUConfig{LUN: 1, BlockSize: 4096, Blocks: 64, Serial: "MP1"})
	must(t, err)
	a := newInitiator(t, f, 0)
	b := newInitiator(t, f, 1)
	if len(f.tgt.Sessions()) != 2 || len(f.tgt.Ports()[1].Sessions()) != 1 {
		t.Fatalf("%d sessions", len(f.tgt.Sessions()))
	}
	// Each path's initiator port id comes from GID 0 of the port it leaves
	// through (found from the source address), so the nexuses differ.
	for i, p := range f.tgt.Ports() {
		gid, err := f.ini.GID(uint8(i+1), 0)
		must(t, err)
		if got := p.Sessions()[0].Info().Initiator.GUID; got != gid.InterfaceID() {
			t.Fatalf("path %d: initiator GUID %#x, want %#x", i, got, gid.InterfaceID())
		}
	}
	data := bytes.Repeat([]byte{0xab}, 4096)
	var cdb scsi.CDB
	n := scsi.RW(&cdb, true, 5, 1, false)
	a.good(1, cdb, n, data, 0)
	n = scsi.RW(&cdb, false, 5, 1, false)
	if got := b.good(1, cdb, n, nil, 4096); !bytes.Equal(got, data) {
		t.Fatal("path B does not see path A's write")
	}
	// A CHECK CONDITION on port 1 only.
	f.tgt.Ports()[1].SetLUFaults(1, srptest.LUFaults{CheckConditions: []srptest.CheckCondition{srptest.NotReadyBecoming}})
	n = scsi.TestUnitReady(&cdb)
	a.good(1, cdb, n, nil, 0)
	if s := b.sense(1, cdb, n, nil, 0); byte(s.Key) != 0x02 {
		t.Fatalf("port 1 sense %+v", s)
	}
	// Killing port 0's sessions leaves port 1's alone.
	if k := f.tgt.Ports()[0].KillSessions(); k != 1 {
		t.Fatalf("killed %d", k)
	}
	<-a.c.Failed()
	b.good(1, cdb, n, nil, 0)
	if b.c.Err() != nil {
		t.Fatal(b.c.Err())
	}
	_ = lu
}
