package sim

import (
	"fmt"
	"slices"

	"github.com/srp-mpathd/srp-mpathd/internal/srp/mad"
)

// IOController is one I/O controller of a simulated I/O unit: its profile
// and its service entries (Profile.NumServices is set from Services).
type IOController struct {
	Profile  mad.IOControllerProfile
	Services []mad.ServiceEntry
}

// SRPTController returns the controller LIO's ib_srpt presents
// (srpt_get_ioc): I/O class SRP rev 16a, one service "SRP.T10:<guid>" with
// id = guid, and maxReqSize as the send size (srp_max_req_size).
func SRPTController(serviceGUID uint64, maxReqSize uint32) IOController {
	const (
		srptQueueDepth = 128
		srptRDMARead   = 4
		srptRDMASize   = 64 << 10
		srptOpCap      = 0x2b
		mellanoxOUI    = 0x2c9
	)
	return IOController{
		Profile: mad.IOControllerProfile{GUID: serviceGUID, VendorID: mellanoxOUI, SubsysVendorID: mellanoxOUI,
			IOClass: mad.IOClassSRPRev16A, IOSubclass: mad.SRPIOSubclass, Protocol: mad.SRPProtocol,
			ProtocolVersion: mad.SRPProtocolVersion, SendQueueDepth: srptQueueDepth, RDMAReadDepth: srptRDMARead,
			SendSize: maxReqSize, RDMASize: srptRDMASize, OpCapMask: srptOpCap, ID: "Linux SRP target"},
		Services: []mad.ServiceEntry{{Name: mad.SRPServiceName(serviceGUID), ID: serviceGUID}},
	}
}

// DMAgent is the device-management agent of one port: an I/O unit whose
// controllers sit in slots 1..n. It answers DM Get IOUnitInfo,
// IOControllerProfile and ServiceEntries with ib_srpt's checks, and sets
// the port's IsDM capability bit while it exists.
type DMAgent struct {
	f           *Fabric
	p           *port
	controllers []IOController
	changeID    uint16
	queries     int
}

// AddDMAgent starts a DM agent on port ref with the given controllers.
// The SA of the port's link (if any) sends trap 144 for the new capability
// mask.
func (f *Fabric) AddDMAgent(ref PortRef, controllers ...IOController) (*DMAgent, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := f.portByRef(ref)
	if err != nil {
		return nil, err
	}
	if len(controllers) > mad.MaxSlots {
		return nil, fmt.Errorf("add dm agent %s: %d controllers: %w", ref, len(controllers), ErrBadConfig)
	}
	if f.mad.dms == nil {
		f.mad.dms = map[*port]*DMAgent{}
	}
	if f.mad.dms[p] != nil {
		return nil, fmt.Errorf("add dm agent %s: %w", ref, ErrExists)
	}
	a := &DMAgent{f: f, p: p, controllers: cloneControllers(controllers), changeID: 1}
	f.mad.dms[p] = a
	if sm := f.mad.sms[p.link]; sm != nil && p.link != nil {
		sm.capChanged(p)
	}
	return a, nil
}

func cloneControllers(cs []IOController) []IOController {
	out := make([]IOController, len(cs))
	for i, c := range cs {
		out[i] = IOController{Profile: c.Profile, Services: slices.Clone(c.Services)}
		out[i].Profile.NumServices = uint8(len(c.Services))
	}
	return out
}

// SetControllers replaces the I/O unit's controllers (its change ID moves).
func (a *DMAgent) SetControllers(controllers ...IOController) {
	a.f.mu.Lock()
	defer a.f.mu.Unlock()
	a.controllers = cloneControllers(controllers)
	a.changeID++
}

// Remove stops the agent: the port loses IsDM and the SA sends trap 144.
func (a *DMAgent) Remove() {
	f := a.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mad.dms[a.p] != a {
		return
	}
	delete(f.mad.dms, a.p)
	if sm := f.mad.sms[a.p.link]; sm != nil && a.p.link != nil {
		sm.capChanged(a.p)
	}
}

// Queries counts the DM requests the agent answered.
func (a *DMAgent) Queries() int {
	a.f.mu.Lock()
	defer a.f.mu.Unlock()
	return a.queries
}

// handle answers one DM request. Caller holds the fabric lock.
func (a *DMAgent) handle(h mad.Header, b []byte) []byte {
	a.queries++
	if _, err := mad.DecodeDM(b); err != nil || h.ClassVersion != mad.DMClassVersion {
		return a.reply(h, mad.StatusBadVersion, nil)
	}
	if h.Method != mad.MethodGet {
		if h.Method == mad.MethodSet && h.AttrID == mad.AttrClassPortInfo {
			return a.reply(h, 0, &mad.ClassPortInfo{BaseVersion: mad.BaseVersion, ClassVersion: mad.DMClassVersion})
		}
		return a.reply(h, mad.StatusMethodUnsupported, nil)
	}
	switch h.AttrID {
	case mad.AttrClassPortInfo:
		return a.reply(h, 0, &mad.ClassPortInfo{BaseVersion: mad.BaseVersion, ClassVersion: mad.DMClassVersion,
			CapMask2RespTime: simRespTime})
	case mad.AttrIOUnitInfo:
		u := mad.IOUnitInfo{ChangeID: a.changeID, MaxControllers: uint8(min(len(a.controllers), 0xff))}
		for i := range a.controllers {
			_ = u.SetSlot(i+1, mad.SlotPresent) // i+1 ≤ MaxSlots (AddDMAgent checked)
		}
		return a.reply(h, 0, &u)
	case mad.AttrIOControllerProfile:
		c, st := a.slot(int(h.AttrMod))
		if st != 0 {
			return a.reply(h, st, nil)
		}
		p := c.Profile
		return a.reply(h, 0, &p)
	case mad.AttrServiceEntries:
		slot, first, last := mad.ParseServiceEntriesMod(h.AttrMod)
		c, st := a.slot(slot)
		if st != 0 {
			return a.reply(h, st, nil)
		}
		// ib_srpt: reject first > last, more than four, or past the end.
		if first > last || int(last)-int(first) >= mad.ServiceEntriesPerMAD || int(last) >= len(c.Services) {
			return a.reply(h, mad.StatusInvalidField, nil)
		}
		es := mad.ServiceEntries(c.Services[first : int(last)+1])
		return a.reply(h, 0, es)
	}
	return a.reply(h, mad.StatusMethodAttrUnsupported, nil)
}

// slot returns the controller in slot s (1-based) or the DM status for a
// bad or empty slot.
func (a *DMAgent) slot(s int) (IOController, mad.Status) {
	if s < 1 || s > mad.MaxSlots {
		return IOController{}, mad.StatusInvalidField
	}
	if s > len(a.controllers) {
		return IOController{}, mad.DMStatusNoIOC
	}
	return a.controllers[s-1], 0
}

func (a *DMAgent) reply(h mad.Header, status mad.Status, rec mad.Record) []byte {
	m := mad.DMMessage{Header: h}
	m.Method = mad.MethodGetResp
	m.Status = status
	if rec != nil {
		m.Data = make([]byte, rec.Len())
		_ = rec.Encode(m.Data) // records the agent built always fit
	}
	b, _ := m.Marshal() // Data ≤ DMDataLen
	return b
}
