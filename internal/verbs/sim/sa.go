package sim

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/srp-mpathd/srp-mpathd/internal/srp/mad"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
)

// SMConfig configures the subnet manager of one link.
type SMConfig struct {
	// LID is the SM's LID: SA MADs sent to it over the link are answered.
	// The link's ports should carry it as their SMLID.
	LID uint16
	// NoMaskMatch clears ClassPortInfo.CapabilityMask bit 13, so clients
	// must walk the NodeRecord table instead of asking for DM ports only
	// (srp_daemon's fallback path).
	NoMaskMatch bool
	// DenyPathRecords makes every PathRecord query fail with the SA status
	// "request denied", to test that clients read the status.
	DenyPathRecords bool
}

// Defaults of the simulated SA's answers.
const (
	linkLocalPrefix = 0xfe80000000000000
	// simMTU4096 and simRate are the PathRecord MTU (IBA code 5 = 4096)
	// and rate (code 7 = 40 Gb/s) the SA reports.
	simMTU4096 = 5
	simRate    = 7
	// simPktLife is the PathRecord packet lifetime exponent.
	simPktLife = 18
	// simRespTime is the SA's RespTimeValue in ClassPortInfo.
	simRespTime = 18
	// baseCapMask is the PortInfo capability mask of every CA port
	// (IsTrapSupported|IsAutomaticMigrationSupported|IsSLMappingSupported|
	// IsSystemImageGUIDSupported|IsCommunicationManagementSupported).
	baseCapMask = 0x0001_0868
)

// SubnetManager is the subnet manager and subnet administrator of one link
// (the link stands for a switched subnet): it answers SA queries about the
// link's InfiniBand ports, keeps trap subscriptions, and sends Reports of
// traps 64 (GID in service), 65 (GID out of service) and 144 (capability
// change) to the subscribers.
type SubnetManager struct {
	f            *Fabric
	link         *Link
	cfg          SMConfig
	subs         []Subscription
	outOfService map[*port]bool
	nextTID      uint64
	reportResps  int
	reportsSent  int
}

// Subscription is one trap subscription an SA holds.
type Subscription struct {
	Trap uint16
	// Subscriber is the port that sent the InformInfo.
	Subscriber PortRef
	mp         *madPort
}

// AddSubnetManager starts a subnet manager on link l.
func (f *Fabric) AddSubnetManager(l *Link, cfg SMConfig) (*SubnetManager, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l == nil || cfg.LID == 0 {
		return nil, fmt.Errorf("add subnet manager: %w", ErrBadConfig)
	}
	if f.mad.sms == nil {
		f.mad.sms = map[*Link]*SubnetManager{}
	}
	if f.mad.sms[l] != nil {
		return nil, fmt.Errorf("add subnet manager on %v: %w", l, ErrExists)
	}
	sm := &SubnetManager{f: f, link: l, cfg: cfg, outOfService: map[*port]bool{}}
	f.mad.sms[l] = sm
	return sm, nil
}

// LID is the SM's LID.
func (sm *SubnetManager) LID() uint16 {
	sm.f.mu.Lock()
	defer sm.f.mu.Unlock()
	return sm.cfg.LID
}

// Subscriptions lists the trap subscriptions in the order they were made.
func (sm *SubnetManager) Subscriptions() []Subscription {
	sm.f.mu.Lock()
	defer sm.f.mu.Unlock()
	return slices.Clone(sm.subs)
}

// ReportResps counts the ReportResps subscribers sent back.
func (sm *SubnetManager) ReportResps() int {
	sm.f.mu.Lock()
	defer sm.f.mu.Unlock()
	return sm.reportResps
}

// ReportsSent counts the trap Reports the SA queued for subscribers.
func (sm *SubnetManager) ReportsSent() int {
	sm.f.mu.Lock()
	defer sm.f.mu.Unlock()
	return sm.reportsSent
}

// SetInService takes a port of the link out of the subnet (false) or
// brings it back (true), as a target's cable or HCA leaving and joining:
// the SA stops (starts) listing it and routing MADs to it, and sends trap
// 65 (64) with the port's GID to the subscribers. A no-op if unchanged.
func (sm *SubnetManager) SetInService(ref PortRef, in bool) error {
	f := sm.f
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := f.portByRef(ref)
	if err != nil {
		return err
	}
	if p.link != sm.link {
		return fmt.Errorf("port %s not on %v: %w", ref, sm.link, ErrBadConfig)
	}
	sm.setInServiceLocked(p, in)
	return nil
}

// setInServiceLocked records p's service state and sends trap 64 or 65 if
// it changed. Caller holds the fabric lock.
func (sm *SubnetManager) setInServiceLocked(p *port, in bool) {
	if sm.outOfService[p] == !in {
		return
	}
	trap := uint16(mad.TrapGIDInService)
	if in {
		delete(sm.outOfService, p)
	} else {
		sm.outOfService[p] = true
		trap = mad.TrapGIDOutOfService
	}
	n := sm.notice(trap, mad.NoticeTypeSM, mad.ProducerClassManager)
	n.SetGID(p.gids[0])
	sm.report(n)
}

// Reregister asks every port of the link to re-register (the SM lost its
// state): subscriptions are dropped and each port reports
// EventClientReregister.
func (sm *SubnetManager) Reregister() {
	f := sm.f
	f.mu.Lock()
	defer f.mu.Unlock()
	sm.subs = nil
	now := f.clk.Now()
	for _, p := range sm.link.ports {
		p.emit(verbs.EventClientReregister, now)
	}
}

// Handover moves the SM to a new LID (another SM took over): the new SM
// has no subscriptions; every port's SMLID changes and it reports
// EventSMChange.
func (sm *SubnetManager) Handover(lid uint16) {
	f := sm.f
	f.mu.Lock()
	defer f.mu.Unlock()
	sm.cfg.LID = lid
	sm.subs = nil
	now := f.clk.Now()
	for _, p := range sm.link.ports {
		p.cfg.SMLID = lid
		p.emit(verbs.EventSMChange, now)
	}
}

// notice builds a generic Notice issued by the SM. Caller holds the lock.
func (sm *SubnetManager) notice(trap uint16, typ uint8, producer uint32) mad.Notice {
	n := mad.Notice{IsGeneric: true, Type: typ, ProducerType: producer, TrapNum: trap, IssuerLID: sm.cfg.LID}
	binary.BigEndian.PutUint64(n.IssuerGID[:8], linkLocalPrefix)
	binary.BigEndian.PutUint64(n.IssuerGID[8:], uint64(sm.cfg.LID))
	return n
}

// report sends n in an SA Report to every subscriber of its trap whose
// port is up and in service. Caller holds the lock.
func (sm *SubnetManager) report(n mad.Notice) {
	for _, s := range sm.subs {
		if s.Trap != n.TrapNum || s.mp.closed || !s.mp.p.active() || sm.outOfService[s.mp.p] {
			continue
		}
		sm.nextTID++
		body := make([]byte, mad.NoticeLen)
		_ = n.Encode(body) // a Notice the SM built always fits
		msg := mad.SAMessage{
			Header: mad.Header{BaseVersion: mad.BaseVersion, Class: mad.ClassSA, ClassVersion: mad.SAClassVersion,
				Method: mad.MethodReport, TID: sm.nextTID, AttrID: mad.AttrNotice},
			Data: body,
		}
		s.mp.deliver(report{mad: msg.Marshal(), from: verbs.MADAddr{LID: sm.cfg.LID, QPN: GSIQPN, QKey: GSIQKey,
			PKey: defaultPKey}})
		sm.reportsSent++
	}
}

// capChanged sends trap 144 for p's new capability mask. Caller holds the
// lock.
func (sm *SubnetManager) capChanged(p *port) {
	n := sm.notice(mad.TrapCapMaskChange, mad.NoticeTypeInformational, mad.ProducerCA)
	n.SetCapChange(p.cfg.LID, sm.f.capMask(p))
	n.IssuerLID = p.cfg.LID
	n.IssuerGID = p.gids[0]
	sm.report(n)
}

func (sm *SubnetManager) consumeResponse(h mad.Header) {
	if h.Method == mad.MethodReportResp {
		sm.reportResps++
	}
}

func (sm *SubnetManager) dropSubscriber(m *madPort) {
	sm.subs = slices.DeleteFunc(sm.subs, func(s Subscription) bool { return s.mp == m })
}

// capMask is p's PortInfo capability mask. Caller holds the lock.
func (f *Fabric) capMask(p *port) uint32 {
	c := uint32(baseCapMask)
	if f.mad.dms[p] != nil {
		c |= mad.CapIsDM
	}
	return c
}

// visible lists the link's IB ports the SA knows about. Caller holds the
// lock.
func (sm *SubnetManager) visible() []*port {
	var out []*port
	for _, p := range sm.link.ports {
		if p.cfg.LinkLayer == verbs.LinkInfiniBand && p.cfg.LID != 0 && p.active() && !sm.outOfService[p] {
			out = append(out, p)
		}
	}
	return out
}

func (sm *SubnetManager) byLID(lid uint16) *port {
	for _, p := range sm.visible() {
		if p.cfg.LID == lid {
			return p
		}
	}
	return nil
}

func (sm *SubnetManager) byGID(g verbs.GID) *port {
	for _, p := range sm.visible() {
		if slices.Contains(p.gids, g) {
			return p
		}
	}
	return nil
}

// handle answers one SA request. Caller holds the lock.
func (sm *SubnetManager) handle(from *madPort, h mad.Header, b []byte) []byte {
	req, err := mad.DecodeSA(b)
	if err != nil {
		return sm.reply(h, mad.StatusBadVersion, 0, nil)
	}
	if h.ClassVersion != mad.SAClassVersion {
		return sm.reply(h, mad.StatusBadVersion, 0, nil)
	}
	switch {
	case h.AttrID == mad.AttrClassPortInfo && h.Method == mad.MethodGet:
		cpi := mad.ClassPortInfo{BaseVersion: mad.BaseVersion, ClassVersion: mad.SAClassVersion,
			CapMask2RespTime: simRespTime}
		if !sm.cfg.NoMaskMatch {
			cpi.CapabilityMask = mad.SACapMaskMatch
		}
		return sm.reply(h, 0, 0, []mad.Record{&cpi})
	case h.AttrID == mad.AttrNodeRecord && (h.Method == mad.MethodGet || h.Method == mad.MethodGetTable):
		q, err := mad.DecodeNodeRecord(req.Data)
		if err != nil {
			return sm.reply(h, mad.StatusInvalidField, 0, nil)
		}
		var recs []mad.Record
		for _, p := range sm.visible() {
			if req.SA.CompMask&mad.NodeRecCompLID != 0 && p.cfg.LID != q.LID {
				continue
			}
			recs = append(recs, sm.nodeRecord(p))
		}
		return sm.records(h, mad.NodeRecordLen, recs)
	case h.AttrID == mad.AttrPortInfoRecord && (h.Method == mad.MethodGet || h.Method == mad.MethodGetTable):
		q, err := mad.DecodePortInfoRecord(req.Data)
		if err != nil {
			return sm.reply(h, mad.StatusInvalidField, 0, nil)
		}
		var recs []mad.Record
		for _, p := range sm.visible() {
			c := sm.f.capMask(p)
			if req.SA.CompMask&mad.PortInfoRecCompLID != 0 && p.cfg.LID != q.EndportLID {
				continue
			}
			if req.SA.CompMask&mad.PortInfoRecCompCapMask != 0 {
				if h.AttrMod&mad.PortInfoCapMaskMatchMod == 0 || sm.cfg.NoMaskMatch {
					if c != q.CapabilityMask {
						continue
					}
				} else if c&q.CapabilityMask != q.CapabilityMask {
					continue
				}
			}
			recs = append(recs, &mad.PortInfoRecord{EndportLID: p.cfg.LID, PortNum: p.num, SubnetPrefix: linkLocalPrefix,
				BaseLID: p.cfg.LID, MasterSMLID: sm.cfg.LID, CapabilityMask: c})
		}
		return sm.records(h, mad.PortInfoRecordLen, recs)
	case h.AttrID == mad.AttrPathRecord && (h.Method == mad.MethodGet || h.Method == mad.MethodGetTable):
		if sm.cfg.DenyPathRecords {
			return sm.reply(h, mad.SAStatusDenied, 0, nil)
		}
		q, err := mad.DecodePathRecord(req.Data)
		if err != nil {
			return sm.reply(h, mad.StatusInvalidField, 0, nil)
		}
		return sm.pathRecord(h, req.SA.CompMask, q)
	case h.AttrID == mad.AttrInformInfo && h.Method == mad.MethodSet:
		ii, err := mad.DecodeInformInfo(req.Data)
		if err != nil || !ii.IsGeneric {
			return sm.reply(h, mad.StatusInvalidField, 0, nil)
		}
		sm.subs = slices.DeleteFunc(sm.subs, func(s Subscription) bool { return s.mp == from && s.Trap == ii.TrapNum })
		if ii.Subscribe {
			sm.subs = append(sm.subs, Subscription{Trap: ii.TrapNum, Subscriber: PortRef{from.p.hca.name, from.p.num}, mp: from})
		}
		return sm.reply(h, 0, 0, []mad.Record{&ii})
	}
	return sm.reply(h, mad.StatusMethodAttrUnsupported, 0, nil)
}

func (sm *SubnetManager) nodeRecord(p *port) *mad.NodeRecord {
	return &mad.NodeRecord{LID: p.cfg.LID, BaseVersion: mad.BaseVersion, ClassVersion: mad.DMClassVersion,
		NodeType: mad.NodeTypeCA, NumPorts: uint8(len(p.hca.ports)), SystemImageGUID: p.hca.info.NodeGUID,
		NodeGUID: p.hca.info.NodeGUID, PortGUID: p.portGUID(), LocalPortNum: p.num, Description: p.hca.name}
}

// pathRecord answers the two PathRecord queries discovery makes: by
// SLID/DLID/PKey (is the P_Key shared?) and by SGID/DGID (where is this
// GID?). No path, or no shared partition, is "no records".
func (sm *SubnetManager) pathRecord(h mad.Header, comp uint64, q mad.PathRecord) []byte {
	var src, dst *port
	if comp&mad.PathRecCompSLID != 0 {
		src = sm.byLID(q.SLID)
	} else if comp&mad.PathRecCompSGID != 0 {
		src = sm.byGID(q.SGID)
	}
	if comp&mad.PathRecCompDLID != 0 {
		dst = sm.byLID(q.DLID)
	} else if comp&mad.PathRecCompDGID != 0 {
		dst = sm.byGID(q.DGID)
	}
	if src == nil || dst == nil {
		return sm.reply(h, mad.SAStatusNoRecords, 0, nil)
	}
	pkey := src.pkeys[0]
	if comp&mad.PathRecCompPKey != 0 {
		pkey = q.PKey
		if !pkeyShared(src.pkeys, dst.pkeys, pkey) {
			return sm.reply(h, mad.SAStatusNoRecords, 0, nil)
		}
	}
	rec := &mad.PathRecord{DGID: dst.gids[0], SGID: src.gids[0], DLID: dst.cfg.LID, SLID: src.cfg.LID,
		Reversible: true, NumbPath: 1, PKey: pkey, MTUSel: 2, MTU: simMTU4096, RateSel: 2, Rate: simRate,
		PktLifeSel: 2, PktLife: simPktLife, HopLimit: q.HopLimit, RawTraffic: q.RawTraffic}
	return sm.records(h, mad.PathRecordLen, []mad.Record{rec})
}

// records answers a Get (exactly one record, else "no records" or "too
// many") or a GetTable (every record, RMPP-reassembled).
func (sm *SubnetManager) records(h mad.Header, recLen int, recs []mad.Record) []byte {
	stride := uint16((recLen + 7) / 8)
	if h.Method == mad.MethodGet {
		switch {
		case len(recs) == 0:
			return sm.reply(h, mad.SAStatusNoRecords, stride, nil)
		case len(recs) > 1:
			return sm.reply(h, mad.SAStatusTooManyRecords, stride, nil)
		}
	}
	return sm.reply(h, 0, stride, recs)
}

// reply builds the response to h with status and records, AttrOffset
// words apart. A GetTable answer is one reassembled RMPP transfer.
func (sm *SubnetManager) reply(h mad.Header, status mad.Status, stride uint16, recs []mad.Record) []byte {
	m := mad.SAMessage{Header: h}
	m.Status = status
	switch h.Method {
	case mad.MethodGetTable:
		m.Method = mad.MethodGetTableResp
	default:
		m.Method = mad.MethodGetResp
	}
	step := int(stride) * 8
	if step == 0 && len(recs) == 1 {
		step = recs[0].Len()
	}
	m.Data = make([]byte, step*len(recs))
	for i, r := range recs {
		_ = r.Encode(m.Data[i*step:]) // records the SA built always fit
	}
	m.SA.AttrOffset = stride
	if h.Method == mad.MethodGetTable {
		m.SA.RMPPVersion, m.SA.RMPPType = mad.RMPPVersion, mad.RMPPTypeData
		m.SA.RMPPFlags = mad.RMPPFlagActive | mad.RMPPFlagFirst | mad.RMPPFlagLast
		m.SA.SegNum = 1
		m.SA.PayLen = uint32(len(m.Data) + saHeaderAfterRMPP)
	}
	return m.Marshal()
}

// saHeaderAfterRMPP is what an RMPP payload length counts besides the
// records: SM_Key, AttributeOffset, reserved and ComponentMask.
const saHeaderAfterRMPP = mad.SADataOffset - 36
