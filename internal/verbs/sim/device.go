package sim

import (
	"fmt"
	"slices"

	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
)

// Device is an opened handle on a simulated device. It implements
// verbs.Device; Listen and DisconnectAll are sim-only (the target side).
type Device struct {
	f         *Fabric
	hca       *hca
	events    chan verbs.AsyncEvent
	byLKey    map[uint32]*region
	byRKey    map[uint32]*region
	regions   []*region
	conns     []*Conn
	listeners []*Listener
	closed    bool
}

var _ verbs.Device = (*Device)(nil)

// Name is the device's name.
func (d *Device) Name() string { return d.hca.name }

// Info returns the device's attributes.
func (d *Device) Info() verbs.DeviceInfo { return d.hca.info }

func (d *Device) port(op string, n uint8) (*port, error) {
	if n == 0 || int(n) > len(d.hca.ports) {
		return nil, &verbs.OpError{Op: op, Device: d.hca.name, Err: fmt.Errorf("port %d: %w", n, verbs.ErrIndexRange)}
	}
	return d.hca.ports[n-1], nil
}

// Port returns port n's attributes. A port is active while its link is up;
// a port on no link is down.
func (d *Device) Port(n uint8) (verbs.PortAttr, error) {
	d.f.mu.Lock()
	defer d.f.mu.Unlock()
	p, err := d.port("query port", n)
	if err != nil {
		return verbs.PortAttr{}, err
	}
	st := verbs.PortDown
	if p.active() {
		st = verbs.PortActive
	}
	return verbs.PortAttr{
		State:         st,
		LinkLayer:     p.cfg.LinkLayer,
		LID:           p.cfg.LID,
		SMLID:         p.cfg.SMLID,
		SubnetTimeout: p.cfg.SubnetTimeout,
		GIDTableLen:   len(p.gids),
		PKeyTableLen:  len(p.pkeys),
		ActiveMTU:     p.cfg.MTU,
	}, nil
}

// GID returns entry index of port n's GID table.
func (d *Device) GID(n uint8, index int) (verbs.GID, error) {
	d.f.mu.Lock()
	defer d.f.mu.Unlock()
	p, err := d.port("query gid", n)
	if err != nil {
		return verbs.GID{}, err
	}
	if index < 0 || index >= len(p.gids) {
		return verbs.GID{}, &verbs.OpError{Op: "query gid", Device: d.hca.name, Err: verbs.ErrIndexRange}
	}
	return p.gids[index], nil
}

// PKey returns entry index of port n's P_Key table.
func (d *Device) PKey(n uint8, index uint16) (uint16, error) {
	d.f.mu.Lock()
	defer d.f.mu.Unlock()
	p, err := d.port("query pkey", n)
	if err != nil {
		return 0, err
	}
	if int(index) >= len(p.pkeys) {
		return 0, &verbs.OpError{Op: "query pkey", Device: d.hca.name, Err: verbs.ErrIndexRange}
	}
	return p.pkeys[index], nil
}

// PKeyIndex resolves a P_Key value (including its membership bit) to its
// index.
func (d *Device) PKeyIndex(n uint8, pkey uint16) (uint16, error) {
	d.f.mu.Lock()
	defer d.f.mu.Unlock()
	p, err := d.port("find pkey", n)
	if err != nil {
		return 0, err
	}
	if i := slices.Index(p.pkeys, pkey); i >= 0 {
		return uint16(i), nil
	}
	return 0, &verbs.OpError{Op: "find pkey", Device: d.hca.name, Err: fmt.Errorf("pkey %#04x: %w", pkey, verbs.ErrNotFound)}
}

// Events delivers PortError/PortActive events of this device's ports. It is
// closed by Close.
func (d *Device) Events() <-chan verbs.AsyncEvent { return d.events }

// emit sends an async event without blocking; a full channel drops it.
func (d *Device) emit(ev verbs.AsyncEvent) {
	if d.closed {
		return
	}
	select {
	case d.events <- ev:
	default:
		d.f.dropped++
	}
}

// DisconnectAll disconnects every connected connection of this handle
// (sends a DREQ on each) and returns how many it disconnected.
func (d *Device) DisconnectAll() int {
	d.f.mu.Lock()
	defer d.f.mu.Unlock()
	n := 0
	for _, c := range slices.Clone(d.conns) {
		if c.disconnectLocked() {
			n++
		}
	}
	d.f.drain()
	return n
}

// Close closes every connection and listener of the handle, deregisters its
// memory and closes its event channel. Idempotent.
func (d *Device) Close() error {
	d.f.mu.Lock()
	defer d.f.mu.Unlock()
	d.closeLocked()
	d.f.drain()
	return nil
}

func (d *Device) closeLocked() {
	if d.closed {
		return
	}
	for _, c := range slices.Clone(d.conns) {
		c.closeLocked()
	}
	for _, l := range slices.Clone(d.listeners) {
		l.closeLocked()
	}
	d.closeMADLocked()
	for _, r := range d.regions {
		r.closed = true
	}
	d.regions = nil
	clear(d.byLKey)
	clear(d.byRKey)
	d.closed = true
	close(d.events)
	d.hca.handles = slices.DeleteFunc(d.hca.handles, func(x *Device) bool { return x == d })
}
