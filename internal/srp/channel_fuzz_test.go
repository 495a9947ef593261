package srp_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/srp-mpathd/srp-mpathd/internal/srp"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs/sim"
)

// rawTarget accepts one login with a fixed SRP_LOGIN_RSP and then sends
// whatever bytes a test wants: a target that can break every rule.
type rawTarget struct {
	conn *sim.Conn
	buf  verbs.Buffer
}

func dialRaw(t testing.TB) (*srp.Channel, *rawTarget) {
	t.Helper()
	fab := sim.New(sim.Config{Seed: 3})
	t.Cleanup(func() { fab.Close() })
	must(t, fab.AddDevice("ini0", sim.PortConfig{Addrs: []netip.Addr{iniAddr}}))
	must(t, fab.AddDevice("tgt0", sim.PortConfig{Addrs: []netip.Addr{tgtAddr}}))
	_, err := fab.Connect(sim.PortRef{Device: "ini0", Port: 1}, sim.PortRef{Device: "tgt0", Port: 1})
	must(t, err)
	ini, err := fab.OpenDevice("ini0")
	must(t, err)
	tdev, err := fab.OpenDevice("tgt0")
	must(t, err)
	l, err := tdev.Listen(tgtPort)
	must(t, err)
	rt := &rawTarget{}
	accepted := make(chan error, 1)
	go func() {
		req := <-l.Requests()
		rsp := srp.LoginRsp{ReqLimDelta: 16, MaxITIULen: 8276, MaxTIIULen: 256, BufFmt: srp.BufFormatDirect}
		var b [srp.LoginRspLen]byte
		n, _ := rsp.Encode(b[:])
		c, err := req.Accept(b[:n], sim.ConnParams{SendDepth: 8, RecvDepth: 64, ResponderRes: 4})
		if err == nil {
			rt.conn = c
		}
		accepted <- err
	}()
	c, err := srp.Dial(context.Background(), ini, srp.ChannelParams{Src: iniAddr, Dst: tgtPort, QueueDepth: 4,
		TargetPortID: srp.TargetPortID{IDExt: 1, IOCGUID: 1}, MaxIU: 256})
	must(t, err)
	must(t, <-accepted)
	t.Cleanup(func() { _ = c.Close() })
	rt.buf, err = tdev.AllocBuffer(4096, verbs.AccessLocalWrite)
	must(t, err)
	return c, rt
}

// send delivers b to the initiator as one SEND (truncated to 256 bytes, the
// initiator's max_ti_iu_len; longer would be a local length error).
func (rt *rawTarget) send(t testing.TB, b []byte) {
	t.Helper()
	n := copy(rt.buf.Bytes(), b[:min(len(b), 256)])
	wr := verbs.SendWR{Op: verbs.OpSend, NumSGE: 1, Signaled: true}
	wr.SGE[0] = verbs.SGE{Addr: rt.buf.Addr(), Length: uint32(n), LKey: rt.buf.LKey()}
	must(t, rt.conn.PostSend(&wr))
}

// FuzzChannelReceive feeds arbitrary IUs to a channel with one command in
// flight: the channel must never panic, and either stay healthy or fail with
// a protocol error (or a target logout), flushing the command.
func FuzzChannelReceive(f *testing.F) {
	tag := srp.Tag(1 << 32) // the first command's tag: slot 0, generation 1
	seed := func(iu srp.IU) {
		b, err := iu.AppendTo(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(&srp.Rsp{ReqLimDelta: 1, Tag: tag})
	seed(&srp.Rsp{ReqLimDelta: 1, Tag: tag, Flags: srp.SnsValid, Status: 2, Sense: make([]byte, 18)})
	seed(&srp.Rsp{ReqLimDelta: 1, Tag: tag, Flags: srp.DataInUnder, DataInResid: 512})
	seed(&srp.Rsp{ReqLimDelta: 1, Tag: tag + 1})
	seed(&srp.Rsp{ReqLimDelta: 1, Tag: srp.TagTskMgmt})
	seed(&srp.CredReq{ReqLimDelta: 3, Tag: 9})
	seed(&srp.AerReq{ReqLimDelta: 1, Tag: 9, Sense: make([]byte, 18)})
	seed(&srp.TLogout{Tag: 9})
	f.Add([]byte{})
	f.Add([]byte{0xc1})
	f.Add([]byte{0xff, 0, 0, 0})
	f.Fuzz(func(t *testing.T, iu []byte) {
		c, rt := dialRaw(t)
		must(t, c.Submit(tur(1)))
		rt.send(t, iu)
		var out [4]srp.Result
		n := c.Poll(out[:])
		err := c.Err()
		switch {
		case err == nil:
			if n > 1 {
				t.Fatalf("%d results for one command", n)
			}
		case errors.Is(err, srp.ErrProtocol), errors.Is(err, srp.ErrTargetLogout):
			if n != 1 || (!errors.Is(out[0].Err, srp.ErrFlushed) && !errors.Is(out[0].Err, srp.ErrProtocol)) {
				t.Fatalf("after %v: %d results %+v", err, n, out[:n])
			}
		default:
			var ce *srp.CompletionError
			if !errors.As(err, &ce) { // an empty SEND is fine, a length error is the sim's
				t.Fatalf("unexpected channel error %v", err)
			}
		}
		if c.Outstanding() < 0 {
			t.Fatal("negative outstanding count")
		}
	})
}
