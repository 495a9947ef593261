//go:build lab

package srplab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/srp"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs/rdma"
)

const (
	xExt        = 0x5352504d50415448 // srp-mpathd's initiator_ext in the e2e scenarios
	xDialWait   = 10 * time.Second   // the e2e scenarios' login timeout
	xAckTimeout = 15
	xRetry      = 3
)

func xParams(l *Lab, p *Path) srp.ChannelParams {
	return srp.ChannelParams{
		Src: p.IniAddr, Dst: p.Dest(l.Port), InitiatorExt: xExt, TargetPortID: l.TargetPortID(),
		QueueDepth: 4, Immediate: true, AckTimeout: xAckTimeout, RetryCount: xRetry,
	}
}

// xDiag logs the network and RDMA state of path p: routes, neighbours, CM
// ids, QPs (the GSI QP's state), GIDs, rxe and veth counters.
func xDiag(t *testing.T, p *Path, label string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "==== %s\n", label)
	for _, c := range [][]string{
		{"ip", "route", "get", p.TgtAddr.String(), "from", p.IniAddr.String()},
		{"ip", "route", "get", p.IniAddr.String(), "from", p.TgtAddr.String()},
		{"ip", "route", "show", "table", "all", "dev", p.IniNet},
		{"ip", "route", "show", "table", "all", "dev", p.TgtNet},
		{"ip", "-s", "neigh", "show"},
		{"ip", "-br", "addr"},
		{"rdma", "res", "show", "cm_id"},
		{"rdma", "res", "show", "qp"},
	} {
		out, err := run(c[0], c[1:]...)
		fmt.Fprintf(&b, "$ %s\n%s", strings.Join(c, " "), out)
		if err != nil {
			fmt.Fprintf(&b, "(%v)\n", err)
		}
	}
	for _, d := range []string{p.IniDev, p.TgtDev} {
		base := filepath.Join("/sys/class/infiniband", d, "ports/1")
		st, _ := readTrim(filepath.Join(base, "state"))
		fmt.Fprintf(&b, "%s: %s\n", d, st)
		for i := range 8 {
			g, err := readTrim(filepath.Join(base, "gids", fmt.Sprint(i)))
			if err != nil || strings.Trim(g, "0:") == "" {
				continue
			}
			nd, _ := readTrim(filepath.Join(base, "gid_attrs/ndevs", fmt.Sprint(i)))
			ty, _ := readTrim(filepath.Join(base, "gid_attrs/types", fmt.Sprint(i)))
			fmt.Fprintf(&b, "  gid %d %s %s %s\n", i, g, nd, ty)
		}
		ents, _ := os.ReadDir(filepath.Join(base, "hw_counters"))
		var cs []string
		for _, e := range ents {
			v, _ := readTrim(filepath.Join(base, "hw_counters", e.Name()))
			if v != "0" {
				cs = append(cs, e.Name()+"="+v)
			}
		}
		fmt.Fprintf(&b, "  counters: %s\n", strings.Join(cs, " "))
	}
	for _, n := range []string{p.IniNet, p.TgtNet} {
		var cs []string
		for _, k := range []string{"rx_packets", "tx_packets", "rx_dropped", "tx_dropped", "tx_errors"} {
			v, _ := readTrim(filepath.Join("/sys/class/net", n, "statistics", k))
			cs = append(cs, k+"="+v)
		}
		fmt.Fprintf(&b, "%s: %s\n", n, strings.Join(cs, " "))
	}
	out, _ := run("nstat", "-az", "UdpInDatagrams", "UdpNoPorts", "UdpInErrors", "UdpOutDatagrams", "IpOutNoRoutes", "IpInAddrErrors", "IpExtInNoRoutes")
	b.WriteString(out)
	t.Log(b.String())
}

func xDial(t *testing.T, dev verbs.Device, l *Lab, p *Path, label string, wait time.Duration) (*srp.Channel, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	start := time.Now()
	c, err := srp.Dial(ctx, dev, xParams(l, p))
	t.Logf("%s: dial after %v: %v", label, time.Since(start).Round(time.Millisecond), err)
	return c, err
}

// xWaitFail posts heartbeats until the channel fails (20 s at most).
func xWaitFail(t *testing.T, c *srp.Channel) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-c.Failed():
			t.Logf("channel failed: %v", c.Err())
			return
		default:
		}
		_, _ = c.Heartbeat()
		var r [4]srp.Result
		c.Poll(r[:])
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("channel did not fail")
}

// xSetup builds a one-path lab and opens the initiator-side device. The
// lab's network is left to the VM's power-off: this process keeps uverbs
// contexts (librdmacm's device list), and rxe cannot disassociate them, so
// removing the rxe devices would block.
func xSetup(t *testing.T) (*Lab, *Path, *rdma.Device) {
	l := Setup(t, Options{Paths: 1, InitiatorExts: []uint64{0, xExt}})
	l.kernelUsed = true
	// rxe's debug messages name the QP that failed and why ("prepare4:
	// Host not reachable"); best effort.
	_ = writeFile("/sys/kernel/debug/dynamic_debug/control", "module rdma_rxe +p")
	p := &l.Paths[0]
	f, err := rdma.Open(nil)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := f.OpenDevice(p.IniDev)
	if err != nil {
		t.Fatal(err)
	}
	return l, p, dev
}

// TestLabLinkFlapRelogin: 20 link flaps of one path, back to back. Each
// time the channel fails, is closed while the link is down (the DREQ that
// would kill rxe's GSI QP: see Lab.LinkDown), a login is tried during the
// outage (refused: no route), the link comes back and a login must
// succeed. Run by hand like TestLabTwoTargets (-test.run Relogin).
func TestLabLinkFlapRelogin(t *testing.T) {
	l, p, dev := xSetup(t)
	c, err := xDial(t, dev, l, p, "first login", xDialWait)
	if err != nil {
		t.Fatal(err)
	}
	var worst time.Duration
	for i := range 20 {
		_ = Mark(fmt.Sprintf("x flap %d down", i))
		if err := l.LinkDown(0); err != nil {
			t.Fatal(err)
		}
		xWaitFail(t, c)
		c.Close()
		_, _ = xDial(t, dev, l, p, fmt.Sprintf("flap %d: during down", i), 2*time.Second)
		_ = Mark(fmt.Sprintf("x flap %d up", i))
		up := time.Now()
		if err := l.LinkUp(0); err != nil {
			t.Fatal(err)
		}
		for try := 0; ; try++ {
			c, err = xDial(t, dev, l, p, fmt.Sprintf("flap %d: after up, try %d", i, try), xDialWait)
			if err == nil || try == 2 {
				break
			}
		}
		if err != nil {
			xDiag(t, p, "failed")
			t.Fatalf("flap %d: no login: %v\n%s", i, err, KernelLog(fmt.Sprintf("x flap %d down", i)))
		}
		took := time.Since(up)
		worst = max(worst, took)
		t.Logf("flap %d: logged in %v after link up", i, took.Round(time.Millisecond))
	}
	c.Close()
	t.Logf("20 flaps, worst re-login %v", worst)
}

// TestLabBlackholeRelogin: a busy channel when the blackhole starts (its
// QP fails), a login that starts during the blackhole and spans its end
// (it must succeed once the CM's REQ retry gets through), then a fresh
// login.
func TestLabBlackholeRelogin(t *testing.T) {
	l, p, dev := xSetup(t)
	c, err := xDial(t, dev, l, p, "first login", xDialWait)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // keep the channel busy until it fails
		defer close(done)
		var r [8]srp.Result
		for {
			select {
			case <-stop:
				return
			case <-c.Failed():
				return
			default:
			}
			_, _ = c.Heartbeat()
			c.Poll(r[:])
			time.Sleep(5 * time.Millisecond)
		}
	}()
	time.Sleep(time.Second)
	_ = Mark("x blackhole")
	if err := l.Blackhole(0, true); err != nil {
		t.Fatal(err)
	}
	<-done
	t.Logf("channel: %v", c.Err())
	_ = Mark("x close")
	c.Close()
	xDiag(t, p, "blackhole, channel closed")
	go func() {
		time.Sleep(2 * time.Second)
		_ = Mark("x blackhole off")
		if err := l.Blackhole(0, false); err != nil {
			t.Error(err)
		}
		close(stop)
	}()
	_ = Mark("x dial spanning")
	c2, err := xDial(t, dev, l, p, "dial spanning the end of the blackhole", xDialWait)
	if err == nil {
		c2.Close()
	}
	<-stop
	xDiag(t, p, "after the spanning dial")
	for i := range 2 {
		_ = Mark(fmt.Sprintf("x dial %d", i))
		c2, err = xDial(t, dev, l, p, fmt.Sprintf("after blackhole, try %d", i), xDialWait)
		if err == nil {
			c2.Close()
			break
		}
		xDiag(t, p, fmt.Sprintf("after dial try %d", i))
	}
	t.Logf("kernel log:\n%s", KernelLog("x blackhole"))
	if err != nil {
		t.Errorf("no login after the blackhole: %v", err)
	}
}
