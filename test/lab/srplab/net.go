package srplab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Network layout. Path i: initiator side vethI<i> 198.18.<i>.1 (rxe_i<i>)
// <-> target side vethT<i> 198.18.<i>.2 (rxe_t<i>). 198.18.0.0/15 is the
// RFC 2544 benchmarking range and the VM has no NIC, so nothing leaves it.
//
// Everything goes through netlink, not ip/rdma/tc: under TCG every exec of
// a tool off the 9p root costs a large fraction of a second.
const (
	subnetA, subnetB = 198, 18
	iniHost, tgtHost = 1, 2
	prefixLen        = 24
	// Route tables and rule preferences: path i uses routeTableBase+2i
	// (initiator address) and routeTableBase+2i+1 (target address).
	routeTableBase = 100
	// localRulePref is where the "lookup local" rule moves to, behind the
	// per-address rules.
	localRulePref = 1000
	localTable    = 255 // RT_TABLE_LOCAL
	maxPaths      = 100 // keeps tables below localRulePref and 198.18.i valid
	rxeType       = "rxe"
	// blackholeHandle and blackholePrio name Blackhole's filter.
	blackholeHandle = 0xb1ac
	blackholePrio   = 1
)

func newPath(i, target int) Path {
	return Path{
		Index: i, Target: target,
		IniNet: fmt.Sprintf("vethI%d", i), TgtNet: fmt.Sprintf("vethT%d", i),
		IniDev: fmt.Sprintf("rxe_i%d", i), TgtDev: fmt.Sprintf("rxe_t%d", i),
		IniAddr: netip.AddrFrom4([4]byte{subnetA, subnetB, byte(i), iniHost}),
		TgtAddr: netip.AddrFrom4([4]byte{subnetA, subnetB, byte(i), tgtHost}),
	}
}

func (p *Path) iniTable() int  { return routeTableBase + 2*p.Index }
func (p *Path) tgtTable() int  { return routeTableBase + 2*p.Index + 1 }
func (p *Path) subnet() string { return netip.PrefixFrom(p.IniAddr, prefixLen).Masked().String() }

func ipNet(a netip.Addr, bits int) *net.IPNet {
	return &net.IPNet{IP: net.IP(a.AsSlice()), Mask: net.CIDRMask(bits, a.BitLen())}
}

func nlErr(op, what string, err error) error {
	if err == nil {
		return nil
	}
	return &OpError{Op: op, Path: what, Err: err}
}

// routes (re)installs the path's policy routes: a link going down flushes
// them.
func (p *Path) routes() error {
	subnet := ipNet(netip.PrefixFrom(p.IniAddr, prefixLen).Masked().Addr(), prefixLen)
	for _, r := range []struct {
		dev   string
		src   netip.Addr
		table int
	}{{p.IniNet, p.IniAddr, p.iniTable()}, {p.TgtNet, p.TgtAddr, p.tgtTable()}} {
		link, err := netlink.LinkByName(r.dev)
		if err != nil {
			return nlErr("link", r.dev, err)
		}
		route := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: subnet, Src: net.IP(r.src.AsSlice()),
			Table: r.table, Scope: netlink.SCOPE_LINK}
		if err := netlink.RouteReplace(route); err != nil {
			return nlErr("route replace", fmt.Sprintf("%s dev %s table %d", p.subnet(), r.dev, r.table), err)
		}
	}
	return nil
}

// sysctl writes one /proc/sys/net/ipv4/conf/<dev>/<key>.
func sysctl(dev, key, value string) error {
	return writeFile(filepath.Join("/proc/sys/net/ipv4/conf", dev, key), value)
}

func rule(pref int, src netip.Addr, table int) *netlink.Rule {
	r := netlink.NewRule()
	r.Priority = pref
	r.Table = table
	if src.IsValid() {
		r.Src = ipNet(src, src.BitLen())
		r.IifName = "lo"
	}
	return r
}

// moveLocalRule puts "lookup local" behind the per-address rules (once per
// kernel: another lab in the same VM may have done it).
func moveLocalRule() error {
	rules, err := netlink.RuleList(netlink.FAMILY_V4)
	if err != nil {
		return nlErr("rule list", "ipv4", err)
	}
	for _, r := range rules {
		if r.Priority == localRulePref && r.Table == localTable {
			return nil
		}
	}
	if err := netlink.RuleAdd(rule(localRulePref, netip.Addr{}, localTable)); err != nil {
		return nlErr("rule add", "local", err)
	}
	return nlErr("rule del", "pref 0 local", netlink.RuleDel(rule(0, netip.Addr{}, localTable)))
}

// setupNet creates every path. Initiator and target share init_net (rxe and
// the SRP ULPs work only there), where the kernel would deliver 198.18.i.1
// -> 198.18.i.2 over lo and rxe would short-cut it: with the local rule
// moved behind per-address rules, locally generated traffic from each
// address leaves through its own veth, and accept_local/rp_filter=0 let the
// peer accept it.
func (l *Lab) setupNet() error {
	if len(l.Paths) > maxPaths {
		return fmt.Errorf("srplab: %d paths, at most %d", len(l.Paths), maxPaths)
	}
	for _, dev := range []string{"all", "default"} {
		if err := errors.Join(sysctl(dev, "rp_filter", "0"), sysctl(dev, "accept_local", "1")); err != nil {
			return err
		}
	}
	if err := moveLocalRule(); err != nil {
		return err
	}
	for i := range l.Paths {
		if err := l.Paths[i].create(); err != nil {
			return err
		}
	}
	for i := range l.Paths {
		p := &l.Paths[i]
		for _, d := range []string{p.IniDev, p.TgtDev} {
			if err := waitFor(d+" port 1 ACTIVE", portActiveWait, func() bool { return portActive(d) }); err != nil {
				return err
			}
		}
		var err error
		if p.IniGID, err = readGID(p.IniDev); err != nil {
			return err
		}
		if p.TgtGID, err = readGID(p.TgtDev); err != nil {
			return err
		}
		p.TPort = fmt.Sprintf("0x%x", p.TgtGID[:])
	}
	return nil
}

// create makes the path's veth pair, addresses, rules, routes, the clsact
// qdiscs of Blackhole and rxe devices.
func (p *Path) create() error {
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: p.IniNet}, PeerName: p.TgtNet}
	if err := netlink.LinkAdd(veth); err != nil {
		return nlErr("veth add", p.IniNet, err)
	}
	for _, end := range []struct {
		dev   string
		addr  netip.Addr
		table int
	}{{p.IniNet, p.IniAddr, p.iniTable()}, {p.TgtNet, p.TgtAddr, p.tgtTable()}} {
		if err := errors.Join(sysctl(end.dev, "rp_filter", "0"), sysctl(end.dev, "accept_local", "1")); err != nil {
			return err
		}
		link, err := netlink.LinkByName(end.dev)
		if err != nil {
			return nlErr("link", end.dev, err)
		}
		if err := netlink.AddrAdd(link, &netlink.Addr{IPNet: ipNet(end.addr, prefixLen)}); err != nil {
			return nlErr("addr add", end.dev, err)
		}
		if err := netlink.LinkSetUp(link); err != nil {
			return nlErr("link up", end.dev, err)
		}
		if err := netlink.RuleAdd(rule(end.table, end.addr, end.table)); err != nil {
			return nlErr("rule add", fmt.Sprintf("from %v lookup %d", end.addr, end.table), err)
		}
	}
	if err := p.routes(); err != nil {
		return err
	}
	// The clsact qdisc Blackhole hangs its filter on, installed before any
	// traffic flows (see Blackhole).
	for _, dev := range []string{p.IniNet, p.TgtNet} {
		link, err := netlink.LinkByName(dev)
		if err != nil {
			return nlErr("link", dev, err)
		}
		q := &netlink.Clsact{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: link.Attrs().Index, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT}}
		if err := netlink.QdiscAdd(q); err != nil {
			return nlErr("qdisc add clsact", dev, err)
		}
	}
	for _, d := range [][2]string{{p.IniDev, p.IniNet}, {p.TgtDev, p.TgtNet}} {
		if err := netlink.RdmaLinkAdd(d[0], rxeType, d[1]); err != nil {
			return nlErr("rdma link add", d[0]+" netdev "+d[1], err)
		}
	}
	return nil
}

// teardownNet removes rxe devices, veth pairs (the peer goes with its twin)
// and rules; best effort, what fails is logged. After KernelLogin it leaves
// the network alone: removing an rxe device that ib_srp used blocks in the
// kernel until ib_srp lets go of it, and after a link-down its reconnect
// work can hang forever (seen on 6.12: RDMA_NLDEV_CMD_DELLINK stuck in D
// state, the test binary with it). The kernel stack runs in a VM of its own,
// which powers off after the test.
func (l *Lab) teardownNet() {
	if l.kernelUsed {
		l.t.Logf("srplab teardown: leaving the rxe devices and veth pairs to the VM's power-off (ib_srp used them)")
		return
	}
	for i := range l.Paths {
		p := &l.Paths[i]
		errs := []error{
			nlErr("rdma link del", p.IniDev, netlink.RdmaLinkDel(p.IniDev)),
			nlErr("rdma link del", p.TgtDev, netlink.RdmaLinkDel(p.TgtDev)),
		}
		if link, err := netlink.LinkByName(p.IniNet); err == nil {
			errs = append(errs, nlErr("link del", p.IniNet, netlink.LinkDel(link)))
		}
		errs = append(errs,
			nlErr("rule del", p.IniNet, netlink.RuleDel(rule(p.iniTable(), p.IniAddr, p.iniTable()))),
			nlErr("rule del", p.TgtNet, netlink.RuleDel(rule(p.tgtTable(), p.TgtAddr, p.tgtTable()))))
		if err := errors.Join(errs...); err != nil {
			l.t.Logf("srplab teardown: %v", err)
		}
	}
}

func (l *Lab) setLink(i int, up bool) error {
	p, err := l.path(i)
	if err != nil {
		return err
	}
	link, err := netlink.LinkByName(p.IniNet)
	if err != nil {
		return nlErr("link", p.IniNet, err)
	}
	if up {
		return nlErr("link up", p.IniNet, netlink.LinkSetUp(link))
	}
	return nlErr("link down", p.IniNet, netlink.LinkSetDown(link))
}

// LinkDown sets the initiator-side veth of path i down: both rxe ports of
// the path go DOWN (port error events), routes of the path are flushed.
// Every route lookup through the initiator-side netdev then fails, and rxe
// moves a QP whose packet finds no route to ERR: for an RC QP that is the
// expected flush, for the device's GSI QP (QP1) it is fatal. So a CM
// message sent on rxe_i<i> during the outage (a DREQ when a connection is
// closed, a REJ when a connect is abandoned) leaves that device unable to
// send CM messages for good, and no later login on it succeeds (6.12:
// `rdma res show qp` lists the GSI QP in ERR; the kernel's ib_srp does
// this, srp-mpathd defers its CM messages while the port is down).
func (l *Lab) LinkDown(i int) error { return l.setLink(i, false) }

// LinkUp undoes LinkDown: link up, both rxe ports ACTIVE again, routes back.
func (l *Lab) LinkUp(i int) error {
	if err := l.setLink(i, true); err != nil {
		return err
	}
	p := &l.Paths[i]
	for _, d := range []string{p.IniDev, p.TgtDev} {
		if err := waitFor(d+" port 1 ACTIVE", portActiveWait, func() bool { return portActive(d) }); err != nil {
			return err
		}
	}
	return p.routes()
}

// Blackhole drops every packet of path i in both directions (on = true) or
// stops doing so: a matchall filter with a drop action on the ingress of
// both veths (the clsact qdisc create installed), added or deleted. Silent:
// no link or port event, the ports stay ACTIVE, and the sender's transmit
// succeeds (the packet dies on the receiving side); only timeouts can tell.
//
// Why ingress filters and not a qdisc: grafting a root qdisc deactivates
// the device for a moment, a packet rxe sends then is refused, and rxe
// moves the sending QP to ERR (seen: a flush 23 ms after a netem blackhole
// began; for the GSI QP, QP1, it is fatal: no login on that device
// succeeds again); and a root netem qdisc left in place for the whole run
// slowed the kernel stack's ib_srp to a few dozen IOPS with its QPs failing
// under load, while the root qdisc of a veth is normally noqueue. Filters
// change no qdisc, and the egress path stays as in production.
func (l *Lab) Blackhole(i int, on bool) error {
	p, err := l.path(i)
	if err != nil {
		return err
	}
	var errs []error
	for _, dev := range []string{p.IniNet, p.TgtNet} {
		link, err := netlink.LinkByName(dev)
		if err != nil {
			errs = append(errs, nlErr("link", dev, err))
			continue
		}
		f := &netlink.MatchAll{
			FilterAttrs: netlink.FilterAttrs{LinkIndex: link.Attrs().Index, Parent: netlink.HANDLE_MIN_INGRESS,
				Handle: blackholeHandle, Priority: blackholePrio, Protocol: unix.ETH_P_ALL},
			Actions: []netlink.Action{&netlink.GenericAction{ActionAttrs: netlink.ActionAttrs{Action: netlink.TC_ACT_SHOT}}},
		}
		if on {
			errs = append(errs, nlErr("filter add matchall drop (ingress)", dev, netlink.FilterAdd(f)))
		} else {
			errs = append(errs, nlErr("filter del matchall drop (ingress)", dev, netlink.FilterDel(f)))
		}
	}
	return errors.Join(errs...)
}
