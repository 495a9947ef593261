package sim

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/clock"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
)

// Defaults of Config. Each mirrors a value of the real stack so that
// timings in tests have realistic proportions.
const (
	// DefaultAckTimeout is the ACK timeout exponent a QP gets when its
	// parameters leave AckTimeout at 0: RDMA/CM on RoCE derives it from
	// CMA_IBOE_PACKET_LIFETIME (16..18) + 1, about 1 s per try.
	DefaultAckTimeout = 18
	// DefaultRNRTimer is the wait between RNR retries: IB min_rnr_timer
	// code 12 (0.64 ms).
	DefaultRNRTimer = 640 * time.Microsecond
	// DefaultCMTimeout is how long a connect through a silent fabric takes
	// to fail: RDMA/CM's CM response timeout (code 20, 4.096 µs × 2^20) times
	// its 15 retries plus the first try.
	DefaultCMTimeout = (4096 * time.Nanosecond << 20) * 16
	// DefaultEventBuffer is the capacity of each device's async event
	// channel; events past it are dropped and counted.
	DefaultEventBuffer = 64
)

// cmEventBuffer is the capacity of a connection's CM event channel. A
// connection delivers at most Disconnected, TimewaitExit and DeviceRemoval.
const cmEventBuffer = 4

// Config configures a Fabric.
type Config struct {
	// Seed drives every random choice (loss draws, key variants).
	Seed int64
	// Clock schedules delayed work; nil means clock.Real{}.
	Clock clock.Clock
	// DefaultAckTimeout replaces a QP's AckTimeout of 0; 0 means
	// the package's DefaultAckTimeout.
	DefaultAckTimeout uint8
	// RNRTimer is the wait between RNR retries; 0 means DefaultRNRTimer.
	RNRTimer time.Duration
	// CMTimeout bounds a connect that gets no answer and a DREQ that gets no
	// DREP; 0 means DefaultCMTimeout.
	CMTimeout time.Duration
	// Timewait is the delay from Disconnected to TimewaitExit; 0 means two
	// ACK timeouts of the connection (IB CM: twice the packet lifetime).
	Timewait time.Duration
	// EventBuffer is each device handle's async event capacity; 0 means
	// DefaultEventBuffer.
	EventBuffer int
}

// Fabric is a simulated RDMA fabric: devices with ports, links between
// ports, and everything opened on them. It implements verbs.Fabric.
//
// One mutex guards the whole fabric; every method, timer callback and
// data-path call takes it, so the fabric is safe for concurrent use and its
// effects are serialised in one order.
type Fabric struct {
	mu      sync.Mutex
	clk     clock.Clock
	cfg     Config
	rng     *rand.Rand
	hcas    []*hca // in AddDevice order
	links   []*Link
	nextSrc uint16  // next ephemeral CM source port
	dropped uint64  // async events dropped on full channels
	kicks   []*Conn // QPs to re-evaluate before the current call returns
	closed  bool
	mad     madState // SA, DM agents and MAD ports (mad.go)
}

// ephemeralPortBase is the first source port Dial assigns (the IANA
// dynamic range, as RDMA/CM's ephemeral ports).
const ephemeralPortBase = 49152

var _ verbs.Fabric = (*Fabric)(nil)

// New returns an empty fabric.
func New(cfg Config) *Fabric {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.DefaultAckTimeout == 0 {
		cfg.DefaultAckTimeout = DefaultAckTimeout
	}
	if cfg.RNRTimer == 0 {
		cfg.RNRTimer = DefaultRNRTimer
	}
	if cfg.CMTimeout == 0 {
		cfg.CMTimeout = DefaultCMTimeout
	}
	if cfg.EventBuffer == 0 {
		cfg.EventBuffer = DefaultEventBuffer
	}
	// The second PCG word is fixed so that Seed alone selects the stream.
	const pcgStream = 0x5352502d6d706174 // "SRP-mpat"
	return &Fabric{
		clk:     cfg.Clock,
		cfg:     cfg,
		rng:     rand.New(rand.NewPCG(uint64(cfg.Seed), pcgStream)),
		nextSrc: ephemeralPortBase,
	}
}

// Clock returns the fabric's clock.
func (f *Fabric) Clock() clock.Clock { return f.clk }

// DroppedEvents reports how many async events were dropped because a
// device's event channel was full.
func (f *Fabric) DroppedEvents() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dropped
}

// PortConfig describes one port of a simulated device.
type PortConfig struct {
	// LinkLayer is LinkEthernet (RoCE, the default) or LinkInfiniBand.
	LinkLayer verbs.LinkLayer
	// Addrs are the IP addresses of the port's netdev (RoCE) or IPoIB
	// interface: Dial routes by them.
	Addrs []netip.Addr
	// GIDs replaces the derived GID table. Derived: index 0 is
	// fe80::<port GUID>; on Ethernet each address follows as a RoCE v2 GID
	// (::ffff:a.b.c.d for IPv4).
	GIDs []verbs.GID
	// PKeys is the P_Key table; nil means {0xffff} (the default partition).
	PKeys []uint16
	// LID and SMLID are the port's and its subnet manager's LIDs (IB).
	LID, SMLID uint16
	// SubnetTimeout is the IB subnet timeout exponent; 0 means 18.
	SubnetTimeout uint8
	// MTU is the active MTU in bytes; 0 means 1024 on Ethernet (rxe) and
	// 4096 on InfiniBand.
	MTU int
}

// Port defaults.
const (
	defaultPKey          = 0xffff
	defaultSubnetTimeout = 18
	defaultRoCEMTU       = 1024
	defaultIBMTU         = 4096
)

// Device limits of AddDevice, modelled on rxe.
const (
	defaultMaxQPWR     = 1 << 14
	defaultMaxSGE      = 32
	defaultMaxQPRdAtom = 128
	defaultMaxMRSize   = 1 << 40
	// simGUIDBase is the OUI-looking prefix of derived node GUIDs.
	simGUIDBase = 0x0002_c903_0000_0000
)

// hca is one simulated device (the hardware); Device is an opened handle.
type hca struct {
	name    string
	info    verbs.DeviceInfo
	ports   []*port // port n is ports[n-1]
	handles []*Device
	nextKey uint32 // MR index
	nextVA  uint64 // next simulated virtual address
	nextQPN uint32
}

type port struct {
	hca   *hca
	num   uint8
	cfg   PortConfig
	gids  []verbs.GID
	pkeys []uint16
	link  *Link
	down  bool // this port's own link is down (SetPortUp)
}

func (p *port) active() bool { return p.link != nil && !p.link.down && !p.down }

func (p *port) hasAddr(a netip.Addr) bool {
	return slices.Contains(p.cfg.Addrs, a.Unmap()) || slices.Contains(p.cfg.Addrs, a)
}

func (p *port) String() string { return fmt.Sprintf("%s:%d", p.hca.name, p.num) }

// AddDevice adds a device with the given ports (numbered from 1) and
// rxe-like limits. Its node GUID is derived from its position.
func (f *Fabric) AddDevice(name string, ports ...PortConfig) error {
	f.mu.Lock()
	n := len(f.hcas)
	f.mu.Unlock()
	return f.AddDeviceInfo(verbs.DeviceInfo{
		Name:         name,
		NodeGUID:     simGUIDBase | uint64(n+1)<<16,
		MaxQPWR:      defaultMaxQPWR,
		MaxSGE:       defaultMaxSGE,
		MaxQPRdAtom:  defaultMaxQPRdAtom,
		MaxQPInitRd:  defaultMaxQPRdAtom,
		MaxMRSize:    defaultMaxMRSize,
		FirmwareVers: "sim",
	}, ports...)
}

// AddDeviceInfo adds a device with explicit attributes (limits, GUID).
// info.Ports is set from ports.
func (f *Fabric) AddDeviceInfo(info verbs.DeviceInfo, ports ...PortConfig) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if info.Name == "" || len(ports) == 0 || len(ports) > 255 || info.MaxQPWR <= 0 {
		return fmt.Errorf("add device %q: %w", info.Name, ErrBadConfig)
	}
	if f.hca(info.Name) != nil {
		return fmt.Errorf("add device %q: %w", info.Name, ErrExists)
	}
	info.Ports = uint8(len(ports))
	h := &hca{name: info.Name, info: info, nextVA: simVABase, nextQPN: firstQPN}
	for i, pc := range ports {
		p := &port{hca: h, num: uint8(i + 1), cfg: pc}
		if pc.LinkLayer == verbs.LinkUnspecified {
			p.cfg.LinkLayer = verbs.LinkEthernet
		}
		if p.cfg.SubnetTimeout == 0 {
			p.cfg.SubnetTimeout = defaultSubnetTimeout
		}
		if p.cfg.MTU == 0 {
			p.cfg.MTU = defaultRoCEMTU
			if p.cfg.LinkLayer == verbs.LinkInfiniBand {
				p.cfg.MTU = defaultIBMTU
			}
		}
		p.cfg.Addrs = make([]netip.Addr, len(pc.Addrs))
		for j, a := range pc.Addrs {
			p.cfg.Addrs[j] = a.Unmap()
		}
		p.gids = slices.Clone(pc.GIDs)
		if p.gids == nil {
			p.gids = deriveGIDs(info.NodeGUID+uint64(p.num), p.cfg)
		}
		p.pkeys = slices.Clone(pc.PKeys)
		if p.pkeys == nil {
			p.pkeys = []uint16{defaultPKey}
		}
		h.ports = append(h.ports, p)
	}
	f.hcas = append(f.hcas, h)
	return nil
}

// deriveGIDs builds a GID table: fe80::<port GUID>, then on Ethernet one
// RoCE v2 GID per address.
func deriveGIDs(portGUID uint64, pc PortConfig) []verbs.GID {
	var g verbs.GID
	g[0], g[1] = 0xfe, 0x80
	for i := range 8 {
		g[8+i] = byte(portGUID >> (56 - 8*i))
	}
	gids := []verbs.GID{g}
	if pc.LinkLayer == verbs.LinkInfiniBand {
		return gids
	}
	for _, a := range pc.Addrs {
		gids = append(gids, verbs.GID(netip.AddrFrom16(a.As16()).As16()))
	}
	return gids
}

func (f *Fabric) hca(name string) *hca {
	for _, h := range f.hcas {
		if h.name == name {
			return h
		}
	}
	return nil
}

// PortRef names one port of one device.
type PortRef struct {
	Device string
	Port   uint8
}

func (r PortRef) String() string { return fmt.Sprintf("%s:%d", r.Device, r.Port) }

// Link is a cable (or an L2 segment) between ports. Traffic between the
// ports goes over it, subject to its knobs. A port is on at most one link;
// a port on no link is down.
type Link struct {
	f         *Fabric
	ports     []*port
	down      bool
	blackhole bool
	latency   time.Duration
	loss      float64
	conns     []*Conn // connections whose traffic crosses the link
}

// Connect joins two or more ports with a link, which starts up: each port
// reports PortActive.
func (f *Fabric) Connect(refs ...PortRef) (*Link, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(refs) < 2 {
		return nil, fmt.Errorf("connect: need two ports: %w", ErrBadConfig)
	}
	l := &Link{f: f}
	for _, r := range refs {
		h := f.hca(r.Device)
		if h == nil || r.Port == 0 || int(r.Port) > len(h.ports) {
			return nil, fmt.Errorf("connect %s: %w", r, verbs.ErrNoDevice)
		}
		p := h.ports[r.Port-1]
		if p.link != nil || slices.Contains(l.ports, p) {
			return nil, fmt.Errorf("connect %s: %w", r, ErrExists)
		}
		l.ports = append(l.ports, p)
	}
	for _, p := range l.ports {
		p.link = l
	}
	f.links = append(f.links, l)
	l.portEvent(verbs.EventPortActive)
	return l, nil
}

// LinkOf returns the link a port is on, nil if none.
func (f *Fabric) LinkOf(ref PortRef) *Link {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.hca(ref.Device)
	if h == nil || ref.Port == 0 || int(ref.Port) > len(h.ports) {
		return nil
	}
	return h.ports[ref.Port-1].link
}

func (l *Link) String() string {
	names := make([]string, len(l.ports))
	for i, p := range l.ports {
		names[i] = p.String()
	}
	return "link(" + strings.Join(names, "-") + ")"
}

// open reports whether packets cross the link now.
func (l *Link) open() bool { return !l.down && !l.blackhole }

func (l *Link) portEvent(kind verbs.AsyncEventKind) {
	now := l.f.clk.Now()
	for _, p := range l.ports {
		for _, d := range p.hca.handles {
			d.emit(verbs.AsyncEvent{Kind: kind, Device: p.hca.name, Port: p.num, Time: now})
		}
	}
}

// Down takes the link down, as `ip link set veth down` or a pulled cable:
// every port on it goes down and reports PortError. Work in flight and
// work posted later is retransmitted in vain until its retry budget is
// spent (StatusRetryExcErr, then StatusFlushErr for the rest); Dial over
// the link fails with ErrUnreachable. Idempotent.
func (l *Link) Down() {
	l.f.mu.Lock()
	defer l.f.mu.Unlock()
	if l.down {
		return
	}
	l.down = true
	l.portEvent(verbs.EventPortError)
	l.progressAll()
}

// Up brings the link back: ports report PortActive, and requests still
// inside their retry budget get through at their next retransmission.
func (l *Link) Up() {
	l.f.mu.Lock()
	defer l.f.mu.Unlock()
	if !l.down {
		return
	}
	l.down = false
	l.portEvent(verbs.EventPortActive)
	l.progressAll()
}

// Blackhole makes the link silently drop every packet (on) or stop doing so
// (off), as 100 % loss with tc or nftables: no event, ports stay active,
// requests end in StatusRetryExcErr after their budget and a connect times
// out after Config.CMTimeout.
func (l *Link) Blackhole(on bool) {
	l.f.mu.Lock()
	defer l.f.mu.Unlock()
	l.blackhole = on
	l.progressAll()
}

// SetLatency sets the one-way delay of the link. Zero (the default) makes
// delivery synchronous inside PostSend/PostRecv.
func (l *Link) SetLatency(d time.Duration) {
	l.f.mu.Lock()
	defer l.f.mu.Unlock()
	l.latency = max(d, 0)
}

// SetLoss sets the probability (0..1) that one transmission of a request is
// lost. A lost transmission is retried one ACK timeout later; only when
// every retry is lost does the request fail with StatusRetryExcErr. Draws
// come from the fabric's seeded generator.
func (l *Link) SetLoss(p float64) {
	l.f.mu.Lock()
	defer l.f.mu.Unlock()
	l.loss = min(max(p, 0), 1)
}

// lose draws whether one transmission over l is lost.
func (f *Fabric) lose(l *Link) bool {
	if l.loss <= 0 {
		return false
	}
	return f.rng.Float64() < l.loss
}

// progressAll re-evaluates every connection over the link after a change
// of its state.
func (l *Link) progressAll() {
	now := l.f.clk.Now()
	for _, c := range l.conns {
		c.progress(now)
	}
	l.f.drain()
}

// drain re-evaluates the QPs queued by toError (peers that may be waiting
// for an answer that will now never come).
func (f *Fabric) drain() {
	for len(f.kicks) > 0 {
		c := f.kicks[len(f.kicks)-1]
		f.kicks[len(f.kicks)-1] = nil
		f.kicks = f.kicks[:len(f.kicks)-1]
		c.progress(f.clk.Now())
	}
}

// DisconnectAll disconnects every connection with a local endpoint on addr
// (any device), as a target removing its sessions: each sends a DREQ. It
// returns how many it disconnected.
func (f *Fabric) DisconnectAll(addr netip.Addr) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	addr = addr.Unmap()
	n := 0
	for _, h := range f.hcas {
		for _, d := range h.handles {
			for _, c := range slices.Clone(d.conns) {
				if c.local.Addr() == addr && c.disconnectLocked() {
					n++
				}
			}
		}
	}
	f.drain()
	return n
}

// Devices lists the fabric's devices in the order they were added.
func (f *Fabric) Devices() ([]verbs.DeviceInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]verbs.DeviceInfo, len(f.hcas))
	for i, h := range f.hcas {
		out[i] = h.info
	}
	return out, nil
}

// Open opens a device; it returns a *Device.
func (f *Fabric) Open(name string) (verbs.Device, error) {
	d, err := f.OpenDevice(name)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// OpenDevice opens a new handle on a device: its own protection domain
// (memory registrations), event channel, connections and listeners.
func (f *Fabric) OpenDevice(name string) (*Device, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, &verbs.OpError{Op: "open", Device: name, Err: verbs.ErrClosed}
	}
	h := f.hca(name)
	if h == nil {
		return nil, &verbs.OpError{Op: "open", Device: name, Err: verbs.ErrNoDevice}
	}
	d := &Device{
		f:       f,
		hca:     h,
		events:  make(chan verbs.AsyncEvent, f.cfg.EventBuffer),
		byLKey:  make(map[uint32]*region),
		byRKey:  make(map[uint32]*region),
		regions: nil,
	}
	h.handles = append(h.handles, d)
	return d, nil
}

// Close closes every device handle (and with them all connections,
// listeners and registrations) and stops the fabric's timers. Later Opens
// fail with ErrClosed.
func (f *Fabric) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for _, h := range f.hcas {
		for _, d := range slices.Clone(h.handles) {
			d.closeLocked()
		}
	}
	f.drain()
	return nil
}
