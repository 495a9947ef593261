package mad

import (
	"fmt"
	"strings"
)

// DM record sizes (srpd.h; research/srp-protocol.md §4.2).
const (
	IOUnitInfoLen          = 132
	IOControllerProfileLen = 128
	ServiceEntryLen        = 48
	// ServiceEntriesPerMAD is how many service entries one ServiceEntries
	// MAD carries.
	ServiceEntriesPerMAD = 4
	// MaxSlots is the size of IOUnitInfo's controller list (two 4-bit
	// slots per byte).
	MaxSlots        = 128 * 2
	controllerBytes = 128
	iocIDLen        = 64
	serviceNameLen  = 40
)

// Slot states of IOUnitInfo's controller list.
const (
	SlotEmpty   = 0x0
	SlotPresent = 0x1
	SlotNone    = 0xf
)

// IOUnitInfo is the DM IOUnitInfo attribute (132 bytes).
type IOUnitInfo struct {
	ChangeID       uint16
	MaxControllers uint8
	// DiagOptionROM: DiagDeviceID (bit 7) | OptionROM (bit 6).
	DiagOptionROM uint8
	// ControllerList holds a 4-bit state per slot: slot s (1-based) is
	// the high nibble of byte (s−1)/2 when s is odd.
	ControllerList [controllerBytes]byte
}

// Len is IOUnitInfoLen.
func (*IOUnitInfo) Len() int { return IOUnitInfoLen }

// Slot returns the state of slot s (1-based); SlotNone outside 1..MaxSlots.
func (u *IOUnitInfo) Slot(s int) uint8 {
	if s < 1 || s > MaxSlots {
		return SlotNone
	}
	b := u.ControllerList[(s-1)/2]
	if s%2 == 1 {
		return b >> 4
	}
	return b & 0xf
}

// SetSlot sets the state of slot s (1-based).
func (u *IOUnitInfo) SetSlot(s int, state uint8) error {
	if s < 1 || s > MaxSlots || state > 0xf {
		return encodeErr("IOUnitInfo", "controller_list", ErrBadValue)
	}
	i := (s - 1) / 2
	if s%2 == 1 {
		u.ControllerList[i] = u.ControllerList[i]&0x0f | state<<4
	} else {
		u.ControllerList[i] = u.ControllerList[i]&0xf0 | state
	}
	return nil
}

// Present lists the slots with an IOC, among the first MaxControllers.
func (u *IOUnitInfo) Present() []int {
	var out []int
	for s := 1; s <= int(u.MaxControllers); s++ {
		if u.Slot(s) == SlotPresent {
			out = append(out, s)
		}
	}
	return out
}

// Encode writes u into b[:132].
func (u *IOUnitInfo) Encode(b []byte) error {
	if len(b) < IOUnitInfoLen {
		return encodeErr("IOUnitInfo", "buffer", ErrShortBuffer)
	}
	be.PutUint16(b[0:], u.ChangeID)
	b[2], b[3] = u.MaxControllers, u.DiagOptionROM
	copy(b[4:IOUnitInfoLen], u.ControllerList[:])
	return nil
}

// DecodeIOUnitInfo decodes b[:132].
func DecodeIOUnitInfo(b []byte) (IOUnitInfo, error) {
	if len(b) < IOUnitInfoLen {
		return IOUnitInfo{}, decodeErr("IOUnitInfo", "buffer", len(b), ErrShortBuffer)
	}
	u := IOUnitInfo{ChangeID: be.Uint16(b[0:]), MaxControllers: b[2], DiagOptionROM: b[3]}
	copy(u.ControllerList[:], b[4:IOUnitInfoLen])
	return u, nil
}

// SRP I/O class values (srpd.h) and what ib_srpt reports.
const (
	IOClassSRPRev10  = 0xff00
	IOClassSRPRev16A = 0x0100
	// SRPIOSubclass, SRPProtocol and SRPProtocolVersion are ib_srpt's
	// values (srpt_get_ioc).
	SRPIOSubclass      = 0x609e
	SRPProtocol        = 0x0108
	SRPProtocolVersion = 0x0001
)

// IOControllerProfile is the DM IOControllerProfile attribute (128 bytes).
type IOControllerProfile struct {
	GUID             uint64
	VendorID         uint32 // 24 bits
	DeviceID         uint32
	DeviceVersion    uint16
	SubsysVendorID   uint32 // 24 bits
	SubsysDeviceID   uint32
	IOClass          uint16
	IOSubclass       uint16
	Protocol         uint16
	ProtocolVersion  uint16
	SendQueueDepth   uint16
	RDMAReadDepth    uint8
	SendSize         uint32 // the largest IU the controller accepts
	RDMASize         uint32
	OpCapMask        uint8
	NumServices      uint8
	ID               string // at most 64 bytes, NUL-padded
	ServiceConnMask  uint16 // bytes 36–37 (reserved in srpd.h)
	InitiatorsSupMsk uint16 // bytes 38–39 (reserved in srpd.h)
}

// Len is IOControllerProfileLen.
func (*IOControllerProfile) Len() int { return IOControllerProfileLen }

// Encode writes p into b[:128].
func (p *IOControllerProfile) Encode(b []byte) error {
	if len(b) < IOControllerProfileLen {
		return encodeErr("IOControllerProfile", "buffer", ErrShortBuffer)
	}
	switch {
	case p.VendorID > vendorIDMax:
		return encodeErr("IOControllerProfile", "vendor_id", ErrBadValue)
	case p.SubsysVendorID > vendorIDMax:
		return encodeErr("IOControllerProfile", "subsys_vendor_id", ErrBadValue)
	case len(p.ID) > iocIDLen:
		return encodeErr("IOControllerProfile", "id", ErrBadValue)
	}
	be.PutUint64(b[0:], p.GUID)
	be.PutUint32(b[8:], p.VendorID)
	be.PutUint32(b[12:], p.DeviceID)
	be.PutUint16(b[16:], p.DeviceVersion)
	b[18], b[19] = 0, 0
	be.PutUint32(b[20:], p.SubsysVendorID)
	be.PutUint32(b[24:], p.SubsysDeviceID)
	be.PutUint16(b[28:], p.IOClass)
	be.PutUint16(b[30:], p.IOSubclass)
	be.PutUint16(b[32:], p.Protocol)
	be.PutUint16(b[34:], p.ProtocolVersion)
	be.PutUint16(b[36:], p.ServiceConnMask)
	be.PutUint16(b[38:], p.InitiatorsSupMsk)
	be.PutUint16(b[40:], p.SendQueueDepth)
	b[42], b[43] = 0, p.RDMAReadDepth
	be.PutUint32(b[44:], p.SendSize)
	be.PutUint32(b[48:], p.RDMASize)
	b[52], b[53], b[54] = p.OpCapMask, 0, p.NumServices
	clear(b[55:64])
	putString(b[64:IOControllerProfileLen], p.ID)
	return nil
}

// DecodeIOControllerProfile decodes b[:128].
func DecodeIOControllerProfile(b []byte) (IOControllerProfile, error) {
	if len(b) < IOControllerProfileLen {
		return IOControllerProfile{}, decodeErr("IOControllerProfile", "buffer", len(b), ErrShortBuffer)
	}
	return IOControllerProfile{
		GUID:             be.Uint64(b[0:]),
		VendorID:         be.Uint32(b[8:]) & vendorIDMax,
		DeviceID:         be.Uint32(b[12:]),
		DeviceVersion:    be.Uint16(b[16:]),
		SubsysVendorID:   be.Uint32(b[20:]) & vendorIDMax,
		SubsysDeviceID:   be.Uint32(b[24:]),
		IOClass:          be.Uint16(b[28:]),
		IOSubclass:       be.Uint16(b[30:]),
		Protocol:         be.Uint16(b[32:]),
		ProtocolVersion:  be.Uint16(b[34:]),
		ServiceConnMask:  be.Uint16(b[36:]),
		InitiatorsSupMsk: be.Uint16(b[38:]),
		SendQueueDepth:   be.Uint16(b[40:]),
		RDMAReadDepth:    b[43],
		SendSize:         be.Uint32(b[44:]),
		RDMASize:         be.Uint32(b[48:]),
		OpCapMask:        b[52],
		NumServices:      b[54],
		ID:               cString(b[64:IOControllerProfileLen]),
	}, nil
}

// ServiceEntry is one entry of the DM ServiceEntries attribute.
type ServiceEntry struct {
	Name string // at most 40 bytes, NUL-padded
	ID   uint64
}

// SRPServicePrefix starts the name of an SRP target's service entry;
// 16 hex digits of its id_ext follow (srp_daemon matches "SRP.T10:%16s").
const SRPServicePrefix = "SRP.T10:"

const idExtDigits = 16

// SRPIDExt returns the id_ext of an SRP service entry: the 16 characters
// after "SRP.T10:", parsed as hex; ok is false for other services.
func (e ServiceEntry) SRPIDExt() (idExt uint64, ok bool) {
	rest, found := strings.CutPrefix(e.Name, SRPServicePrefix)
	if !found || len(rest) < idExtDigits {
		return 0, false
	}
	var v uint64
	for _, c := range rest[:idExtDigits] {
		d, ok := hexDigit(c)
		if !ok {
			return 0, false
		}
		v = v<<4 | uint64(d)
	}
	return v, true
}

func hexDigit(c rune) (uint8, bool) {
	switch {
	case c >= '0' && c <= '9':
		return uint8(c - '0'), true
	case c >= 'a' && c <= 'f':
		return uint8(c - 'a' + 10), true
	case c >= 'A' && c <= 'F':
		return uint8(c - 'A' + 10), true
	}
	return 0, false
}

// SRPServiceName is the service entry name ib_srpt gives id_ext.
func SRPServiceName(idExt uint64) string { return fmt.Sprintf("%s%016x", SRPServicePrefix, idExt) }

// ServiceEntries is the DM ServiceEntries attribute: up to four entries.
type ServiceEntries []ServiceEntry

// Len is 4 × 48 = 192: the attribute always has four slots.
func (ServiceEntries) Len() int { return ServiceEntriesPerMAD * ServiceEntryLen }

// Encode writes the entries into b[:192], unused slots as zeros.
func (s ServiceEntries) Encode(b []byte) error {
	if len(b) < s.Len() {
		return encodeErr("ServiceEntries", "buffer", ErrShortBuffer)
	}
	if len(s) > ServiceEntriesPerMAD {
		return encodeErr("ServiceEntries", "count", ErrBadValue)
	}
	clear(b[:s.Len()])
	for i, e := range s {
		if len(e.Name) > serviceNameLen {
			return encodeErr("ServiceEntries", "name", ErrBadValue)
		}
		o := i * ServiceEntryLen
		putString(b[o:o+serviceNameLen], e.Name)
		be.PutUint64(b[o+serviceNameLen:], e.ID)
	}
	return nil
}

// DecodeServiceEntries decodes n entries (1..4) from b.
func DecodeServiceEntries(b []byte, n int) (ServiceEntries, error) {
	if n < 0 || n > ServiceEntriesPerMAD {
		return nil, decodeErr("ServiceEntries", "count", 0, ErrBadValue)
	}
	if len(b) < n*ServiceEntryLen {
		return nil, decodeErr("ServiceEntries", "buffer", len(b), ErrShortBuffer)
	}
	out := make(ServiceEntries, n)
	for i := range out {
		o := i * ServiceEntryLen
		out[i] = ServiceEntry{Name: cString(b[o : o+serviceNameLen]), ID: be.Uint64(b[o+serviceNameLen:])}
	}
	return out, nil
}

// ServiceEntriesMod is the attribute modifier of a ServiceEntries Get:
// slot (bits 31–16), last (15–8) and first (7–0) entry index, first..last
// spanning at most four entries.
func ServiceEntriesMod(slot int, first, last uint8) uint32 {
	return uint32(slot)<<16 | uint32(last)<<8 | uint32(first)
}

// ParseServiceEntriesMod splits a ServiceEntries attribute modifier.
func ParseServiceEntriesMod(mod uint32) (slot int, first, last uint8) {
	return int(mod >> 16), uint8(mod), uint8(mod >> 8)
}
