package srptest

import (
	"encoding/binary"
)

// SCSI status bytes (SAM).
const (
	statusGood           = 0x00
	statusCheckCondition = 0x02
)

// Sense keys (SPC).
const (
	senseNoSense        = 0x0
	senseNotReady       = 0x2
	senseMediumError    = 0x3
	senseIllegalRequest = 0x5
	senseUnitAttention  = 0x6
)

// Additional sense codes used by the emulation.
const (
	ascInvalidOpcode   = 0x20
	ascLBAOutOfRange   = 0x21
	ascInvalidFieldCDB = 0x24
	ascInvalidFieldPL  = 0x26 // INVALID FIELD IN PARAMETER LIST
	ascParamListLength = 0x1a // PARAMETER LIST LENGTH ERROR
)

// SCSI operation codes the emulation implements.
const (
	opTestUnitReady  = 0x00
	opRequestSense   = 0x03
	opInquiry        = 0x12
	opModeSense6     = 0x1a
	opReadCapacity10 = 0x25
	opRead10         = 0x28
	opWrite10        = 0x2a
	opSyncCache10    = 0x35
	opWriteSame10    = 0x41
	opUnmap          = 0x42
	opModeSense10    = 0x5a
	opRead16         = 0x88
	opWrite16        = 0x8a
	opSyncCache16    = 0x91
	opWriteSame16    = 0x93
	opServiceIn16    = 0x9e
	opReportLUNs     = 0xa0

	saReadCapacity16 = 0x10
)

// VPD pages served.
const (
	vpdSupported     = 0x00
	vpdSerial        = 0x80
	vpdDeviceID      = 0x83
	vpdBlockLimits   = 0xb0
	vpdProvisioning  = 0xb2
	modePageCaching  = 0x08
	modePageAll      = 0x3f
	fixedSenseLen    = 18
	stdInquiryLen    = 36
	readCap10Len     = 8
	readCap16Len     = 32
	unmapHeaderLen   = 8
	unmapDescLen     = 16
	reportLUNsHeader = 8
	lunEntryLen      = 8
	// maxUnmapBlocks and maxUnmapDescs are the VPD 0xB0 limits announced.
	maxUnmapBlocks = 1 << 20
	maxUnmapDescs  = 64
)

// scsiReply is the outcome of one SCSI command.
type scsiReply struct {
	status   byte
	sense    [fixedSenseLen]byte
	senseLen int
	// inWant is how many data-in bytes the command produced (before the
	// descriptor's length cut it); the bytes land in the in buffer.
	inWant int
}

func (r *scsiReply) checkCondition(key, asc, ascq byte) {
	r.status = statusCheckCondition
	r.inWant = 0
	r.sense = [fixedSenseLen]byte{}
	r.sense[0] = 0x70 // current error, fixed format
	r.sense[2] = key
	r.sense[7] = fixedSenseLen - 8 // additional sense length
	r.sense[12] = asc
	r.sense[13] = ascq
	r.senseLen = fixedSenseLen
}

// cdbLBA decodes the LBA and block count of the block commands.
func cdbLBA(cdb []byte) (lba uint64, blocks uint64, ok bool) {
	switch cdb[0] {
	case opRead10, opWrite10, opSyncCache10, opWriteSame10:
		if len(cdb) < 10 {
			return 0, 0, false
		}
		return uint64(binary.BigEndian.Uint32(cdb[2:])), uint64(binary.BigEndian.Uint16(cdb[7:])), true
	case opRead16, opWrite16, opSyncCache16, opWriteSame16:
		if len(cdb) < 16 {
			return 0, 0, false
		}
		return binary.BigEndian.Uint64(cdb[2:]), uint64(binary.BigEndian.Uint32(cdb[10:])), true
	}
	return 0, 0, false
}

// dataOutLen is how many bytes of data-out the CDB describes, so the target
// knows how much to RDMA-read before executing.
func (lu *LU) dataOutLen(cdb []byte) int {
	if len(cdb) == 0 {
		return 0
	}
	switch cdb[0] {
	case opWrite10, opWrite16:
		_, n, ok := cdbLBA(cdb)
		if !ok {
			return 0
		}
		return int(min(n*uint64(lu.cfg.BlockSize), 1<<31))
	case opWriteSame10, opWriteSame16:
		if cdb[1]&0x08 != 0 && lu.cfg.ThinProvisioning { // UNMAP bit: data block still sent
			return lu.cfg.BlockSize
		}
		return lu.cfg.BlockSize
	case opUnmap:
		if len(cdb) < 10 {
			return 0
		}
		return int(binary.BigEndian.Uint16(cdb[7:]))
	}
	return 0
}

// exec runs one CDB against the LU. out holds the data-out bytes fetched
// from the initiator, in receives data-in bytes (at most len(in)). luns lists
// the target's LUNs for REPORT LUNS.
// maxTransfer is the largest data transfer in bytes (the staging buffer).
func (lu *LU) exec(cdb []byte, out, in []byte, luns []uint64, maxTransfer int) scsiReply {
	var r scsiReply
	if len(cdb) == 0 {
		r.checkCondition(senseIllegalRequest, ascInvalidOpcode, 0)
		return r
	}
	if _, n, ok := cdbLBA(cdb); ok && (cdb[0] == opRead10 || cdb[0] == opRead16 || cdb[0] == opWrite10 || cdb[0] == opWrite16) &&
		n*uint64(lu.cfg.BlockSize) > uint64(maxTransfer) {
		r.checkCondition(senseIllegalRequest, ascInvalidFieldCDB, 0)
		return r
	}
	switch cdb[0] {
	case opTestUnitReady, opSyncCache10, opSyncCache16:
		if cdb[0] != opTestUnitReady {
			if lba, n, ok := cdbLBA(cdb); ok && !lu.inRange(lba, n) {
				r.checkCondition(senseIllegalRequest, ascLBAOutOfRange, 0)
				return r
			}
			lu.mu.Lock()
			lu.stats.Syncs++
			lu.mu.Unlock()
		}
	case opRequestSense:
		var s scsiReply
		s.checkCondition(senseNoSense, 0, 0)
		r.inWant = fill(in, s.sense[:], allocLen8(cdb, 4))
	case opInquiry:
		lu.inquiry(cdb, in, &r, maxTransfer)
	case opModeSense6, opModeSense10:
		lu.modeSense(cdb, in, &r)
	case opReadCapacity10:
		var b [readCap10Len]byte
		last := lu.cfg.Blocks - 1
		binary.BigEndian.PutUint32(b[0:], uint32(min(last, 0xffffffff)))
		binary.BigEndian.PutUint32(b[4:], uint32(lu.cfg.BlockSize))
		r.inWant = fill(in, b[:], len(b))
	case opServiceIn16:
		if len(cdb) < 16 || cdb[1]&0x1f != saReadCapacity16 {
			r.checkCondition(senseIllegalRequest, ascInvalidFieldCDB, 0)
			return r
		}
		var b [readCap16Len]byte
		binary.BigEndian.PutUint64(b[0:], lu.cfg.Blocks-1)
		binary.BigEndian.PutUint32(b[8:], uint32(lu.cfg.BlockSize))
		if lu.cfg.ThinProvisioning {
			b[14] = 0x80 | 0x40 // LBPME, LBPRZ (unmapped blocks read as zero)
		}
		r.inWant = fill(in, b[:], int(binary.BigEndian.Uint32(cdb[10:])))
	case opRead10, opRead16:
		lba, n, ok := cdbLBA(cdb)
		if !ok || !lu.inRange(lba, n) {
			r.checkCondition(senseIllegalRequest, ascLBAOutOfRange, 0)
			return r
		}
		bs := uint64(lu.cfg.BlockSize)
		lu.mu.Lock()
		lu.stats.Reads++
		copy(in, lu.data[lba*bs:(lba+n)*bs])
		lu.mu.Unlock()
		r.inWant = int(n * bs)
	case opWrite10, opWrite16:
		lba, n, ok := cdbLBA(cdb)
		if !ok || !lu.inRange(lba, n) {
			r.checkCondition(senseIllegalRequest, ascLBAOutOfRange, 0)
			return r
		}
		bs := uint64(lu.cfg.BlockSize)
		lu.mu.Lock()
		lu.stats.Writes++
		copy(lu.data[lba*bs:(lba+n)*bs], out)
		lu.mu.Unlock()
	case opWriteSame10, opWriteSame16:
		lu.writeSame(cdb, out, &r)
	case opUnmap:
		lu.unmap(cdb, out, &r)
	case opReportLUNs:
		reportLUNs(cdb, in, luns, &r)
	default:
		r.checkCondition(senseIllegalRequest, ascInvalidOpcode, 0)
	}
	return r
}

func (lu *LU) inRange(lba, n uint64) bool {
	return lba <= lu.cfg.Blocks && n <= lu.cfg.Blocks-lba
}

// fill copies src (cut to limit) into dst and returns how many bytes the
// command produced (min(len(src), limit)), which may exceed len(dst).
func fill(dst, src []byte, limit int) int {
	n := min(len(src), limit)
	copy(dst, src[:n])
	return n
}

// fillAt copies src to dst at pos, never past limit, and returns the new pos.
func fillAt(dst []byte, pos int, src []byte, limit int) int {
	for _, c := range src {
		if pos >= limit {
			return pos
		}
		if pos < len(dst) {
			dst[pos] = c
		}
		pos++
	}
	return pos
}

func allocLen8(cdb []byte, off int) int {
	if len(cdb) <= off {
		return 0
	}
	return int(cdb[off])
}

func allocLen16(cdb []byte, off int) int {
	if len(cdb) < off+2 {
		return 0
	}
	return int(binary.BigEndian.Uint16(cdb[off:]))
}

func padded(dst []byte, s string) {
	for i := range dst {
		if i < len(s) {
			dst[i] = s[i]
		} else {
			dst[i] = ' '
		}
	}
}

func (lu *LU) inquiry(cdb []byte, in []byte, r *scsiReply, maxTransfer int) {
	alloc := allocLen16(cdb, 3)
	if len(cdb) < 6 {
		r.checkCondition(senseIllegalRequest, ascInvalidFieldCDB, 0)
		return
	}
	if cdb[1]&0x01 == 0 { // standard data
		if cdb[2] != 0 {
			r.checkCondition(senseIllegalRequest, ascInvalidFieldCDB, 0)
			return
		}
		var b [stdInquiryLen]byte
		b[0] = 0x00 // connected, direct access block device
		b[2] = 0x06 // SPC-4
		b[3] = 0x02 // response data format 2
		b[4] = stdInquiryLen - 5
		b[7] = 0x02 // CMDQUE
		padded(b[8:16], lu.cfg.Vendor)
		padded(b[16:32], lu.cfg.Product)
		padded(b[32:36], "4.0")
		r.inWant = fill(in, b[:], alloc)
		return
	}
	var page [256]byte
	page[1] = cdb[2]
	n := 4
	switch cdb[2] {
	case vpdSupported:
		for _, p := range []byte{vpdSupported, vpdSerial, vpdDeviceID, vpdBlockLimits, vpdProvisioning} {
			page[n] = p
			n++
		}
	case vpdSerial:
		n += copy(page[n:], lu.cfg.Serial)
	case vpdDeviceID:
		// NAA designator: code set binary, association LU, type NAA.
		page[n] = 0x01
		page[n+1] = 0x03
		page[n+3] = byte(len(lu.naa))
		n += 4
		n += copy(page[n:], lu.naa)
		// T10 vendor id designator: code set ASCII, type T10.
		t10 := 8 + len(lu.cfg.Serial)
		page[n] = 0x02
		page[n+1] = 0x01
		page[n+3] = byte(t10)
		n += 4
		padded(page[n:n+8], lu.cfg.Vendor)
		n += 8
		n += copy(page[n:], lu.cfg.Serial)
	case vpdBlockLimits:
		const blockLimitsLen = 0x40
		binary.BigEndian.PutUint32(page[8:], uint32(maxTransfer/lu.cfg.BlockSize))  // maximum transfer length (blocks)
		binary.BigEndian.PutUint32(page[12:], uint32(maxTransfer/lu.cfg.BlockSize)) // optimal transfer length
		if lu.cfg.ThinProvisioning {
			binary.BigEndian.PutUint32(page[20:], maxUnmapBlocks)
			binary.BigEndian.PutUint32(page[24:], maxUnmapDescs)
		}
		binary.BigEndian.PutUint64(page[36:], maxUnmapBlocks) // maximum WRITE SAME length
		n = blockLimitsLen
	case vpdProvisioning:
		if lu.cfg.ThinProvisioning {
			page[5] = 0x80 | 0x40 | 0x04 // LBPU, LBPWS, LBPRZ = 1
			page[6] = 0x02               // provisioning type: thin
		}
		n = 8
	default:
		r.checkCondition(senseIllegalRequest, ascInvalidFieldCDB, 0)
		return
	}
	binary.BigEndian.PutUint16(page[2:], uint16(n-4))
	r.inWant = fill(in, page[:n], alloc)
}

func (lu *LU) modeSense(cdb []byte, in []byte, r *scsiReply) {
	ten := cdb[0] == opModeSense10
	if (!ten && len(cdb) < 6) || (ten && len(cdb) < 10) {
		r.checkCondition(senseIllegalRequest, ascInvalidFieldCDB, 0)
		return
	}
	pc := cdb[2] & 0x3f
	if pc != modePageCaching && pc != modePageAll {
		r.checkCondition(senseIllegalRequest, ascInvalidFieldCDB, 0)
		return
	}
	lu.mu.Lock()
	wce := lu.cfg.WriteCache
	lu.mu.Unlock()
	const cachingLen = 20
	var b [8 + cachingLen]byte
	hdr := 4
	if ten {
		hdr = 8
	}
	p := b[hdr : hdr+cachingLen]
	p[0] = modePageCaching
	p[1] = cachingLen - 2
	if wce {
		p[2] = 0x04 // WCE
	}
	total := hdr + cachingLen
	if ten {
		binary.BigEndian.PutUint16(b[0:], uint16(total-2))
		r.inWant = fill(in, b[:total], allocLen16(cdb, 7))
	} else {
		b[0] = byte(total - 1)
		r.inWant = fill(in, b[:total], allocLen8(cdb, 4))
	}
}

func (lu *LU) writeSame(cdb []byte, out []byte, r *scsiReply) {
	lba, n, ok := cdbLBA(cdb)
	if !ok || n == 0 {
		r.checkCondition(senseIllegalRequest, ascInvalidFieldCDB, 0)
		return
	}
	if !lu.inRange(lba, n) {
		r.checkCondition(senseIllegalRequest, ascLBAOutOfRange, 0)
		return
	}
	bs := uint64(lu.cfg.BlockSize)
	unmap := cdb[1]&0x08 != 0
	if unmap && !lu.cfg.ThinProvisioning {
		r.checkCondition(senseIllegalRequest, ascInvalidFieldCDB, 0)
		return
	}
	if !unmap && uint64(len(out)) < bs {
		r.checkCondition(senseIllegalRequest, ascParamListLength, 0)
		return
	}
	lu.mu.Lock()
	defer lu.mu.Unlock()
	lu.stats.WriteSames++
	for b := lba; b < lba+n; b++ {
		blk := lu.data[b*bs : (b+1)*bs]
		if unmap {
			clear(blk)
		} else {
			copy(blk, out[:bs])
		}
	}
}

func (lu *LU) unmap(cdb []byte, out []byte, r *scsiReply) {
	if !lu.cfg.ThinProvisioning {
		r.checkCondition(senseIllegalRequest, ascInvalidOpcode, 0)
		return
	}
	if len(out) == 0 {
		return // a zero parameter list length is no error (SBC)
	}
	if len(out) < unmapHeaderLen {
		r.checkCondition(senseIllegalRequest, ascParamListLength, 0)
		return
	}
	descLen := int(binary.BigEndian.Uint16(out[2:]))
	if descLen%unmapDescLen != 0 || unmapHeaderLen+descLen > len(out) || descLen/unmapDescLen > maxUnmapDescs {
		r.checkCondition(senseIllegalRequest, ascInvalidFieldPL, 0)
		return
	}
	bs := uint64(lu.cfg.BlockSize)
	descs := out[unmapHeaderLen : unmapHeaderLen+descLen]
	for d := descs; len(d) >= unmapDescLen; d = d[unmapDescLen:] {
		lba, n := binary.BigEndian.Uint64(d), uint64(binary.BigEndian.Uint32(d[8:]))
		if !lu.inRange(lba, n) {
			r.checkCondition(senseIllegalRequest, ascLBAOutOfRange, 0)
			return
		}
	}
	lu.mu.Lock()
	defer lu.mu.Unlock()
	lu.stats.Unmaps++
	for d := descs; len(d) >= unmapDescLen; d = d[unmapDescLen:] {
		lba, n := binary.BigEndian.Uint64(d), uint64(binary.BigEndian.Uint32(d[8:]))
		clear(lu.data[lba*bs : (lba+n)*bs])
	}
}

func reportLUNs(cdb []byte, in []byte, luns []uint64, r *scsiReply) {
	if len(cdb) < 12 {
		r.checkCondition(senseIllegalRequest, ascInvalidFieldCDB, 0)
		return
	}
	alloc := int(binary.BigEndian.Uint32(cdb[6:]))
	var hdr [reportLUNsHeader]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(luns)*lunEntryLen))
	pos := fillAt(in, 0, hdr[:], alloc)
	for _, l := range luns {
		var e [lunEntryLen]byte
		for i := 0; i < lunEntryLen; i += 2 { // int_to_scsilun
			binary.BigEndian.PutUint16(e[i:], uint16(l>>(8*i)))
		}
		pos = fillAt(in, pos, e[:], alloc)
	}
	r.inWant = min(reportLUNsHeader+len(luns)*lunEntryLen, alloc)
}

// execNoLU serves the commands LIO answers for a LUN without a device:
// REPORT LUNS, and INQUIRY with peripheral qualifier 011b (no LU here).
func execNoLU(cdb []byte, in []byte, luns []uint64) scsiReply {
	var r scsiReply
	switch cdb[0] {
	case opReportLUNs:
		reportLUNs(cdb, in, luns, &r)
	case opInquiry:
		if len(cdb) < 6 || cdb[1]&0x01 != 0 {
			r.checkCondition(senseIllegalRequest, ascLUNotSupported, 0)
			return r
		}
		var b [stdInquiryLen]byte
		b[0] = 0x7f // qualifier 011b, type 1Fh: no LU at this LUN
		b[2] = 0x06
		b[3] = 0x02
		b[4] = stdInquiryLen - 5
		r.inWant = fill(in, b[:], allocLen16(cdb, 3))
	default:
		r.checkCondition(senseIllegalRequest, ascLUNotSupported, 0)
	}
	return r
}
