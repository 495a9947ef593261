package srp_test

import (
	"context"
	"errors"
	"testing"

	"github.com/srp-mpathd/srp-mpathd/internal/srp"
	"github.com/srp-mpathd/srp-mpathd/internal/srp/srptest"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
)

// TestLoginRejects checks every reject reason ib_srpt can produce, in the
// order of its checks (research §2.2), plus forced reasons it never sends.
func TestLoginRejects(t *testing.T) {
	tests := []struct {
		name  string
		setup func(e *env, p *srp.ChannelParams)
		want  srp.RejReason
	}{
		{"it_iu_len too large", func(e *env, p *srp.ChannelParams) { p.Immediate = false; p.MaxIU = srptest.DefaultMaxReqSize + 1 }, srp.RejReqITIULengthTooLarge},
		{"port disabled", func(e *env, p *srp.ChannelParams) { e.port.SetEnabled(false) }, srp.RejInsufficientResources},
		// The IU length check comes before the port check in ib_srpt.
		{"length before port", func(e *env, p *srp.ChannelParams) {
			e.port.SetEnabled(false)
			p.Immediate = false
			p.MaxIU = srptest.DefaultMaxReqSize + 1
		}, srp.RejReqITIULengthTooLarge},
		{"wrong target port id", func(e *env, p *srp.ChannelParams) { p.TargetPortID.IOCGUID++ }, srp.RejUnableAssociateChannel},
		{"wrong id_ext", func(e *env, p *srp.ChannelParams) { p.TargetPortID.IDExt++ }, srp.RejUnableAssociateChannel},
		{"no ACL", func(e *env, p *srp.ChannelParams) {
			e.tgt.SetACL([]srp.InitiatorPortID{{Ext: 1, GUID: 2}})
		}, srp.RejChannelLimitReached},
		{"forced unable to establish", func(e *env, p *srp.ChannelParams) { e.port.RejectLogins(srp.RejUnableEstablishChannel) }, srp.RejUnableEstablishChannel},
		{"forced descriptor format", func(e *env, p *srp.ChannelParams) { e.port.RejectLogins(srp.RejUnsupportedDescriptorFmt) }, srp.RejUnsupportedDescriptorFmt},
		{"forced multichannel", func(e *env, p *srp.ChannelParams) { e.port.RejectLogins(srp.RejMultiChannelUnsupported) }, srp.RejMultiChannelUnsupported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			p := e.params()
			tc.setup(e, &p)
			c, err := srp.Dial(context.Background(), e.ini, p)
			if err == nil {
				c.Close()
				t.Fatal("login succeeded")
			}
			var le *srp.LoginError
			if !errors.As(err, &le) || le.Reason != tc.want || !errors.Is(err, srp.ErrLoginRejected) {
				t.Fatalf("err %v, want a LoginError with reason %v", err, tc.want)
			}
			if got := e.port.Stats().Rejected[tc.want]; got != 1 {
				t.Fatalf("target counted %d rejects of %v", got, tc.want)
			}
		})
	}
}

// TestLoginACLAllows checks that an initiator on the ACL gets in.
func TestLoginACLAllows(t *testing.T) {
	e := newEnv(t)
	p := e.params()
	p.InitiatorPortGUID = 0x1234
	e.tgt.SetACL([]srp.InitiatorPortID{{Ext: p.InitiatorExt, GUID: 0x1234}})
	c := e.dial(t, p)
	if got := e.tgt.Sessions()[0].Info().Initiator; got != (srp.InitiatorPortID{Ext: p.InitiatorExt, GUID: 0x1234}) {
		t.Fatalf("target saw initiator %v", got)
	}
	_ = c
}

// TestLoginDefaultPortGUID checks the initiator port id defaults to the
// interface id of GID 0 (ib_srp).
func TestLoginDefaultPortGUID(t *testing.T) {
	e := newEnv(t)
	e.dial(t, e.params())
	gid, err := e.ini.GID(1, 0)
	must(t, err)
	if got := e.tgt.Sessions()[0].Info().Initiator.GUID; got != gid.InterfaceID() {
		t.Fatalf("initiator GUID %#x, want %#x", got, gid.InterfaceID())
	}
}

// TestLoginRetryWithoutImmediate: an old ib_srpt (srp_max_req_size 4148)
// refuses the 8260-byte request of an immediate-data login with 0x10002;
// the channel retries once without immediate data (research §2.2).
func TestLoginRetryWithoutImmediate(t *testing.T) {
	e := newEnv(t, func(c *srptest.Config, _ *srptest.LUConfig) { c.MaxReqSize = srptest.OldMaxReqSize })
	c := e.dial(t, e.params())
	info := c.Info()
	if info.Immediate || info.MaxITIU != srp.NoImmITIULen {
		t.Fatalf("info %+v, want no immediate data and max_it_iu_len %d", info, srp.NoImmITIULen)
	}
	st := e.port.Stats()
	if st.Rejected[srp.RejReqITIULengthTooLarge] != 1 || st.Accepted != 1 {
		t.Fatalf("port stats %+v", st)
	}
	// Writes still work, through RDMA READ.
	d := newDataBuf(t, e.ini, 1, 4096)
	pattern(d.bytes(0), 3)
	var cmd srp.Command
	d.rw(&cmd, 0, true, 0, 8, 512)
	if r := do(t, c, &cmd); r.Err != nil || r.Status != 0 {
		t.Fatalf("write %+v", r)
	}
	checkLU(t, e.lu, 0, d.bytes(0))
}

// TestLoginITIUMin: req_it_iu_len = min(wanted, target's max).
func TestLoginITIUMin(t *testing.T) {
	e := newEnv(t)
	p := e.params()
	p.MaxIU = 4096
	c := e.dial(t, p)
	if got := c.Info().MaxITIU; got != 4096 {
		t.Fatalf("max_it_iu_len %d, want 4096", got)
	}
	p.MaxIU = 8000
	p.TargetMaxIU = 2048
	p.MultiChannel = true
	c2 := e.dial(t, p)
	if got := c2.Info().MaxITIU; got != 2048 {
		t.Fatalf("max_it_iu_len %d, want 2048", got)
	}
}

// TestLoginImmediateNotWithSRQ: ib_srpt grants immediate data only without
// an SRQ.
func TestLoginImmediateNotWithSRQ(t *testing.T) {
	e := newEnv(t, func(c *srptest.Config, _ *srptest.LUConfig) { c.UseSRQ = true })
	c := e.dial(t, e.params())
	if c.Info().Immediate {
		t.Fatal("immediate data granted by an SRQ target")
	}
	d := newDataBuf(t, e.ini, 1, 4096)
	var cmd srp.Command
	d.rw(&cmd, 0, true, 0, 8, 512)
	if r := do(t, c, &cmd); r.Err != nil || r.Status != 0 {
		t.Fatalf("write %+v", r)
	}
}

// TestLoginCMReject: a CM reject without an SRP_LOGIN_REJ surfaces as the
// provider's RejectError; nothing listening as ErrConnRefused.
func TestLoginCMReject(t *testing.T) {
	e := newEnv(t)
	e.port.CMRejectLogins(1)
	_, err := srp.Dial(context.Background(), e.ini, e.params())
	var rej *verbs.RejectError
	if !errors.As(err, &rej) || rej.Reason != verbs.CMRejectConsumer {
		t.Fatalf("err %v, want a CM RejectError", err)
	}
	var le *srp.LoginError
	if errors.As(err, &le) {
		t.Fatalf("CM reject reported as login reject: %v", err)
	}
	p := e.params()
	p.Dst = netipPort(tgtAddr, 6666)
	if _, err := srp.Dial(context.Background(), e.ini, p); !errors.Is(err, verbs.ErrConnRefused) {
		t.Fatalf("err %v, want ErrConnRefused", err)
	}
}

// TestLoginBadParams: invalid parameters fail before anything is sent.
func TestLoginBadParams(t *testing.T) {
	e := newEnv(t)
	for _, mod := range []func(*srp.ChannelParams){
		func(p *srp.ChannelParams) { p.Src = netipAddr() },
		func(p *srp.ChannelParams) { p.MaxIU = 63 },
		func(p *srp.ChannelParams) { p.QueueDepth = -1 },
	} {
		p := e.params()
		mod(&p)
		if _, err := srp.Dial(context.Background(), e.ini, p); !errors.Is(err, srp.ErrBadParams) {
			t.Fatalf("err %v, want ErrBadParams", err)
		}
	}
	if n := e.port.Stats().Accepted + e.port.Stats().CMRejects; n != 0 {
		t.Fatalf("%d logins reached the target", n)
	}
}

// TestLoginSingleKicksNexus: a SINGLE login terminates the other channels
// of the same I_T nexus (the old one sees a DREQ); MULTI maintains them.
func TestLoginSingleKicksNexus(t *testing.T) {
	e := newEnv(t)
	p := e.params()
	c1 := e.dial(t, p)
	c2 := e.dial(t, p)
	<-c1.Failed()
	if !errors.Is(c1.Err(), srp.ErrDisconnected) {
		t.Fatalf("first channel: %v, want ErrDisconnected", c1.Err())
	}
	if got := c2.Info().MultiChan; got != srp.MultiChanTerminated {
		t.Fatalf("second login multichan %v, want TERMINATED", got)
	}
	p.MultiChannel = true
	c3 := e.dial(t, p)
	if got := c3.Info().MultiChan; got != srp.MultiChanMaintained {
		t.Fatalf("MULTI login multichan %v, want MAINTAINED", got)
	}
	if c2.Err() != nil {
		t.Fatalf("MULTI login killed the other channel: %v", c2.Err())
	}
	// A different initiator extension is a different nexus.
	p.MultiChannel = false
	p.InitiatorExt++
	c4 := e.dial(t, p)
	if got := c4.Info().MultiChan; got != srp.MultiChanNoChannel || c2.Err() != nil {
		t.Fatalf("other nexus: multichan %v, c2 err %v", got, c2.Err())
	}
}
