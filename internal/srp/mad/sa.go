package mad

import "github.com/srp-mpathd/srp-mpathd/internal/verbs"

// Record sizes (srpd.h, srp_ib_types.h; research/srp-protocol.md §4.2, §4.5).
const (
	ClassPortInfoLen  = 72
	NodeRecordLen     = 108
	PortInfoRecordLen = 58 // the part srp_daemon reads (endport LID .. error threshold)
	PathRecordLen     = 64
	InformInfoLen     = 36
	NoticeLen         = 80
	nodeDescLen       = 64
)

// Capability bits.
const (
	// CapIsDM is PortInfo.CapabilityMask bit 19: a device-management agent
	// (an I/O unit) answers on this port.
	CapIsDM = 1 << 19
	// SACapMaskMatch is SA ClassPortInfo.CapabilityMask bit 13: the SA can
	// match PortInfoRecord capability masks (srp_daemon then asks for the
	// DM ports only).
	SACapMaskMatch = 1 << 13
	// PortInfoCapMaskMatchMod is the PortInfoRecord GetTable attribute
	// modifier that asks for that match (SRP_SM_CAP_MASK_MATCH_ATTR_MOD).
	PortInfoCapMaskMatchMod = 1 << 31
)

// Component-mask bits (IBA 15.2.5).
const (
	NodeRecCompLID = 1 << 0

	PortInfoRecCompLID     = 1 << 0
	PortInfoRecCompCapMask = 1 << 7

	PathRecCompDGID       = 1 << 2
	PathRecCompSGID       = 1 << 3
	PathRecCompDLID       = 1 << 4
	PathRecCompSLID       = 1 << 5
	PathRecCompRawTraffic = 1 << 6
	PathRecCompHopLimit   = 1 << 9
	PathRecCompNumbPath   = 1 << 12
	PathRecCompPKey       = 1 << 13

	InformInfoCompLIDRangeBegin = 1 << 1
	InformInfoCompIsGeneric     = 1 << 4
	InformInfoCompSubscribe     = 1 << 5
	InformInfoCompType          = 1 << 6
	InformInfoCompTrapNum       = 1 << 7
	InformInfoCompQPN           = 1 << 8
	InformInfoCompProducerType  = 1 << 12
)

// Component masks of the queries srp_daemon sends.
const (
	// PathRecCompSharedPKey asks whether a P_Key is shared with a LID:
	// DLID|SLID|PKey (0x2030, srpd.c get_shared_pkeys).
	PathRecCompSharedPKey = PathRecCompDLID | PathRecCompSLID | PathRecCompPKey
	// PathRecCompByGID resolves a GID from a trap: DGID|SGID|RawTraffic|
	// HopLimit|NumbPath (0x124C).
	PathRecCompByGID = PathRecCompDGID | PathRecCompSGID | PathRecCompRawTraffic | PathRecCompHopLimit | PathRecCompNumbPath
	// InformInfoCompSubscribeMask / InformInfoCompUnsubscribeMask are the
	// masks of an InformInfo Set (0x10F2 / 0x11F2).
	InformInfoCompSubscribeMask = InformInfoCompLIDRangeBegin | InformInfoCompIsGeneric | InformInfoCompSubscribe |
		InformInfoCompType | InformInfoCompTrapNum | InformInfoCompProducerType
	InformInfoCompUnsubscribeMask = InformInfoCompSubscribeMask | InformInfoCompQPN
)

// ClassPortInfo is the ClassPortInfo attribute of any class (72 bytes).
type ClassPortInfo struct {
	BaseVersion    uint8
	ClassVersion   uint8
	CapabilityMask uint16
	// CapMask2RespTime: CapabilityMask2 (bits 31–5) | RespTimeValue (4–0).
	CapMask2RespTime uint32
	RedirectGID      verbs.GID
	RedirectTCSLFL   uint32
	RedirectLID      uint16
	RedirectPKey     uint16
	RedirectQP       uint32
	RedirectQKey     uint32
	TrapGID          verbs.GID
	TrapTCSLFL       uint32
	TrapLID          uint16
	TrapPKey         uint16
	TrapHLQP         uint32 // HopLimit (31–24) | QP (23–0)
	TrapQKey         uint32
}

// Len is ClassPortInfoLen.
func (*ClassPortInfo) Len() int { return ClassPortInfoLen }

// Encode writes c into b[:72].
func (c *ClassPortInfo) Encode(b []byte) error {
	if len(b) < ClassPortInfoLen {
		return encodeErr("ClassPortInfo", "buffer", ErrShortBuffer)
	}
	b[0], b[1] = c.BaseVersion, c.ClassVersion
	be.PutUint16(b[2:], c.CapabilityMask)
	be.PutUint32(b[4:], c.CapMask2RespTime)
	copy(b[8:24], c.RedirectGID[:])
	be.PutUint32(b[24:], c.RedirectTCSLFL)
	be.PutUint16(b[28:], c.RedirectLID)
	be.PutUint16(b[30:], c.RedirectPKey)
	be.PutUint32(b[32:], c.RedirectQP)
	be.PutUint32(b[36:], c.RedirectQKey)
	copy(b[40:56], c.TrapGID[:])
	be.PutUint32(b[56:], c.TrapTCSLFL)
	be.PutUint16(b[60:], c.TrapLID)
	be.PutUint16(b[62:], c.TrapPKey)
	be.PutUint32(b[64:], c.TrapHLQP)
	be.PutUint32(b[68:], c.TrapQKey)
	return nil
}

// DecodeClassPortInfo decodes b[:72].
func DecodeClassPortInfo(b []byte) (ClassPortInfo, error) {
	if len(b) < ClassPortInfoLen {
		return ClassPortInfo{}, decodeErr("ClassPortInfo", "buffer", len(b), ErrShortBuffer)
	}
	c := ClassPortInfo{
		BaseVersion:      b[0],
		ClassVersion:     b[1],
		CapabilityMask:   be.Uint16(b[2:]),
		CapMask2RespTime: be.Uint32(b[4:]),
		RedirectTCSLFL:   be.Uint32(b[24:]),
		RedirectLID:      be.Uint16(b[28:]),
		RedirectPKey:     be.Uint16(b[30:]),
		RedirectQP:       be.Uint32(b[32:]),
		RedirectQKey:     be.Uint32(b[36:]),
		TrapTCSLFL:       be.Uint32(b[56:]),
		TrapLID:          be.Uint16(b[60:]),
		TrapPKey:         be.Uint16(b[62:]),
		TrapHLQP:         be.Uint32(b[64:]),
		TrapQKey:         be.Uint32(b[68:]),
	}
	copy(c.RedirectGID[:], b[8:24])
	copy(c.TrapGID[:], b[40:56])
	return c, nil
}

// NodeType values of NodeInfo.
const (
	NodeTypeCA     = 1
	NodeTypeSwitch = 2
	NodeTypeRouter = 3
)

// NodeRecord is the SA NodeRecord (108 bytes): a LID and the NodeInfo and
// NodeDescription of the node behind it.
type NodeRecord struct {
	LID             uint16
	BaseVersion     uint8
	ClassVersion    uint8
	NodeType        uint8
	NumPorts        uint8
	SystemImageGUID uint64
	NodeGUID        uint64
	PortGUID        uint64
	PartitionCap    uint16
	DeviceID        uint16
	Revision        uint32
	LocalPortNum    uint8
	VendorID        uint32 // 24 bits
	Description     string // at most 64 bytes, NUL-padded on the wire
}

// Len is NodeRecordLen.
func (*NodeRecord) Len() int { return NodeRecordLen }

const vendorIDMax = 1<<24 - 1

// Encode writes n into b[:108].
func (n *NodeRecord) Encode(b []byte) error {
	if len(b) < NodeRecordLen {
		return encodeErr("NodeRecord", "buffer", ErrShortBuffer)
	}
	if n.VendorID > vendorIDMax {
		return encodeErr("NodeRecord", "vendor_id", ErrBadValue)
	}
	if len(n.Description) > nodeDescLen {
		return encodeErr("NodeRecord", "desc", ErrBadValue)
	}
	be.PutUint16(b[0:], n.LID)
	b[2], b[3] = 0, 0
	b[4], b[5], b[6], b[7] = n.BaseVersion, n.ClassVersion, n.NodeType, n.NumPorts
	be.PutUint64(b[8:], n.SystemImageGUID)
	be.PutUint64(b[16:], n.NodeGUID)
	be.PutUint64(b[24:], n.PortGUID)
	be.PutUint16(b[32:], n.PartitionCap)
	be.PutUint16(b[34:], n.DeviceID)
	be.PutUint32(b[36:], n.Revision)
	be.PutUint32(b[40:], uint32(n.LocalPortNum)<<24|n.VendorID)
	putString(b[44:NodeRecordLen], n.Description)
	return nil
}

// DecodeNodeRecord decodes b[:108].
func DecodeNodeRecord(b []byte) (NodeRecord, error) {
	if len(b) < NodeRecordLen {
		return NodeRecord{}, decodeErr("NodeRecord", "buffer", len(b), ErrShortBuffer)
	}
	pv := be.Uint32(b[40:])
	return NodeRecord{
		LID:             be.Uint16(b[0:]),
		BaseVersion:     b[4],
		ClassVersion:    b[5],
		NodeType:        b[6],
		NumPorts:        b[7],
		SystemImageGUID: be.Uint64(b[8:]),
		NodeGUID:        be.Uint64(b[16:]),
		PortGUID:        be.Uint64(b[24:]),
		PartitionCap:    be.Uint16(b[32:]),
		DeviceID:        be.Uint16(b[34:]),
		Revision:        be.Uint32(b[36:]),
		LocalPortNum:    uint8(pv >> 24),
		VendorID:        pv & vendorIDMax,
		Description:     cString(b[44:NodeRecordLen]),
	}, nil
}

// PortInfoRecord is the part of the SA PortInfoRecord that discovery uses
// (58 bytes, as srp_daemon's struct): the end port's LID and number and
// PortInfo up to ErrorThreshold. Rest keeps PortInfo bytes 28–57 (diag
// code .. error threshold) uninterpreted.
type PortInfoRecord struct {
	EndportLID     uint16
	PortNum        uint8
	MKey           uint64
	SubnetPrefix   uint64
	BaseLID        uint16
	MasterSMLID    uint16
	CapabilityMask uint32
	Rest           [PortInfoRecordLen - portInfoRestOff]byte
}

const portInfoRestOff = 28

// Len is PortInfoRecordLen.
func (*PortInfoRecord) Len() int { return PortInfoRecordLen }

// Encode writes p into b[:58].
func (p *PortInfoRecord) Encode(b []byte) error {
	if len(b) < PortInfoRecordLen {
		return encodeErr("PortInfoRecord", "buffer", ErrShortBuffer)
	}
	be.PutUint16(b[0:], p.EndportLID)
	b[2], b[3] = p.PortNum, 0
	be.PutUint64(b[4:], p.MKey)
	be.PutUint64(b[12:], p.SubnetPrefix)
	be.PutUint16(b[20:], p.BaseLID)
	be.PutUint16(b[22:], p.MasterSMLID)
	be.PutUint32(b[24:], p.CapabilityMask)
	copy(b[portInfoRestOff:PortInfoRecordLen], p.Rest[:])
	return nil
}

// DecodePortInfoRecord decodes b[:58].
func DecodePortInfoRecord(b []byte) (PortInfoRecord, error) {
	if len(b) < PortInfoRecordLen {
		return PortInfoRecord{}, decodeErr("PortInfoRecord", "buffer", len(b), ErrShortBuffer)
	}
	p := PortInfoRecord{
		EndportLID:     be.Uint16(b[0:]),
		PortNum:        b[2],
		MKey:           be.Uint64(b[4:]),
		SubnetPrefix:   be.Uint64(b[12:]),
		BaseLID:        be.Uint16(b[20:]),
		MasterSMLID:    be.Uint16(b[22:]),
		CapabilityMask: be.Uint32(b[24:]),
	}
	copy(p.Rest[:], b[portInfoRestOff:PortInfoRecordLen])
	return p, nil
}

// PathRecord is the SA PathRecord (64 bytes).
type PathRecord struct {
	ServiceID  uint64 // reserved before IBA 1.2; srp_daemon leaves it 0
	DGID       verbs.GID
	SGID       verbs.GID
	DLID       uint16
	SLID       uint16
	RawTraffic bool   // bit 31 of the word at 44
	FlowLabel  uint32 // 20 bits
	HopLimit   uint8
	TClass     uint8
	Reversible bool  // bit 7 of byte 49
	NumbPath   uint8 // 7 bits
	PKey       uint16
	QoSClass   uint16 // 12 bits
	SL         uint8  // 4 bits
	MTUSel     uint8  // 2 bits
	MTU        uint8  // 6 bits (IBA MTU code)
	RateSel    uint8  // 2 bits
	Rate       uint8  // 6 bits
	PktLifeSel uint8  // 2 bits
	PktLife    uint8  // 6 bits
	Preference uint8
}

// Path record field limits.
const (
	flowLabelMax = 1<<20 - 1
	qosClassMax  = 1<<12 - 1
	slMax        = 1<<4 - 1
	sel2Max      = 1<<2 - 1
	val6Max      = 1<<6 - 1
	numbPathMax  = 1<<7 - 1
	rawTraffic   = 1 << 31
	reversible   = 1 << 7
)

// Len is PathRecordLen.
func (*PathRecord) Len() int { return PathRecordLen }

// Encode writes p into b[:64].
func (p *PathRecord) Encode(b []byte) error {
	if len(b) < PathRecordLen {
		return encodeErr("PathRecord", "buffer", ErrShortBuffer)
	}
	switch {
	case p.FlowLabel > flowLabelMax:
		return encodeErr("PathRecord", "flow_label", ErrBadValue)
	case p.NumbPath > numbPathMax:
		return encodeErr("PathRecord", "numb_path", ErrBadValue)
	case p.QoSClass > qosClassMax || p.SL > slMax:
		return encodeErr("PathRecord", "qos_class_sl", ErrBadValue)
	case p.MTUSel > sel2Max || p.MTU > val6Max:
		return encodeErr("PathRecord", "mtu", ErrBadValue)
	case p.RateSel > sel2Max || p.Rate > val6Max:
		return encodeErr("PathRecord", "rate", ErrBadValue)
	case p.PktLifeSel > sel2Max || p.PktLife > val6Max:
		return encodeErr("PathRecord", "pkt_life", ErrBadValue)
	}
	be.PutUint64(b[0:], p.ServiceID)
	copy(b[8:24], p.DGID[:])
	copy(b[24:40], p.SGID[:])
	be.PutUint16(b[40:], p.DLID)
	be.PutUint16(b[42:], p.SLID)
	w := p.FlowLabel<<8 | uint32(p.HopLimit)
	if p.RawTraffic {
		w |= rawTraffic
	}
	be.PutUint32(b[44:], w)
	b[48] = p.TClass
	b[49] = p.NumbPath
	if p.Reversible {
		b[49] |= reversible
	}
	be.PutUint16(b[50:], p.PKey)
	be.PutUint16(b[52:], p.QoSClass<<4|uint16(p.SL))
	b[54] = p.MTUSel<<6 | p.MTU
	b[55] = p.RateSel<<6 | p.Rate
	b[56] = p.PktLifeSel<<6 | p.PktLife
	b[57] = p.Preference
	clear(b[58:PathRecordLen])
	return nil
}

// DecodePathRecord decodes b[:64]. Bits 30–28 of the word at 44 are
// reserved and dropped.
func DecodePathRecord(b []byte) (PathRecord, error) {
	if len(b) < PathRecordLen {
		return PathRecord{}, decodeErr("PathRecord", "buffer", len(b), ErrShortBuffer)
	}
	w := be.Uint32(b[44:])
	qs := be.Uint16(b[52:])
	p := PathRecord{
		ServiceID:  be.Uint64(b[0:]),
		DLID:       be.Uint16(b[40:]),
		SLID:       be.Uint16(b[42:]),
		RawTraffic: w&rawTraffic != 0,
		FlowLabel:  w >> 8 & flowLabelMax,
		HopLimit:   uint8(w),
		TClass:     b[48],
		Reversible: b[49]&reversible != 0,
		NumbPath:   b[49] & numbPathMax,
		PKey:       be.Uint16(b[50:]),
		QoSClass:   qs >> 4,
		SL:         uint8(qs) & slMax,
		MTUSel:     b[54] >> 6,
		MTU:        b[54] & val6Max,
		RateSel:    b[55] >> 6,
		Rate:       b[55] & val6Max,
		PktLifeSel: b[56] >> 6,
		PktLife:    b[56] & val6Max,
		Preference: b[57],
	}
	copy(p.DGID[:], b[8:24])
	copy(p.SGID[:], b[24:40])
	return p, nil
}

// Trap numbers discovery subscribes to (srpd.h; 65 is srp-mpathd's
// addition, research/srp-protocol.md §4.5).
const (
	TrapGIDInService    = 64
	TrapGIDOutOfService = 65
	TrapCapMaskChange   = 144
)

// Notice/InformInfo types and producer types (IBA 13.4.8.1).
const (
	NoticeTypeUrgent        = 1
	NoticeTypeSecurity      = 2
	NoticeTypeSM            = 3
	NoticeTypeInformational = 4
	ProducerCA              = 1
	ProducerSwitch          = 2
	ProducerRouter          = 3
	ProducerClassManager    = 4
)

// LIDRangeAll as InformInfo.LIDRangeBegin subscribes for every LID.
const LIDRangeAll = 0xffff

// InformInfo is the SA InformInfo attribute (36 bytes): a subscription to
// (or cancellation of) a trap. Only the generic form is modelled; for it
// TrapNum is the trap number.
type InformInfo struct {
	GID           verbs.GID
	LIDRangeBegin uint16
	LIDRangeEnd   uint16
	IsGeneric     bool
	Subscribe     bool
	Type          uint16
	TrapNum       uint16
	QPN           uint32 // 24 bits
	RespTime      uint8  // 5 bits
	ProducerType  uint32 // 24 bits
}

const (
	qpnMax      = 1<<24 - 1
	respTimeMax = 1<<5 - 1
)

// Len is InformInfoLen.
func (*InformInfo) Len() int { return InformInfoLen }

// Encode writes i into b[:36].
func (i *InformInfo) Encode(b []byte) error {
	if len(b) < InformInfoLen {
		return encodeErr("InformInfo", "buffer", ErrShortBuffer)
	}
	switch {
	case i.QPN > qpnMax || i.RespTime > respTimeMax:
		return encodeErr("InformInfo", "qpn_resp_time_val", ErrBadValue)
	case i.ProducerType > vendorIDMax:
		return encodeErr("InformInfo", "producer_type", ErrBadValue)
	}
	copy(b[0:16], i.GID[:])
	be.PutUint16(b[16:], i.LIDRangeBegin)
	be.PutUint16(b[18:], i.LIDRangeEnd)
	b[20], b[21] = 0, 0
	b[22], b[23] = boolByte(i.IsGeneric), boolByte(i.Subscribe)
	be.PutUint16(b[24:], i.Type)
	be.PutUint16(b[26:], i.TrapNum)
	be.PutUint32(b[28:], i.QPN<<8|uint32(i.RespTime))
	be.PutUint32(b[32:], i.ProducerType) // byte 32 is reserved: the type has 24 bits
	return nil
}

// DecodeInformInfo decodes b[:36].
func DecodeInformInfo(b []byte) (InformInfo, error) {
	if len(b) < InformInfoLen {
		return InformInfo{}, decodeErr("InformInfo", "buffer", len(b), ErrShortBuffer)
	}
	q := be.Uint32(b[28:])
	i := InformInfo{
		LIDRangeBegin: be.Uint16(b[16:]),
		LIDRangeEnd:   be.Uint16(b[18:]),
		IsGeneric:     b[22] != 0,
		Subscribe:     b[23] != 0,
		Type:          be.Uint16(b[24:]),
		TrapNum:       be.Uint16(b[26:]),
		QPN:           q >> 8,
		RespTime:      uint8(q) & respTimeMax,
		ProducerType:  be.Uint32(b[32:]) & vendorIDMax,
	}
	copy(i.GID[:], b[0:16])
	return i, nil
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// Subscription returns the InformInfo srp_daemon sends for trap (with type
// and producer as it uses them: 64 and 65 come from the SM as class
// manager, 144 from a CA as informational), subscribe or not. qpn is only
// sent on unsubscribe.
func Subscription(trap uint16, subscribe bool, qpn uint32) InformInfo {
	i := InformInfo{LIDRangeBegin: LIDRangeAll, IsGeneric: true, Subscribe: subscribe, TrapNum: trap,
		Type: NoticeTypeSM, ProducerType: ProducerClassManager}
	if trap == TrapCapMaskChange {
		i.Type, i.ProducerType = NoticeTypeInformational, ProducerCA
	}
	if !subscribe {
		i.QPN = qpn
	}
	return i
}

// SubscriptionCompMask is the component mask of an InformInfo Set.
func SubscriptionCompMask(subscribe bool) uint64 {
	if subscribe {
		return InformInfoCompSubscribeMask
	}
	return InformInfoCompUnsubscribeMask
}

// Notice is the Notice attribute (80 bytes) an SA Report carries. Only
// the generic form is modelled.
type Notice struct {
	IsGeneric    bool
	Type         uint8  // 7 bits
	ProducerType uint32 // 24 bits
	TrapNum      uint16
	IssuerLID    uint16
	Toggle       bool
	Count        uint16 // 15 bits
	DataDetails  [noticeDetailsLen]byte
	IssuerGID    verbs.GID
}

const (
	noticeDetailsOff = 10
	noticeDetailsLen = 54
	noticeGeneric    = 1 << 7
	noticeTypeMax    = 1<<7 - 1
	noticeToggle     = 1 << 15
	noticeCountMax   = 1<<15 - 1
	// noticeGIDOff is where traps 64–67 carry their GID (ntc_64_67).
	noticeGIDOff = 16
	// noticeLIDOff and noticeCapOff are the LID and new capability mask of
	// trap 144 (ntc_144).
	noticeLIDOff = 12
	noticeCapOff = 16
)

// Len is NoticeLen.
func (*Notice) Len() int { return NoticeLen }

// Encode writes n into b[:80].
func (n *Notice) Encode(b []byte) error {
	if len(b) < NoticeLen {
		return encodeErr("Notice", "buffer", ErrShortBuffer)
	}
	switch {
	case n.Type > noticeTypeMax:
		return encodeErr("Notice", "type", ErrBadValue)
	case n.ProducerType > vendorIDMax:
		return encodeErr("Notice", "producer_type", ErrBadValue)
	case n.Count > noticeCountMax:
		return encodeErr("Notice", "toggle_count", ErrBadValue)
	}
	be.PutUint32(b[0:], n.ProducerType)
	b[0] = n.Type
	if n.IsGeneric {
		b[0] |= noticeGeneric
	}
	be.PutUint16(b[4:], n.TrapNum)
	be.PutUint16(b[6:], n.IssuerLID)
	tc := n.Count
	if n.Toggle {
		tc |= noticeToggle
	}
	be.PutUint16(b[8:], tc)
	copy(b[noticeDetailsOff:noticeDetailsOff+noticeDetailsLen], n.DataDetails[:])
	copy(b[64:80], n.IssuerGID[:])
	return nil
}

// DecodeNotice decodes b[:80].
func DecodeNotice(b []byte) (Notice, error) {
	if len(b) < NoticeLen {
		return Notice{}, decodeErr("Notice", "buffer", len(b), ErrShortBuffer)
	}
	tc := be.Uint16(b[8:])
	n := Notice{
		IsGeneric:    b[0]&noticeGeneric != 0,
		Type:         b[0] & noticeTypeMax,
		ProducerType: be.Uint32(b[0:]) & vendorIDMax,
		TrapNum:      be.Uint16(b[4:]),
		IssuerLID:    be.Uint16(b[6:]),
		Toggle:       tc&noticeToggle != 0,
		Count:        tc & noticeCountMax,
	}
	copy(n.DataDetails[:], b[noticeDetailsOff:noticeDetailsOff+noticeDetailsLen])
	copy(n.IssuerGID[:], b[64:80])
	return n, nil
}

// GID returns the GID of traps 64–67 (data details offset 16 of the
// Notice).
func (n *Notice) GID() verbs.GID {
	var g verbs.GID
	copy(g[:], n.DataDetails[noticeGIDOff-noticeDetailsOff:])
	return g
}

// SetGID stores the GID of traps 64–67.
func (n *Notice) SetGID(g verbs.GID) {
	copy(n.DataDetails[noticeGIDOff-noticeDetailsOff:], g[:])
}

// CapChange returns trap 144's LID and new capability mask.
func (n *Notice) CapChange() (lid uint16, capMask uint32) {
	d := n.DataDetails[:]
	return be.Uint16(d[noticeLIDOff-noticeDetailsOff:]), be.Uint32(d[noticeCapOff-noticeDetailsOff:])
}

// SetCapChange stores trap 144's LID and new capability mask.
func (n *Notice) SetCapChange(lid uint16, capMask uint32) {
	d := n.DataDetails[:]
	be.PutUint16(d[noticeLIDOff-noticeDetailsOff:], lid)
	be.PutUint32(d[noticeCapOff-noticeDetailsOff:], capMask)
}
