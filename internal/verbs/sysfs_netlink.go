package verbs

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// The netlink half of the RDMA↔netdev mapping: which interface holds an
// address and which addresses an interface has. It needs a live kernel
// (rtnetlink), so the pure mapping in sysfs.go is what tests cover.

// NetdevAddrs returns the IP addresses of network interface name.
func NetdevAddrs(name string) ([]netip.Addr, error) {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return nil, &OpError{Op: "netlink link " + name, Err: err}
	}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return nil, &OpError{Op: "netlink addresses of " + name, Err: err}
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if a.IPNet == nil {
			continue
		}
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			out = append(out, ip.Unmap())
		}
	}
	return out, nil
}

// NetdevForAddr returns the name of the network interface that holds addr.
func NetdevForAddr(addr netip.Addr) (string, error) {
	addr = addr.Unmap().WithZone("")
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return "", &OpError{Op: "netlink addresses", Err: err}
	}
	for _, a := range addrs {
		if a.IPNet == nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || ip.Unmap() != addr {
			continue
		}
		link, err := netlink.LinkByIndex(a.LinkIndex)
		if err != nil {
			return "", &OpError{Op: "netlink link", Err: err}
		}
		return link.Attrs().Name, nil
	}
	return "", &OpError{Op: "map address to netdev", Err: fmt.Errorf("%v: %w", addr, ErrNotFound)}
}

// ResolveAddr maps an IP address to the RDMA device, port and GID index to
// use: through the GID table first (RoCE), else through the interface that
// holds the address (IPoIB), whose port's GID 0 is then used.
func ResolveAddr(devs []SysfsDevice, addr netip.Addr) (dev string, port uint8, gidIndex int, err error) {
	if dev, port, gidIndex, err = DeviceForAddr(devs, addr); err == nil {
		return dev, port, gidIndex, nil
	}
	netdev, err := NetdevForAddr(addr)
	if err != nil {
		return "", 0, 0, err
	}
	dev, port, err = DeviceForNetdev(devs, netdev)
	return dev, port, 0, err
}

// NetdevUpForAddr reports whether the network interface that holds addr is
// administratively up. An interface set down keeps its IPv4 addresses, and
// every route lookup through it fails until it is up again.
func NetdevUpForAddr(addr netip.Addr) (bool, error) {
	name, err := NetdevForAddr(addr)
	if err != nil {
		return false, err
	}
	link, err := netlink.LinkByName(name)
	if err != nil {
		return false, &OpError{Op: "netlink link " + name, Err: err}
	}
	return link.Attrs().Flags&net.FlagUp != 0, nil
}
