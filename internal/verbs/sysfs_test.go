package verbs

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mustGID(t *testing.T, s string) GID {
	t.Helper()
	g, err := ParseGID(s)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// The fixture models rxe0 on veth0 (198.18.1.1), rxe1 on veth2 (IPv6 only,
// port down) and a two-port mlx5 InfiniBand HCA with IPoIB ib0.
func TestReadSysfsFixture(t *testing.T) {
	devs, err := ReadSysfs("testdata/sysfs")
	if err != nil {
		t.Fatal(err)
	}
	ll := mustGID(t, "fe80::5054:ff:fe12:3456")
	v4 := mustGID(t, "::ffff:198.18.1.1")
	want := []SysfsDevice{
		{
			Name: "mlx5_0", NodeGUID: 0x0002c90300123450,
			Netdevs: []SysfsNetdev{{Name: "ib0", Port: 1}},
			Ports: []SysfsPort{
				{Num: 1, State: PortActive, LinkLayer: LinkInfiniBand, LID: 5, SMLID: 1,
					GIDs:  []SysfsGID{{Index: 0, GID: mustGID(t, "fe80::2:c903:12:3451"), Type: GIDTypeIBRoCEv1}},
					PKeys: []uint16{0xffff, 0x8001, 0}},
				{Num: 2, State: PortInit, LinkLayer: LinkInfiniBand, LID: 0xffff, SMLID: 1,
					GIDs:  []SysfsGID{{Index: 0, GID: mustGID(t, "fe80::2:c903:12:3452"), Type: GIDTypeIBRoCEv1}},
					PKeys: []uint16{0xffff, 0x8001, 0}},
			},
		},
		{
			Name: "rxe0", NodeGUID: 0x505400fffe123456, Parent: "veth0",
			Ports: []SysfsPort{{Num: 1, State: PortActive, LinkLayer: LinkEthernet,
				GIDs: []SysfsGID{
					{0, ll, GIDTypeIBRoCEv1, "veth0"}, {1, ll, GIDTypeRoCEv2, "veth0"},
					{2, v4, GIDTypeIBRoCEv1, "veth0"}, {3, v4, GIDTypeRoCEv2, "veth0"},
				},
				PKeys: []uint16{0xffff}}},
		},
		{
			Name: "rxe1", NodeGUID: 0x505400fffe123458, Parent: "veth2",
			Ports: []SysfsPort{{Num: 1, State: PortDown, LinkLayer: LinkEthernet,
				GIDs: []SysfsGID{
					{0, mustGID(t, "fe80::5054:ff:fe12:3458"), GIDTypeIBRoCEv1, "veth2"},
					{1, mustGID(t, "fe80::5054:ff:fe12:3458"), GIDTypeRoCEv2, "veth2"},
					{2, mustGID(t, "fd00:0:0:2::1"), GIDTypeIBRoCEv1, "veth2"},
					{3, mustGID(t, "fd00:0:0:2::1"), GIDTypeRoCEv2, "veth2"},
				},
				PKeys: []uint16{0xffff}}},
		},
	}
	if d := cmp.Diff(want, devs); d != "" {
		t.Fatalf("ReadSysfs (-want +got):\n%s", d)
	}
}

func TestDeviceForAddr(t *testing.T) {
	devs, err := ReadSysfs("testdata/sysfs")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr string
		dev  string
		port uint8
		gid  int
	}{
		{"198.18.1.1", "rxe0", 1, 3}, // the RoCE v2 entry, not the v1 at 2
		{"::ffff:198.18.1.1", "rxe0", 1, 3},
		{"fe80::5054:ff:fe12:3456", "rxe0", 1, 1},
		{"fe80::5054:ff:fe12:3456%veth0", "rxe0", 1, 1},
		{"fd00:0:0:2::1", "rxe1", 1, 3},
	}
	for _, tc := range tests {
		dev, port, gid, err := DeviceForAddr(devs, netip.MustParseAddr(tc.addr))
		if err != nil || dev != tc.dev || port != tc.port || gid != tc.gid {
			t.Errorf("DeviceForAddr(%s) = %s, %d, %d, %v; want %s, %d, %d", tc.addr, dev, port, gid, err, tc.dev, tc.port, tc.gid)
		}
	}
	// An IPoIB address is not in an IB GID table.
	if _, _, _, err := DeviceForAddr(devs, netip.MustParseAddr("192.168.50.1")); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown address: %v, want ErrNotFound", err)
	}
}

func TestDeviceForNetdev(t *testing.T) {
	devs, err := ReadSysfs("testdata/sysfs")
	if err != nil {
		t.Fatal(err)
	}
	for netdev, want := range map[string]string{"veth0": "rxe0:1", "veth2": "rxe1:1", "ib0": "mlx5_0:1"} {
		dev, port, err := DeviceForNetdev(devs, netdev)
		if err != nil || dev+":"+string('0'+rune(port)) != want {
			t.Errorf("DeviceForNetdev(%s) = %s:%d, %v; want %s", netdev, dev, port, err, want)
		}
	}
	if _, _, err := DeviceForNetdev(devs, "eth7"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown netdev: %v", err)
	}
	if got := NetdevsOf(devs, "rxe0", 1); !cmp.Equal(got, []string{"veth0"}) {
		t.Errorf("NetdevsOf(rxe0, 1) = %v", got)
	}
	if got := NetdevsOf(devs, "mlx5_0", 1); !cmp.Equal(got, []string{"ib0"}) {
		t.Errorf("NetdevsOf(mlx5_0, 1) = %v", got)
	}
	if got := NetdevsOf(devs, "mlx5_0", 2); got != nil {
		t.Errorf("NetdevsOf(mlx5_0, 2) = %v", got)
	}
}

func TestReadSysfsAbsentAndMalformed(t *testing.T) {
	devs, err := ReadSysfs(t.TempDir())
	if err != nil || devs != nil {
		t.Fatalf("no class dir: %v, %v; want no devices and no error", devs, err)
	}
	for name, file := range map[string][2]string{
		"guid":  {"node_guid", "5054:00ff:fe12"},
		"gid":   {"ports/1/gids/0", "fe80::zz"},
		"state": {"ports/1/state", "ACTIVE"},
		"lid":   {"ports/1/lid", "0x1ffff"},
	} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			p := filepath.Join(root, SysfsClassPath, "bad0", file[0])
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(file[1]+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ReadSysfs(root)
			var op *OpError
			if !errors.As(err, &op) || op.Device != "bad0" {
				t.Fatalf("ReadSysfs with a bad %s: %v, want an *OpError naming bad0", file[0], err)
			}
		})
	}
}

func TestGIDStringRoundTrip(t *testing.T) {
	const s = "fe80:0000:0000:0000:5054:00ff:fe12:3456"
	g := mustGID(t, s)
	if g.String() != s {
		t.Fatalf("String() = %s, want %s", g, s)
	}
	if g.InterfaceID() != 0x505400fffe123456 {
		t.Fatalf("InterfaceID = %#x", g.InterfaceID())
	}
}

func TestRetryBudget(t *testing.T) {
	if d := AckTimeoutDuration(14); d.Microseconds() != 67108 {
		t.Fatalf("AckTimeoutDuration(14) = %v, want ≈67.1ms", d)
	}
	if RetryBudget(7, 14) != 8*AckTimeoutDuration(14) {
		t.Fatalf("RetryBudget(7, 14) = %v", RetryBudget(7, 14))
	}
	if AckTimeoutDuration(40) != AckTimeoutDuration(31) {
		t.Fatal("exponent not clamped at 31")
	}
}

// NetdevAddrs asks the kernel; the loopback interface exists wherever
// netlink works.
func TestNetdevAddrsLoopback(t *testing.T) {
	addrs, err := NetdevAddrs("lo")
	if err != nil {
		t.Skipf("netlink unavailable here: %v", err)
	}
	lo := netip.MustParseAddr("127.0.0.1")
	found := false
	for _, a := range addrs {
		found = found || a == lo
	}
	if !found {
		t.Fatalf("lo addresses %v lack %v", addrs, lo)
	}
	if name, err := NetdevForAddr(lo); err != nil || name != "lo" {
		t.Fatalf("NetdevForAddr(127.0.0.1) = %q, %v", name, err)
	}
}
