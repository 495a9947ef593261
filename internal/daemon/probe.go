package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/srp"
	"github.com/srp-mpathd/srp-mpathd/internal/srp/scsi"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
)

// The control plane's SCSI probe: a few commands, one at a time, on a
// channel the calling goroutine owns (before it is handed to a queue, or
// a channel opened for the probe alone).
const (
	// probeBufSize is the registered buffer every probe response lands in;
	// every allocation length below fits.
	probeBufSize = 8 << 10
	// reportLUNsAlloc allows 511 LUNs per target port, plenty for the
	// RAM-disk and array targets this daemon meets; more are cut off
	// (logged).
	reportLUNsAlloc = 4 << 10
	inquiryAlloc    = 96   // standard INQUIRY data up to the version descriptors
	vpd83Alloc      = 1024 // device identification: a few designators
	modeSenseAlloc  = 0xC0 // header + caching page with room to spare
	// maxUnitAttentions is how many UNIT ATTENTION answers a probe command
	// retries: a new login usually reports one (power on/reset, LUN
	// inventory changed) before the first command succeeds.
	maxUnitAttentions = 4
	// probePollInterval paces the wait for a completion on a channel
	// without a readiness channel (real hardware: the control plane does not
	// block on the completion fd, which only the queue thread may do).
	probePollInterval = 200 * time.Microsecond
	// DefaultProbeTimeout bounds one path's login and probe.
	DefaultProbeTimeout = 15 * time.Second
)

// LUInfo is the identity and geometry of one logical unit as one path
// reports it.
type LUInfo struct {
	LUN               uint64
	WWID              string // VPD page 0x83, multipath's form (scsi.DeviceID.WWID)
	Vendor            string
	Product           string
	Revision          string
	Blocks            uint64
	BlockSize         uint32
	PhysicalBlockSize uint32
	// WriteCache is the caching page's WCE (true when the page could not
	// be read: flushes are then sent, which is safe).
	WriteCache bool
	// Thin is LBPME: the LU accepts UNMAP.
	Thin bool
}

// Capacity is the LU's size in bytes.
func (l LUInfo) Capacity() uint64 { return l.Blocks * uint64(l.BlockSize) }

// sameIdentity reports whether two paths show the same LU: WWID and
// geometry (DESIGN.md "Identity").
func (l LUInfo) sameIdentity(o LUInfo) bool {
	return l.WWID == o.WWID && l.Blocks == o.Blocks && l.BlockSize == o.BlockSize
}

func (l LUInfo) describe() string {
	return fmt.Sprintf("WWID %s, %d blocks of %d bytes", l.WWID, l.Blocks, l.BlockSize)
}

// probeConn is what the probe needs of a channel (*srp.Channel).
type probeConn interface {
	Submit(cmd *srp.Command) error
	Poll(out []srp.Result) int
	ArmNotify() error
	Ready() <-chan struct{}
}

// prober runs SCSI commands synchronously on one channel with one
// registered buffer. It belongs to the calling goroutine.
type prober struct {
	ch  probeConn
	buf verbs.Buffer
	id  uint64
	res [4]srp.Result
}

// newProber registers a probe buffer on dev; close releases it (after the
// channel is closed, so no late RDMA write can reach it).
func newProber(ch probeConn, dev verbs.Device) (*prober, error) {
	buf, err := dev.AllocBuffer(probeBufSize, verbs.AccessData)
	if err != nil {
		return nil, fmt.Errorf("%w: probe buffer: %w", ErrProbe, err)
	}
	return &prober{ch: ch, buf: buf}, nil
}

func (p *prober) close() error { return p.buf.Close() }

// run executes one data-in command on lun and returns the data received.
// UNIT ATTENTION is retried; any other SCSI error is returned with its
// sense decoded.
func (p *prober) run(ctx context.Context, what string, lun uint64, cdb scsi.CDB, cdbLen, alloc int) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		p.id++
		cmd := srp.Command{
			ID: p.id, LUN: lun, CDB: cdb, CDBLen: cdbLen, Dir: srp.DataIn,
			Addr: p.buf.Addr(), RKey: p.buf.RKey(), Len: uint32(alloc),
		}
		r, err := p.exec(ctx, &cmd)
		if err != nil {
			return nil, fmt.Errorf("%w: %s on LUN %d: %w", ErrProbe, what, lun, err)
		}
		st := scsi.Status(r.Status)
		if st == scsi.StatusGood {
			n := alloc
			if r.Residual > 0 {
				n = max(alloc-int(min(r.Residual, int64(alloc))), 0)
			}
			return p.buf.Bytes()[:n], nil
		}
		detail := st.String()
		if st == scsi.StatusCheckCondition && r.SenseLen > 0 {
			if s, serr := scsi.ParseSense(r.Sense[:r.SenseLen]); serr == nil {
				if s.Key == scsi.KeyUnitAttention && attempt < maxUnitAttentions {
					continue
				}
				detail = fmt.Sprintf("%s, sense key %v, %s", st, s.Key, scsi.ASCDescription(s.ASC, s.ASCQ))
			}
		}
		return nil, fmt.Errorf("%w: %s on LUN %d: %s", ErrProbe, what, lun, detail)
	}
}

// exec submits cmd and waits for its Result on the calling goroutine until
// ctx ends.
func (p *prober) exec(ctx context.Context, cmd *srp.Command) (srp.Result, error) {
	for {
		err := p.ch.Submit(cmd)
		if err == nil {
			break
		}
		// A fresh login may not have granted a spare credit yet.
		if !errors.Is(err, srp.ErrNoCredit) && !errors.Is(err, srp.ErrNoTag) {
			return srp.Result{}, err
		}
		if err := p.wait(ctx); err != nil {
			return srp.Result{}, err
		}
	}
	for {
		n := p.ch.Poll(p.res[:])
		for i := range n {
			if r := p.res[i]; r.ID == cmd.ID {
				if r.Err != nil {
					return r, r.Err
				}
				return r, nil
			}
		}
		if n > 0 {
			continue
		}
		_ = p.ch.ArmNotify()
		if n = p.ch.Poll(p.res[:]); n > 0 {
			for i := range n {
				if r := p.res[i]; r.ID == cmd.ID {
					if r.Err != nil {
						return r, r.Err
					}
					return r, nil
				}
			}
			continue
		}
		if err := p.wait(ctx); err != nil {
			return srp.Result{}, err
		}
	}
}

// wait blocks until the channel may have news: its readiness channel (the
// simulator), or a short pause (real hardware), or the end of ctx.
func (p *prober) wait(ctx context.Context) error {
	t := time.NewTimer(probePollInterval)
	defer t.Stop()
	ready := p.ch.Ready()
	if ready != nil {
		// The simulator signals readiness; the timer only guards against a
		// lost wake-up.
		t.Reset(probePollInterval * 50)
	}
	select {
	case <-ready:
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// reportLUNs lists the target port's LUNs (REPORT LUNS on LUN 0).
func (p *prober) reportLUNs(ctx context.Context) ([]uint64, error) {
	var cdb scsi.CDB
	n := scsi.ReportLUNs(&cdb, scsi.ReportAll, reportLUNsAlloc)
	b, err := p.run(ctx, "REPORT LUNS", 0, cdb, n, reportLUNsAlloc)
	if err != nil {
		return nil, err
	}
	raw, err := scsi.ParseReportLUNs(b)
	if err != nil && !errors.Is(err, scsi.ErrTruncated) {
		return nil, fmt.Errorf("%w: REPORT LUNS data: %w", ErrProbe, err)
	}
	var luns []uint64
	for _, l := range raw {
		if l.IsWellKnown() {
			continue
		}
		if v, err := l.Number(); err == nil {
			luns = append(luns, v)
		}
	}
	return luns, nil
}

// errNotDisk: the LUN is not a direct-access block device, or not
// connected; the target probe skips it, a single-LU probe fails with it.
var errNotDisk = fmt.Errorf("%w: not a connected direct-access device", ErrProbe)

// probeLU reads one LU's identity and geometry.
func (p *prober) probeLU(ctx context.Context, lun uint64) (LUInfo, error) {
	info := LUInfo{LUN: lun, WriteCache: true}
	var cdb scsi.CDB
	n := scsi.Inquiry(&cdb, inquiryAlloc)
	b, err := p.run(ctx, "INQUIRY", lun, cdb, n, inquiryAlloc)
	if err != nil {
		return info, err
	}
	inq, err := scsi.ParseInquiry(b)
	if err != nil {
		return info, fmt.Errorf("%w: INQUIRY data of LUN %d: %w", ErrProbe, lun, err)
	}
	if inq.Qualifier != 0 || inq.DeviceType != scsi.TypeDisk {
		return info, errNotDisk
	}
	info.Vendor, info.Product, info.Revision = inq.Vendor, inq.Product, inq.Revision

	n = scsi.InquiryVPD(&cdb, scsi.PageDeviceID, vpd83Alloc)
	if b, err = p.run(ctx, "INQUIRY VPD 0x83", lun, cdb, n, vpd83Alloc); err != nil {
		return info, err
	}
	did, err := scsi.ParseDeviceID(b)
	if err != nil {
		return info, fmt.Errorf("%w: VPD page 0x83 of LUN %d: %w", ErrProbe, lun, err)
	}
	if info.WWID, err = did.WWID(); err != nil {
		return info, fmt.Errorf("%w: WWID of LUN %d: %w", ErrProbe, lun, err)
	}

	n = scsi.ReadCapacity16(&cdb, scsi.ReadCapacity16Len)
	if b, err = p.run(ctx, "READ CAPACITY(16)", lun, cdb, n, scsi.ReadCapacity16Len); err != nil {
		return info, err
	}
	capa, err := scsi.ParseReadCapacity16(b)
	if err != nil {
		return info, fmt.Errorf("%w: READ CAPACITY(16) data of LUN %d: %w", ErrProbe, lun, err)
	}
	info.Blocks, info.BlockSize, info.Thin = capa.Blocks, capa.BlockSize, capa.LBPME
	if info.PhysicalBlockSize = capa.PhysicalBlockSize(); info.PhysicalBlockSize == 0 {
		info.PhysicalBlockSize = info.BlockSize
	}

	// The caching page is optional: without it flushes are sent anyway.
	n = scsi.ModeSense10(&cdb, scsi.ModePageCaching, 0, scsi.PageCurrent, true, modeSenseAlloc)
	if b, err = p.run(ctx, "MODE SENSE caching", lun, cdb, n, modeSenseAlloc); err == nil {
		if mp, err := scsi.ParseModeSense10(b); err == nil {
			if c, err := mp.Caching(); err == nil {
				info.WriteCache = c.WCE
			}
		}
	}
	return info, nil
}

// probeTarget lists and probes every disk LU behind one channel. LUs that
// are not disks are skipped; an LU whose probe fails fails the whole
// probe (the path is then not admitted).
func probeTarget(ctx context.Context, ch probeConn, dev verbs.Device) (_ []LUInfo, err error) {
	p, err := newProber(ch, dev)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, p.close()) }()
	luns, err := p.reportLUNs(ctx)
	if err != nil {
		return nil, err
	}
	var out []LUInfo
	for _, lun := range luns {
		info, err := p.probeLU(ctx, lun)
		if errors.Is(err, errNotDisk) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	return out, nil
}

// probeOne reads the identity of one LU (a reconnecting path's check).
func probeOne(ctx context.Context, ch probeConn, dev verbs.Device, lun uint64) (_ LUInfo, err error) {
	p, err := newProber(ch, dev)
	if err != nil {
		return LUInfo{}, err
	}
	defer func() { err = errors.Join(err, p.close()) }()
	return p.probeLU(ctx, lun)
}
