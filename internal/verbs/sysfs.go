package verbs

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// The RDMA↔netdev mapping (the job of Mellanox's rdmamap): which RDMA
// device and port carries an IP address or a network interface. It reads
// /sys/class/infiniband/<dev>/ only; the addresses of a netdev come from
// netlink (sysfs_netlink.go), which tests do not need.
//
// Layout read, per device:
//
//	node_guid                      xxxx:xxxx:xxxx:xxxx
//	parent                         rxe only: the netdev it is bound to
//	device/net/<netdev>/dev_port   IPoIB/Ethernet netdevs of the PCI device (0-based port)
//	ports/<n>/state                "4: ACTIVE"
//	ports/<n>/link_layer           "InfiniBand" | "Ethernet"
//	ports/<n>/lid, sm_lid          "0x5"
//	ports/<n>/gids/<i>             eight groups of four hex digits; all zeros = unused
//	ports/<n>/gid_attrs/ndevs/<i>  netdev of a RoCE GID (read fails on unused entries)
//	ports/<n>/gid_attrs/types/<i>  "IB/RoCE v1" | "RoCE v2"
//	ports/<n>/pkeys/<i>            "0xffff"

// SysfsClassPath is where RDMA devices appear below the sysfs root.
const SysfsClassPath = "class/infiniband"

// GIDType is the type of a GID table entry.
type GIDType uint8

// GID types (gid_attrs/types).
const (
	GIDTypeUnknown GIDType = iota
	GIDTypeIBRoCEv1
	GIDTypeRoCEv2
)

func (t GIDType) String() string {
	switch t {
	case GIDTypeIBRoCEv1:
		return "IB/RoCE v1"
	case GIDTypeRoCEv2:
		return "RoCE v2"
	}
	return "unknown"
}

// SysfsDevice is one RDMA device as sysfs shows it.
type SysfsDevice struct {
	Name     string
	NodeGUID uint64
	// Parent is the netdev a software device (rxe, siw) is bound to.
	Parent string
	// Netdevs are the network interfaces of the device's PCI function
	// (device/net), with the port each belongs to.
	Netdevs []SysfsNetdev
	Ports   []SysfsPort // in port order
}

// SysfsNetdev is a network interface of an RDMA device's PCI function.
type SysfsNetdev struct {
	Name string
	Port uint8
}

// SysfsPort is one port of a SysfsDevice.
type SysfsPort struct {
	Num       uint8
	State     PortState
	LinkLayer LinkLayer
	LID       uint16
	SMLID     uint16
	GIDs      []SysfsGID // used entries only, by index
	PKeys     []uint16   // the whole table, by index (0 = empty entry)
}

// SysfsGID is one used entry of a port's GID table.
type SysfsGID struct {
	Index  int
	GID    GID
	Type   GIDType
	Netdev string // RoCE: the netdev the GID belongs to
}

// ReadSysfs reads every RDMA device under root (normally "/sys"), sorted by
// name. A missing class directory means no devices, not an error.
func ReadSysfs(root string) ([]SysfsDevice, error) {
	dir := filepath.Join(root, SysfsClassPath)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, &OpError{Op: "read sysfs", Err: err}
	}
	var devs []SysfsDevice
	for _, e := range ents {
		d, err := readSysfsDevice(filepath.Join(dir, e.Name()), e.Name())
		if err != nil {
			return nil, err
		}
		devs = append(devs, d)
	}
	slices.SortFunc(devs, func(a, b SysfsDevice) int { return strings.Compare(a.Name, b.Name) })
	return devs, nil
}

// sysfsReader reads attribute files of one device with a sticky error.
type sysfsReader struct {
	dev string
	dir string
	err error
}

func (r *sysfsReader) fail(rel string, err error) {
	if r.err == nil {
		r.err = &OpError{Op: "read sysfs " + rel, Device: r.dev, Err: err}
	}
}

// read returns the trimmed content of rel, "" and false if it is absent or
// unreadable (unused GID attributes fail with EINVAL).
func (r *sysfsReader) read(rel string) (string, bool) {
	b, err := os.ReadFile(filepath.Join(r.dir, rel))
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

// hex16 parses an optional "0x…" attribute; absent is 0.
func (r *sysfsReader) hex16(rel string) uint16 {
	s, ok := r.read(rel)
	if !ok {
		return 0
	}
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 16)
	if err != nil {
		r.fail(rel, err)
	}
	return uint16(v)
}

// indexed lists the numeric entries of directory rel in numeric order.
func (r *sysfsReader) indexed(rel string) []int {
	ents, err := os.ReadDir(filepath.Join(r.dir, rel))
	if err != nil {
		return nil
	}
	var idx []int
	for _, e := range ents {
		if i, err := strconv.Atoi(e.Name()); err == nil && i >= 0 {
			idx = append(idx, i)
		}
	}
	slices.Sort(idx)
	return idx
}

func readSysfsDevice(dir, name string) (SysfsDevice, error) {
	r := &sysfsReader{dev: name, dir: dir}
	d := SysfsDevice{Name: name}
	if s, ok := r.read("node_guid"); ok {
		g, err := parseGUID(s)
		if err != nil {
			r.fail("node_guid", err)
		}
		d.NodeGUID = g
	}
	d.Parent, _ = r.read("parent")
	if ents, err := os.ReadDir(filepath.Join(dir, "device", "net")); err == nil {
		for _, e := range ents {
			port := uint8(1)
			rel := filepath.Join("device", "net", e.Name(), "dev_port")
			if s, ok := r.read(rel); ok {
				v, err := strconv.ParseUint(s, 10, 8)
				if err != nil || v >= 255 {
					r.fail(rel, fmt.Errorf("dev_port %q: %w", s, ErrMalformed))
				}
				port = uint8(v) + 1 // dev_port is 0-based
			}
			d.Netdevs = append(d.Netdevs, SysfsNetdev{Name: e.Name(), Port: port})
		}
	}
	for _, n := range r.indexed("ports") {
		if n == 0 || n > 255 {
			continue
		}
		d.Ports = append(d.Ports, r.port(uint8(n)))
	}
	return d, r.err
}

func (r *sysfsReader) port(n uint8) SysfsPort {
	pre := filepath.Join("ports", strconv.Itoa(int(n)))
	p := SysfsPort{Num: n}
	if s, ok := r.read(filepath.Join(pre, "state")); ok {
		// "4: ACTIVE": the number is ibv_port_state.
		num, _, _ := strings.Cut(s, ":")
		v, err := strconv.ParseUint(strings.TrimSpace(num), 10, 8)
		if err != nil || v > uint64(PortActiveDefer) {
			r.fail(filepath.Join(pre, "state"), fmt.Errorf("state %q: %w", s, ErrMalformed))
		}
		p.State = PortState(v)
	}
	switch s, _ := r.read(filepath.Join(pre, "link_layer")); s {
	case "InfiniBand":
		p.LinkLayer = LinkInfiniBand
	case "Ethernet":
		p.LinkLayer = LinkEthernet
	}
	p.LID = r.hex16(filepath.Join(pre, "lid"))
	p.SMLID = r.hex16(filepath.Join(pre, "sm_lid"))
	for _, i := range r.indexed(filepath.Join(pre, "gids")) {
		rel := filepath.Join(pre, "gids", strconv.Itoa(i))
		s, _ := r.read(rel)
		g, err := ParseGID(s)
		if err != nil {
			r.fail(rel, err)
			continue
		}
		if g == (GID{}) {
			continue
		}
		e := SysfsGID{Index: i, GID: g}
		switch t, _ := r.read(filepath.Join(pre, "gid_attrs", "types", strconv.Itoa(i))); t {
		case "IB/RoCE v1":
			e.Type = GIDTypeIBRoCEv1
		case "RoCE v2":
			e.Type = GIDTypeRoCEv2
		}
		e.Netdev, _ = r.read(filepath.Join(pre, "gid_attrs", "ndevs", strconv.Itoa(i)))
		p.GIDs = append(p.GIDs, e)
	}
	idx := r.indexed(filepath.Join(pre, "pkeys"))
	if len(idx) > 0 {
		p.PKeys = make([]uint16, idx[len(idx)-1]+1)
		for _, i := range idx {
			p.PKeys[i] = r.hex16(filepath.Join(pre, "pkeys", strconv.Itoa(i)))
		}
	}
	return p
}

// parseGUID parses "xxxx:xxxx:xxxx:xxxx".
func parseGUID(s string) (uint64, error) {
	groups := strings.Split(s, ":")
	if len(groups) != 4 {
		return 0, fmt.Errorf("GUID %q: %w", s, ErrMalformed)
	}
	var v uint64
	for _, g := range groups {
		x, err := strconv.ParseUint(g, 16, 16)
		if err != nil || len(g) != 4 {
			return 0, fmt.Errorf("GUID %q: %w", s, ErrMalformed)
		}
		v = v<<16 | x
	}
	return v, nil
}

// ParseGID parses a GID as sysfs writes it (eight colon-separated groups of
// four hex digits) or in any IPv6 notation.
func ParseGID(s string) (GID, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is6() || a.Zone() != "" {
		return GID{}, fmt.Errorf("GID %q: %w", s, ErrMalformed)
	}
	return GID(a.As16()), nil
}

// gidForAddr is the GID a RoCE port shows for an IP address: IPv4 as
// ::ffff:a.b.c.d, IPv6 as itself.
func gidForAddr(a netip.Addr) GID {
	return GID(netip.AddrFrom16(a.As16()).As16())
}

// DeviceForAddr finds the device, port and GID index that carry IP address
// addr (RoCE: a GID equal to the address, ::ffff:a.b.c.d for IPv4, or an
// fe80 link-local one). A RoCE v2 entry wins over a v1 entry, an active
// port over an inactive one. ErrNotFound if no port has it: on InfiniBand
// the IPoIB address is not in the GID table, so use NetdevForAddr (netlink)
// and DeviceForNetdev instead.
func DeviceForAddr(devs []SysfsDevice, addr netip.Addr) (dev string, port uint8, gidIndex int, err error) {
	want := gidForAddr(addr.WithZone(""))
	best := -1
	for _, d := range devs {
		for _, p := range d.Ports {
			for _, g := range p.GIDs {
				if g.GID != want {
					continue
				}
				score := 0
				if g.Type == GIDTypeRoCEv2 {
					score++
				}
				if p.State == PortActive {
					score += 2
				}
				if score > best {
					best, dev, port, gidIndex = score, d.Name, p.Num, g.Index
				}
			}
		}
	}
	if best < 0 {
		return "", 0, 0, &OpError{Op: "map address to RDMA device", Err: fmt.Errorf("%v: %w", addr, ErrNotFound)}
	}
	return dev, port, gidIndex, nil
}

// DeviceForNetdev finds the device and port behind a network interface: a
// RoCE GID bound to it, a software device's parent, or a netdev of the
// device's PCI function (IPoIB).
func DeviceForNetdev(devs []SysfsDevice, netdev string) (dev string, port uint8, err error) {
	for _, d := range devs {
		for _, p := range d.Ports {
			for _, g := range p.GIDs {
				if g.Netdev == netdev {
					return d.Name, p.Num, nil
				}
			}
		}
	}
	for _, d := range devs {
		if d.Parent == netdev && len(d.Ports) > 0 {
			return d.Name, d.Ports[0].Num, nil
		}
		for _, n := range d.Netdevs {
			if n.Name == netdev {
				return d.Name, n.Port, nil
			}
		}
	}
	return "", 0, &OpError{Op: "map netdev to RDMA device", Err: fmt.Errorf("%s: %w", netdev, ErrNotFound)}
}

// NetdevsOf lists the network interfaces of a device port, in the order
// found (RoCE GID netdevs, then the parent, then PCI function netdevs).
func NetdevsOf(devs []SysfsDevice, dev string, port uint8) []string {
	var out []string
	add := func(n string) {
		if n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	for _, d := range devs {
		if d.Name != dev {
			continue
		}
		for _, p := range d.Ports {
			if p.Num == port {
				for _, g := range p.GIDs {
					add(g.Netdev)
				}
			}
		}
		add(d.Parent)
		for _, n := range d.Netdevs {
			if n.Port == port {
				add(n.Name)
			}
		}
	}
	return out
}
