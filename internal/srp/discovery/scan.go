package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/srp/mad"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
)

// Defaults of Options (srp_daemon's: -t 5000 ms, -r 3).
const (
	DefaultMADTimeout = 5 * time.Second
	DefaultMADRetries = 3
)

// Management addressing (srpd.h MY_IB_QP1_WELL_KNOWN_Q_KEY; QP1 is the
// GSI of every SA and DM agent).
const (
	gsiQPN  = 1
	gsiQKey = 0x80010000
	// pkeyBase masks the partition number (bit 15 is full membership).
	pkeyBase = 0x7fff
)

// Options select and tune a scan.
type Options struct {
	// Ports restricts the scan to these local ports; empty means every
	// InfiniBand port of every device.
	Ports []PortRef
	// PKeys restricts the scan to these partitions (compared without the
	// membership bit: 0x8001 selects 0x0001 too); empty means every
	// P_Key in each port's table.
	PKeys []uint16
	// Rules allow or deny targets and add per-target options.
	Rules Rules
	// Static targets (RoCE has no SA) are passed through the rules and
	// returned as found.
	Static []Target
	// MADTimeout bounds one MAD round trip; MADRetries is how many times a
	// MAD that timed out is sent again (with a new transaction id).
	MADTimeout time.Duration
	MADRetries int
	// Logger receives one line per skipped port, partition or IOC; nil
	// discards.
	Logger *slog.Logger
}

func (o *Options) withDefaults() Options {
	c := *o
	if c.MADTimeout <= 0 {
		c.MADTimeout = DefaultMADTimeout
	}
	if c.MADRetries <= 0 {
		c.MADRetries = DefaultMADRetries
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// wantPKey reports whether the options select pkey.
func (o *Options) wantPKey(pkey uint16) bool {
	return len(o.PKeys) == 0 || slices.ContainsFunc(o.PKeys, func(p uint16) bool { return p&pkeyBase == pkey&pkeyBase })
}

// remotePort is a DM-capable port found through the SA.
type remotePort struct {
	LID    uint16
	Prefix uint64
	GUID   uint64
}

func (r remotePort) gid() verbs.GID { return gidFrom(r.Prefix, r.GUID) }

// scanner runs the discovery MADs of one local port. It is used by one
// goroutine at a time.
type scanner struct {
	ref  PortRef
	dev  verbs.Device
	mp   verbs.MADPort
	opts *Options
	log  *slog.Logger
	tid  *atomic.Uint64

	attr verbs.PortAttr
	sa   verbs.MADAddr
}

func (s *scanner) opErr(op string, err error) error { return &OpError{Op: op, Port: s.ref, Err: err} }

// begin reads the port's state: it must be an active InfiniBand port with
// a subnet manager. SA MADs go to the SM's LID on P_Key index 0, as
// srp_daemon sends them.
func (s *scanner) begin() error {
	attr, err := s.dev.Port(s.ref.Port)
	if err != nil {
		return s.opErr("query port", err)
	}
	switch {
	case attr.LinkLayer != verbs.LinkInfiniBand:
		return s.opErr("query port", fmt.Errorf("link layer %v: %w", attr.LinkLayer, ErrNotInfiniBand))
	case attr.State != verbs.PortActive:
		return s.opErr("query port", fmt.Errorf("state %v: %w", attr.State, ErrPortDown))
	case attr.SMLID == 0:
		return s.opErr("query port", ErrNoSM)
	}
	pkey0, err := s.dev.PKey(s.ref.Port, 0)
	if err != nil {
		return s.opErr("query pkey 0", err)
	}
	s.attr = attr
	s.sa = verbs.MADAddr{LID: attr.SMLID, QPN: gsiQPN, QKey: gsiQKey, SL: attr.SMSL, PKey: pkey0}
	return nil
}

// nextTID returns a transaction id; 0 is skipped ("OpenSM ignores it",
// srp_daemon).
func (s *scanner) nextTID() uint64 {
	for {
		if t := s.tid.Add(1); t != 0 {
			return t
		}
	}
}

// exchange sends req (its TID rewritten per try) and returns the response
// of the same transaction; a timeout is retried MADRetries times.
func (s *scanner) exchange(ctx context.Context, op string, req []byte, to verbs.MADAddr) (mad.Header, []byte, error) {
	var err error
	for range s.opts.MADRetries {
		tid := s.nextTID()
		be.PutUint64(req[8:], tid)
		var resp []byte
		resp, err = s.mp.Send(ctx, req, to, s.opts.MADTimeout)
		if err != nil {
			if errors.Is(err, verbs.ErrTimeout) && ctx.Err() == nil {
				continue
			}
			return mad.Header{}, nil, s.opErr(op, err)
		}
		h, derr := mad.DecodeHeader(resp)
		if derr != nil {
			return h, nil, s.opErr(op, fmt.Errorf("%w: %w", ErrBadResponse, derr))
		}
		if h.TID != tid || !h.Method.IsResponse() {
			return h, nil, s.opErr(op, fmt.Errorf("%w: transaction %#x method %v", ErrBadResponse, h.TID, h.Method))
		}
		return h, resp, nil
	}
	return mad.Header{}, nil, s.opErr(op, err)
}

// saQuery sends one SA request and returns the response; a non-zero MAD
// status is an error (*mad.StatusError inside *OpError) — the check
// srp_daemon does not make.
func (s *scanner) saQuery(ctx context.Context, method mad.Method, attr mad.AttrID, mod uint32, comp uint64,
	rec mad.Record) (mad.SAMessage, error) {
	op := "SA " + method.String() + " " + attr.Name(mad.ClassSA)
	req, err := mad.SARequest(method, attr, mod, 0, comp, rec)
	if err != nil {
		return mad.SAMessage{}, s.opErr(op, err)
	}
	_, resp, err := s.exchange(ctx, op, req, s.sa)
	if err != nil {
		return mad.SAMessage{}, err
	}
	m, err := mad.DecodeSA(resp)
	if err != nil {
		return m, s.opErr(op, fmt.Errorf("%w: %w", ErrBadResponse, err))
	}
	if m.AttrID != attr {
		return m, s.opErr(op, fmt.Errorf("%w: attribute %#04x", ErrBadResponse, uint16(m.AttrID)))
	}
	if err := m.Status.Err(mad.ClassSA, attr); err != nil {
		return m, s.opErr(op, err)
	}
	return m, nil
}

// dmQuery sends one DM Get to the port with dlid through partition pkey.
func (s *scanner) dmQuery(ctx context.Context, dlid, pkey uint16, attr mad.AttrID, mod uint32) (mad.DMMessage, error) {
	op := "DM Get " + attr.Name(mad.ClassDM)
	req, err := mad.DMRequest(mad.MethodGet, attr, mod, 0, nil)
	if err != nil {
		return mad.DMMessage{}, s.opErr(op, err)
	}
	to := verbs.MADAddr{LID: dlid, QPN: gsiQPN, QKey: gsiQKey, PKey: pkey}
	_, resp, err := s.exchange(ctx, op, req, to)
	if err != nil {
		return mad.DMMessage{}, err
	}
	m, err := mad.DecodeDM(resp)
	if err != nil {
		return m, s.opErr(op, fmt.Errorf("%w: %w", ErrBadResponse, err))
	}
	if m.AttrID != attr {
		return m, s.opErr(op, fmt.Errorf("%w: attribute %#04x", ErrBadResponse, uint16(m.AttrID)))
	}
	if err := m.Status.Err(mad.ClassDM, attr); err != nil {
		return m, s.opErr(op, err)
	}
	return m, nil
}

// dmPorts lists the DM-capable ports of the subnet (srpd.c
// do_dm_port_list / do_full_port_list): by capability-mask match when the
// SA supports it, else by walking every node's PortInfoRecord.
func (s *scanner) dmPorts(ctx context.Context) ([]remotePort, error) {
	cpi, err := s.saQuery(ctx, mad.MethodGet, mad.AttrClassPortInfo, 0, 0, nil)
	if err != nil {
		return nil, err
	}
	c, err := mad.DecodeClassPortInfo(cpi.Data)
	if err != nil {
		return nil, s.opErr("SA ClassPortInfo", fmt.Errorf("%w: %w", ErrBadResponse, err))
	}
	var lids []uint16
	prefix := map[uint16]uint64{}
	if c.CapabilityMask&mad.SACapMaskMatch != 0 {
		q := mad.PortInfoRecord{CapabilityMask: mad.CapIsDM}
		m, err := s.saQuery(ctx, mad.MethodGetTable, mad.AttrPortInfoRecord, mad.PortInfoCapMaskMatchMod,
			mad.PortInfoRecCompCapMask, &q)
		if err != nil && !errors.Is(err, mad.ErrNoRecords) {
			return nil, err
		}
		recs, err := m.Records(mad.PortInfoRecordLen)
		if err != nil {
			return nil, s.opErr("SA PortInfoRecord table", err)
		}
		for _, r := range recs {
			p, _ := mad.DecodePortInfoRecord(r) // Records checked the length
			if p.CapabilityMask&mad.CapIsDM != 0 {
				lids = append(lids, p.EndportLID)
				prefix[p.EndportLID] = p.SubnetPrefix
			}
		}
	} else {
		m, err := s.saQuery(ctx, mad.MethodGetTable, mad.AttrNodeRecord, 0, 0, &mad.NodeRecord{})
		if err != nil && !errors.Is(err, mad.ErrNoRecords) {
			return nil, err
		}
		recs, err := m.Records(mad.NodeRecordLen)
		if err != nil {
			return nil, s.opErr("SA NodeRecord table", err)
		}
		for _, r := range recs {
			n, _ := mad.DecodeNodeRecord(r)
			if n.NodeType != mad.NodeTypeCA {
				continue
			}
			p, err := s.portInfo(ctx, n.LID)
			if err != nil {
				s.log.Debug("skip port", "lid", n.LID, "err", err)
				continue
			}
			if p.CapabilityMask&mad.CapIsDM != 0 {
				lids = append(lids, n.LID)
				prefix[n.LID] = p.SubnetPrefix
			}
		}
	}
	var out []remotePort
	for _, lid := range lids {
		if lid == s.attr.LID {
			continue
		}
		guid, err := s.portGUID(ctx, lid)
		if err != nil {
			s.log.Info("skip DM port", "port", s.ref.String(), "lid", lid, "err", err)
			continue
		}
		out = append(out, remotePort{LID: lid, Prefix: prefix[lid], GUID: guid})
	}
	return out, nil
}

func (s *scanner) portInfo(ctx context.Context, lid uint16) (mad.PortInfoRecord, error) {
	m, err := s.saQuery(ctx, mad.MethodGet, mad.AttrPortInfoRecord, 0, mad.PortInfoRecCompLID,
		&mad.PortInfoRecord{EndportLID: lid})
	if err != nil {
		return mad.PortInfoRecord{}, err
	}
	return mad.DecodePortInfoRecord(m.Data)
}

func (s *scanner) portGUID(ctx context.Context, lid uint16) (uint64, error) {
	m, err := s.saQuery(ctx, mad.MethodGet, mad.AttrNodeRecord, 0, mad.NodeRecCompLID, &mad.NodeRecord{LID: lid})
	if err != nil {
		return 0, err
	}
	n, err := mad.DecodeNodeRecord(m.Data)
	if err != nil {
		return 0, s.opErr("SA NodeRecord", err)
	}
	return n.PortGUID, nil
}

// remoteByLID returns the port with lid if it is DM capable (trap 144).
func (s *scanner) remoteByLID(ctx context.Context, lid uint16) (remotePort, bool, error) {
	p, err := s.portInfo(ctx, lid)
	if err != nil {
		return remotePort{}, false, err
	}
	if p.CapabilityMask&mad.CapIsDM == 0 {
		return remotePort{LID: lid, Prefix: p.SubnetPrefix}, false, nil
	}
	guid, err := s.portGUID(ctx, lid)
	if err != nil {
		return remotePort{}, false, err
	}
	return remotePort{LID: lid, Prefix: p.SubnetPrefix, GUID: guid}, true, nil
}

// lidOfGID resolves a GID from trap 64 to its LID with srp_daemon's
// PathRecord (SGID = DGID = the GID, raw traffic, one path).
func (s *scanner) lidOfGID(ctx context.Context, g verbs.GID) (uint16, error) {
	q := mad.PathRecord{DGID: g, SGID: g, RawTraffic: true, Reversible: false, NumbPath: 1}
	m, err := s.saQuery(ctx, mad.MethodGet, mad.AttrPathRecord, 0, mad.PathRecCompByGID, &q)
	if err != nil {
		return 0, err
	}
	p, err := mad.DecodePathRecord(m.Data)
	if err != nil {
		return 0, s.opErr("SA PathRecord", err)
	}
	return p.DLID, nil
}

// localPKeys lists the port's valid P_Keys the options select, in table
// order, without duplicates.
func (s *scanner) localPKeys() ([]uint16, error) {
	var out []uint16
	for i := 0; s.attr.PKeyTableLen == 0 || i < s.attr.PKeyTableLen; i++ {
		pk, err := s.dev.PKey(s.ref.Port, uint16(i))
		if errors.Is(err, verbs.ErrIndexRange) {
			break
		}
		if err != nil {
			return nil, s.opErr("query pkey", err)
		}
		if pk&pkeyBase == 0 || !s.opts.wantPKey(pk) || slices.Contains(out, pk) {
			continue
		}
		out = append(out, pk)
	}
	return out, nil
}

// sharedPKeys asks the SA, per local P_Key, for a path to rp in that
// partition (srpd.c get_shared_pkeys). Unlike srp_daemon it reads the MAD
// status: "no records" means not shared; any other error fails rp.
func (s *scanner) sharedPKeys(ctx context.Context, rp remotePort, pkeys []uint16) ([]uint16, error) {
	var out []uint16
	for _, pk := range pkeys {
		q := mad.PathRecord{DLID: rp.LID, SLID: s.attr.LID, PKey: pk}
		m, err := s.saQuery(ctx, mad.MethodGet, mad.AttrPathRecord, 0, mad.PathRecCompSharedPKey, &q)
		if errors.Is(err, mad.ErrNoRecords) {
			continue
		}
		if err != nil {
			return out, err
		}
		p, err := mad.DecodePathRecord(m.Data)
		if err != nil {
			return out, s.opErr("SA PathRecord", err)
		}
		if p.PKey&pkeyBase != pk&pkeyBase {
			return out, s.opErr("SA PathRecord", fmt.Errorf("%w: asked pkey %#04x, got %#04x", ErrBadResponse, pk, p.PKey))
		}
		out = append(out, pk)
	}
	return out, nil
}

// scanRemote finds the SRP targets of rp in every partition it shares
// with this port.
func (s *scanner) scanRemote(ctx context.Context, rp remotePort, pkeys []uint16) ([]Target, error) {
	shared, err := s.sharedPKeys(ctx, rp, pkeys)
	if err != nil {
		return nil, err
	}
	var out []Target
	var errs []error
	for _, pk := range shared {
		ts, err := s.scanIOUnit(ctx, rp, pk)
		out = append(out, ts...)
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}

// scanIOUnit walks rp's I/O unit through partition pkey: IOUnitInfo →
// each present controller's profile → its service entries, four per MAD
// (srpd.c do_port). The P_Key is resolved to its current index first:
// indexes move when the SM reprograms the table.
func (s *scanner) scanIOUnit(ctx context.Context, rp remotePort, pkey uint16) ([]Target, error) {
	idx, err := s.dev.PKeyIndex(s.ref.Port, pkey)
	if err != nil {
		return nil, s.opErr("resolve pkey", err)
	}
	m, err := s.dmQuery(ctx, rp.LID, pkey, mad.AttrIOUnitInfo, 0)
	if err != nil {
		return nil, err
	}
	iou, err := mad.DecodeIOUnitInfo(m.Data)
	if err != nil {
		return nil, s.opErr("DM IOUnitInfo", err)
	}
	var out []Target
	var errs []error
	for _, slot := range iou.Present() {
		m, err := s.dmQuery(ctx, rp.LID, pkey, mad.AttrIOControllerProfile, uint32(slot))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		prof, err := mad.DecodeIOControllerProfile(m.Data)
		if err != nil {
			errs = append(errs, s.opErr("DM IOControllerProfile", err))
			continue
		}
		n := int(prof.NumServices)
		for first := 0; first < n; first += mad.ServiceEntriesPerMAD {
			last := min(first+mad.ServiceEntriesPerMAD, n) - 1
			m, err := s.dmQuery(ctx, rp.LID, pkey, mad.AttrServiceEntries, mad.ServiceEntriesMod(slot, uint8(first), uint8(last)))
			if err != nil {
				errs = append(errs, err)
				break
			}
			entries, err := mad.DecodeServiceEntries(m.Data, last-first+1)
			if err != nil {
				errs = append(errs, s.opErr("DM ServiceEntries", err))
				break
			}
			for _, e := range entries {
				idExt, ok := e.SRPIDExt()
				if !ok {
					continue
				}
				out = append(out, Target{IDExt: idExt, IOCGUID: prof.GUID, DGID: rp.gid(), PKey: pkey, PKeyIndex: idx,
					ServiceID: e.ID, MaxIUSize: int(prof.SendSize), IOClass: prof.IOClass, Local: s.ref, DLID: rp.LID,
					IOCName: prof.ID})
			}
		}
	}
	return out, errors.Join(errs...)
}

// portScan is the outcome of scanning one local port: the targets found
// and the remote ports whose scan failed (their earlier targets are not
// known to be gone).
type portScan struct {
	targets []Target
	failed  []verbs.GID
	err     error
}

// full scans every DM port of the subnet.
func (s *scanner) full(ctx context.Context) portScan {
	if err := s.begin(); err != nil {
		return portScan{err: err}
	}
	pkeys, err := s.localPKeys()
	if err != nil {
		return portScan{err: err}
	}
	remotes, err := s.dmPorts(ctx)
	if err != nil {
		return portScan{err: err}
	}
	var res portScan
	var errs []error
	for _, rp := range remotes {
		ts, err := s.scanRemote(ctx, rp, pkeys)
		res.targets = append(res.targets, ts...)
		if err != nil {
			res.failed = append(res.failed, rp.gid())
			errs = append(errs, err)
		}
	}
	res.err = errors.Join(errs...)
	return res
}

// subscribe sets InformInfo for each trap (srp_handle_traps.c
// register_to_traps, plus trap 65).
func (s *scanner) subscribe(ctx context.Context, traps []uint16, on bool) error {
	var errs []error
	for _, trap := range traps {
		ii := mad.Subscription(trap, on, 0)
		if _, err := s.saQuery(ctx, mad.MethodSet, mad.AttrInformInfo, 0, mad.SubscriptionCompMask(on), &ii); err != nil {
			errs = append(errs, fmt.Errorf("trap %d: %w", trap, err))
		}
	}
	return errors.Join(errs...)
}

// applyRules drops the targets the rules deny and attaches the options of
// the allowing rule.
func applyRules(ts []Target, rules Rules) []Target {
	out := ts[:0]
	for _, t := range ts {
		allow, opts := rules.Decide(&t)
		if !allow {
			continue
		}
		if len(opts) > 0 {
			t.Options = joinOptions(t.Options, opts)
		}
		out = append(out, t)
	}
	return out
}

func joinOptions(have string, add []string) string {
	all := slices.Clone(add)
	if have != "" {
		all = append([]string{have}, all...)
	}
	s := ""
	for i, o := range all {
		if i > 0 {
			s += ","
		}
		s += o
	}
	return s
}
