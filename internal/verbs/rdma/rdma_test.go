//go:build linux && cgo

package rdma

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
)

// probeDevices returns the fabric and its devices, or the reason the host
// has none: the device tests then skip with it (the lab runs them for real:
// test/lab/scenarios/rdma_lab_test.go).
func probeDevices(t *testing.T) (*Fabric, []verbs.DeviceInfo) {
	t.Helper()
	f, err := Open(nil)
	if err != nil {
		t.Skipf("no RDMA on this host: %v (make lab LAB_SUITES=rdma tests the provider)", err)
	}
	devs, err := f.Devices()
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) == 0 {
		t.Skip("no RDMA device (ibv_get_device_list is empty); make lab LAB_SUITES=rdma tests the provider on soft-RoCE")
	}
	return f, devs
}

// TestFabricWithoutDevices checks what a host without RDMA gets: Open
// either fails with the errno libibverbs gives (no uverbs interface) or
// yields a fabric on which opening an unknown device is ErrNoDevice.
func TestFabricWithoutDevices(t *testing.T) {
	f, err := Open(nil)
	if err != nil {
		var op *verbs.OpError
		if !errors.As(err, &op) || op.Op != "list devices" {
			t.Fatalf("Open: %v, want a *verbs.OpError of list devices", err)
		}
		if _, statErr := os.Stat("/sys/class/infiniband"); statErr == nil {
			t.Errorf("Open failed (%v) although /sys/class/infiniband exists", err)
		}
		return
	}
	const name = "no-such-rdma-device"
	_, err = f.Open(name)
	if !errors.Is(err, verbs.ErrNoDevice) {
		t.Errorf("Open(%q) = %v, want ErrNoDevice", name, err)
	}
}

// TestWCStatusABI maps the ibv_wc_status values of the rdma-core ABI
// (stable since libibverbs 1.0) to the seam's statuses.
func TestWCStatusABI(t *testing.T) {
	for abi, want := range map[uint32]verbs.Status{
		0: verbs.StatusSuccess, 1: verbs.StatusLocLenErr, 2: verbs.StatusLocQPOpErr, 4: verbs.StatusLocProtErr,
		5: verbs.StatusWRFlushErr, 9: verbs.StatusRemInvReqErr, 10: verbs.StatusRemAccessErr, 11: verbs.StatusRemOpErr,
		12: verbs.StatusRetryExcErr, 13: verbs.StatusRNRRetryExcErr, 21: verbs.StatusGeneralErr,
		3: verbs.StatusGeneralErr, 7: verbs.StatusGeneralErr, // EEC and bad-response errors have no name here
	} {
		if got := wcStatus(abi); got != want {
			t.Errorf("wcStatus(%d) = %v, want %v", abi, got, want)
		}
	}
	for abi, want := range map[uint32]verbs.CompletionOp{
		0: verbs.CompSend, 1: verbs.CompRDMAWrite, 2: verbs.CompRDMARead, 128: verbs.CompRecv, 129: verbs.CompRecv,
	} {
		if got := wcOpcode(abi); got != want {
			t.Errorf("wcOpcode(%d) = %v, want %v", abi, got, want)
		}
	}
}

func TestSendOpcodeABI(t *testing.T) {
	for op, want := range map[verbs.Opcode]int{verbs.OpRDMAWrite: 0, verbs.OpSend: 2, verbs.OpRDMARead: 4} {
		got, ok := sendOpcode(op)
		if !ok || int(got) != want {
			t.Errorf("sendOpcode(%v) = %d, %v; want %d", op, got, ok, want)
		}
	}
	if _, ok := sendOpcode(verbs.Opcode(99)); ok {
		t.Error("an unknown opcode was accepted")
	}
}

func TestAccessAndAsyncABI(t *testing.T) {
	if got := accessFlags(verbs.AccessData); got != 1|2|4 {
		t.Errorf("accessFlags(AccessData) = %#x, want 0x7", got)
	}
	if got := accessFlags(verbs.AccessLocalWrite); got != 1 {
		t.Errorf("accessFlags(LocalWrite) = %#x", got)
	}
	// ibv_event_type: PORT_ACTIVE 9, PORT_ERR 10, LID_CHANGE 11, PKEY_CHANGE 12,
	// SM_CHANGE 13, CLIENT_REREGISTER 17, GID_CHANGE 18, DEVICE_FATAL 8;
	// QP_FATAL 1 is not a device event of the seam.
	for abi, want := range map[int]verbs.AsyncEventKind{
		9: verbs.EventPortActive, 10: verbs.EventPortError, 11: verbs.EventLIDChange, 12: verbs.EventPKeyChange,
		13: verbs.EventSMChange, 17: verbs.EventClientReregister, 18: verbs.EventGIDChange, 8: verbs.EventDeviceFatal,
	} {
		if got, ok := asyncKind(abi); !ok || got != want {
			t.Errorf("asyncKind(%d) = %v, %v; want %v", abi, got, ok, want)
		}
	}
	if _, ok := asyncKind(1); ok {
		t.Error("QP_FATAL mapped to a device event")
	}
	for abi, want := range map[int]int{1: 256, 3: 1024, 5: 4096, 0: 0} {
		if got := mtuBytes(abi); got != want {
			t.Errorf("mtuBytes(%d) = %d, want %d", abi, got, want)
		}
	}
	if portState(4) != verbs.PortActive || portState(1) != verbs.PortDown || linkLayer(2) != verbs.LinkEthernet || linkLayer(1) != verbs.LinkInfiniBand {
		t.Error("port state or link layer mapping differs from the ABI")
	}
}

// TestEventError checks the mapping of setup-ending CM events
// (rdma_cm_event_type of librdmacm 44) to the seam's errors.
func TestEventError(t *testing.T) {
	const (
		addrError    = 1
		routeError   = 3
		connectError = 6
		unreachable  = 7
		rejected     = 8
	)
	rej := func(reason int, priv string) cmEvent {
		return cmEvent{kind: rejected, status: reason, priv: []byte(priv)}
	}
	cases := []struct {
		name string
		ev   cmEvent
		want error
	}{
		{"address error", cmEvent{kind: addrError, status: -int(syscall.EHOSTUNREACH)}, verbs.ErrUnreachable},
		{"route error", cmEvent{kind: routeError, status: -int(syscall.ETIMEDOUT)}, verbs.ErrRouteResolve},
		{"unreachable timeout", cmEvent{kind: unreachable, status: -int(syscall.ETIMEDOUT)}, verbs.ErrTimeout},
		{"connect error", cmEvent{kind: connectError, status: -int(syscall.EINVAL)}, verbs.ErrUnreachable},
		{"no listener", rej(rejectInvalidServiceID, ""), verbs.ErrConnRefused},
	}
	for _, tc := range cases {
		err := eventError(&tc.ev)
		var ce *CMEventError
		if !errors.Is(err, tc.want) || !errors.As(err, &ce) || ce.Status != tc.ev.status {
			t.Errorf("%s: %v, want %v inside a *CMEventError", tc.name, err, tc.want)
		}
	}
	ev := rej(verbs.CMRejectConsumer, "login-rej")
	err := eventError(&ev)
	ev.priv[0] = 'X' // the error must own a copy: the event buffer is reused
	var re *verbs.RejectError
	if !errors.As(err, &re) || re.Reason != verbs.CMRejectConsumer || string(re.Private) != "login-rej" {
		t.Errorf("consumer reject: %v (%+v)", err, re)
	}
	if errors.Is(err, verbs.ErrConnRefused) {
		t.Error("a consumer reject claims that nothing listens")
	}
}

func TestSockAddr(t *testing.T) {
	b, v4, _, err := sockAddr(netip.MustParseAddr("198.18.0.1"))
	if err != nil || v4 != 1 || netip.AddrFrom16(b).Unmap() != netip.MustParseAddr("198.18.0.1") {
		t.Errorf("IPv4: %v %d %v", b, v4, err)
	}
	if _, v4, _, _ := sockAddr(netip.MustParseAddr("::ffff:10.0.0.1")); v4 != 1 {
		t.Error("an IPv4-mapped address is not treated as IPv4")
	}
	if _, v4, scope, err := sockAddr(netip.MustParseAddr("fe80::1%1")); err != nil || v4 != 0 || scope != 1 {
		t.Errorf("link-local with zone: v4 %d scope %d err %v", v4, scope, err)
	}
	if _, _, _, err := sockAddr(netip.Addr{}); !errors.Is(err, ErrBadParams) {
		t.Errorf("unset address: %v", err)
	}
}

func TestClampU8(t *testing.T) {
	for _, tc := range []struct {
		v     uint8
		limit int
		want  uint8
	}{{4, 128, 4}, {255, 16, 16}, {7, 7, 7}, {3, -1, 0}, {200, 1000, 200}} {
		if got := clampU8(tc.v, tc.limit); got != tc.want {
			t.Errorf("clampU8(%d, %d) = %d, want %d", tc.v, tc.limit, got, tc.want)
		}
	}
}

// TestDialParamsRefusedEarly checks the parameter checks that run before
// any CM call (they need an opened device).
func TestDialParamsRefusedEarly(t *testing.T) {
	f, devs := probeDevices(t)
	d, err := f.OpenDevice(devs[0].Name)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	src := netip.MustParseAddr("192.0.2.1")
	dst := netip.MustParseAddrPort("192.0.2.2:5000")
	for name, p := range map[string]verbs.DialParams{
		"private data too long": {Src: src, Dst: dst, Private: make([]byte, maxReqPrivate+1), SendDepth: 1},
		"no queues":             {Src: src, Dst: dst},
		"no source":             {Dst: dst, SendDepth: 1},
		"mixed families":        {Src: netip.MustParseAddr("2001:db8::1"), Dst: dst, SendDepth: 1},
	} {
		if _, _, err := d.Dial(ctx, p); !errors.Is(err, ErrBadParams) {
			t.Errorf("%s: %v, want ErrBadParams", name, err)
		}
	}
}

// TestDeviceQueriesAndBuffers runs on any host with an RDMA device.
func TestDeviceQueriesAndBuffers(t *testing.T) {
	f, devs := probeDevices(t)
	d, err := f.OpenDevice(devs[0].Name)
	if err != nil {
		t.Fatal(err)
	}
	pa, err := d.Port(1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Port(d.Info().Ports + 1); !errors.Is(err, verbs.ErrIndexRange) {
		t.Errorf("port past the last: %v", err)
	}
	if _, err := d.GID(1, pa.GIDTableLen); !errors.Is(err, verbs.ErrIndexRange) {
		t.Errorf("GID past the table: %v", err)
	}
	b, err := d.AllocBuffer(5000, verbs.AccessData)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Bytes()) != 5000 || b.Addr()%uint64(os.Getpagesize()) != 0 || b.LKey() == 0 {
		t.Errorf("buffer: %d bytes at %#x lkey %#x", len(b.Bytes()), b.Addr(), b.LKey())
	}
	mem, err := unix.Mmap(-1, 0, os.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := d.Register(mem, verbs.AccessLocalWrite)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Register(mem, verbs.AccessRemoteWrite); !errors.Is(err, verbs.ErrInvalidAccess) {
		t.Errorf("remote write without local write: %v", err)
	}
	for _, c := range []func() error{b.Close, rb.Close, b.Close, func() error { return unix.Munmap(mem) }, d.Close} {
		if err := c(); err != nil {
			t.Error(err)
		}
	}
	if _, ok := <-d.Events(); ok {
		t.Error("Events still open after Close")
	}
}
