package scsi

import "encoding/binary"

// CDB is the 16-byte command descriptor block field of an SRP_CMD IU. Every
// builder zeroes all 16 bytes, writes its command and returns the command's
// length (6, 10 or 16); the bytes past that length stay zero.
type CDB = [16]byte

// Opcode is the first byte of a CDB.
type Opcode byte

// The operation codes this package builds.
const (
	OpTestUnitReady    Opcode = 0x00
	OpInquiry          Opcode = 0x12
	OpRead10           Opcode = 0x28
	OpWrite10          Opcode = 0x2A
	OpSynchronizeCache Opcode = 0x35
	OpUnmap            Opcode = 0x42
	OpModeSense10      Opcode = 0x5A
	OpRead16           Opcode = 0x88
	OpWrite16          Opcode = 0x8A
	OpSyncCache16      Opcode = 0x91
	OpWriteSame16      Opcode = 0x93
	OpServiceActionIn  Opcode = 0x9E // READ CAPACITY(16) is its service action 0x10
	OpReportLUNs       Opcode = 0xA0
)

func (o Opcode) String() string {
	switch o {
	case OpTestUnitReady:
		return "TEST UNIT READY"
	case OpInquiry:
		return "INQUIRY"
	case OpRead10:
		return "READ(10)"
	case OpWrite10:
		return "WRITE(10)"
	case OpSynchronizeCache:
		return "SYNCHRONIZE CACHE(10)"
	case OpUnmap:
		return "UNMAP"
	case OpModeSense10:
		return "MODE SENSE(10)"
	case OpRead16:
		return "READ(16)"
	case OpWrite16:
		return "WRITE(16)"
	case OpSyncCache16:
		return "SYNCHRONIZE CACHE(16)"
	case OpWriteSame16:
		return "WRITE SAME(16)"
	case OpServiceActionIn:
		return "SERVICE ACTION IN(16)"
	case OpReportLUNs:
		return "REPORT LUNS"
	}
	return "Opcode(0x" + hex2(byte(o)) + ")"
}

// CDB lengths by group code (SPC-4 4.2.5.1).
const (
	cdb6Len  = 6
	cdb10Len = 10
	cdb12Len = 12
	cdb16Len = 16
)

// Limits of the 10-byte READ/WRITE/SYNCHRONIZE CACHE forms; beyond them the
// 16-byte form is needed (the rule sd_setup_read_write_cmnd applies).
const (
	max10LBA    = 0xFFFFFFFF
	max10Blocks = 0xFFFF
)

// Bits of CDB byte 1.
const (
	cdbFUA       = 1 << 3 // READ/WRITE(10/16): force unit access
	cdbImmed     = 1 << 1 // SYNCHRONIZE CACHE: return before the flush completes
	cdbAnchor    = 1 << 0 // UNMAP
	cdbWSUnmap   = 1 << 3 // WRITE SAME(16): deallocate instead of writing
	cdbEVPD      = 1 << 0 // INQUIRY: return the VPD page named in byte 2
	cdbDBD       = 1 << 3 // MODE SENSE: no block descriptors
	saReadCap16  = 0x10   // SERVICE ACTION IN(16) service action
	pcShift      = 6      // MODE SENSE page control position in byte 2
	pageCodeMask = 0x3F
)

// Uses16 reports whether a READ/WRITE of blocks at lba needs the 16-byte
// CDB: the 10-byte one carries a 32-bit LBA and a 16-bit length.
func Uses16(lba uint64, blocks uint32) bool {
	return lba > max10LBA || blocks > max10Blocks
}

// RW builds READ(10)/WRITE(10), or READ(16)/WRITE(16) when Uses16 says so, and
// returns the CDB length. fua sets FUA (write through the target's cache; only
// meaningful when MODE SENSE reported DPOFUA). It does not allocate: the data
// path calls it once per I/O.
func RW(cdb *CDB, write bool, lba uint64, blocks uint32, fua bool) int {
	if Uses16(lba, blocks) {
		return RW16(cdb, write, lba, blocks, fua)
	}
	*cdb = CDB{}
	cdb[0] = byte(OpRead10)
	if write {
		cdb[0] = byte(OpWrite10)
	}
	if fua {
		cdb[1] = cdbFUA
	}
	binary.BigEndian.PutUint32(cdb[2:6], uint32(lba))
	binary.BigEndian.PutUint16(cdb[7:9], uint16(blocks))
	return cdb10Len
}

// RW16 always builds READ(16)/WRITE(16), for targets that want only the
// 16-byte form.
func RW16(cdb *CDB, write bool, lba uint64, blocks uint32, fua bool) int {
	*cdb = CDB{}
	cdb[0] = byte(OpRead16)
	if write {
		cdb[0] = byte(OpWrite16)
	}
	if fua {
		cdb[1] = cdbFUA
	}
	binary.BigEndian.PutUint64(cdb[2:10], lba)
	binary.BigEndian.PutUint32(cdb[10:14], blocks)
	return cdb16Len
}

// SyncCache builds SYNCHRONIZE CACHE(10), or (16) when the range needs it.
// lba 0 and blocks 0 mean the whole medium. immed asks the target to answer
// before the flush completes (we never want that for a flush the upper layer
// waits on, but the bit is there for completeness).
func SyncCache(cdb *CDB, lba uint64, blocks uint32, immed bool) int {
	if Uses16(lba, blocks) {
		return SyncCache16(cdb, lba, blocks, immed)
	}
	*cdb = CDB{}
	cdb[0] = byte(OpSynchronizeCache)
	if immed {
		cdb[1] = cdbImmed
	}
	binary.BigEndian.PutUint32(cdb[2:6], uint32(lba))
	binary.BigEndian.PutUint16(cdb[7:9], uint16(blocks))
	return cdb10Len
}

// SyncCache16 builds SYNCHRONIZE CACHE(16).
func SyncCache16(cdb *CDB, lba uint64, blocks uint32, immed bool) int {
	*cdb = CDB{}
	cdb[0] = byte(OpSyncCache16)
	if immed {
		cdb[1] = cdbImmed
	}
	binary.BigEndian.PutUint64(cdb[2:10], lba)
	binary.BigEndian.PutUint32(cdb[10:14], blocks)
	return cdb16Len
}

// Unmap builds UNMAP; paramLen is the length of the parameter list that
// AppendUnmapParams produced (sent as data-out).
func Unmap(cdb *CDB, paramLen uint16, anchor bool) int {
	*cdb = CDB{}
	cdb[0] = byte(OpUnmap)
	if anchor {
		cdb[1] = cdbAnchor
	}
	binary.BigEndian.PutUint16(cdb[7:9], paramLen)
	return cdb10Len
}

// WriteSame16 builds WRITE SAME(16). With unmap set the target may deallocate
// the blocks instead of writing the one data-out block to each (the
// discard/write-zeroes path when VPD 0xB2 reports LBPWS).
func WriteSame16(cdb *CDB, lba uint64, blocks uint32, unmap bool) int {
	*cdb = CDB{}
	cdb[0] = byte(OpWriteSame16)
	if unmap {
		cdb[1] = cdbWSUnmap
	}
	binary.BigEndian.PutUint64(cdb[2:10], lba)
	binary.BigEndian.PutUint32(cdb[10:14], blocks)
	return cdb16Len
}

// Inquiry builds INQUIRY for the standard inquiry data.
func Inquiry(cdb *CDB, alloc uint16) int {
	*cdb = CDB{}
	cdb[0] = byte(OpInquiry)
	binary.BigEndian.PutUint16(cdb[3:5], alloc)
	return cdb6Len
}

// InquiryVPD builds INQUIRY with EVPD for one VPD page.
func InquiryVPD(cdb *CDB, page PageCode, alloc uint16) int {
	*cdb = CDB{}
	cdb[0] = byte(OpInquiry)
	cdb[1] = cdbEVPD
	cdb[2] = byte(page)
	binary.BigEndian.PutUint16(cdb[3:5], alloc)
	return cdb6Len
}

// ReadCapacity16 builds READ CAPACITY(16) (SERVICE ACTION IN(16), service
// action 0x10). ReadCapacity16Len is the allocation length to use.
func ReadCapacity16(cdb *CDB, alloc uint32) int {
	*cdb = CDB{}
	cdb[0] = byte(OpServiceActionIn)
	cdb[1] = saReadCap16
	binary.BigEndian.PutUint32(cdb[10:14], alloc)
	return cdb16Len
}

// TestUnitReady builds TEST UNIT READY.
func TestUnitReady(cdb *CDB) int {
	*cdb = CDB{}
	cdb[0] = byte(OpTestUnitReady)
	return cdb6Len
}

// SelectReport is the SELECT REPORT field of REPORT LUNS.
type SelectReport byte

// SELECT REPORT values (SPC-4 table 284).
const (
	ReportAll            SelectReport = 0x00 // logical units, not well-known
	ReportWellKnown      SelectReport = 0x01
	ReportAllIncludingWK SelectReport = 0x02
)

// ReportLUNs builds REPORT LUNS. alloc must be at least 16 (SPC-4).
func ReportLUNs(cdb *CDB, sel SelectReport, alloc uint32) int {
	*cdb = CDB{}
	cdb[0] = byte(OpReportLUNs)
	cdb[2] = byte(sel)
	binary.BigEndian.PutUint32(cdb[6:10], alloc)
	return cdb12Len
}

// PageControl is the PC field of MODE SENSE.
type PageControl byte

// Page control values.
const (
	PageCurrent     PageControl = 0
	PageChangeable  PageControl = 1
	PageDefault     PageControl = 2
	PageSaved       PageControl = 3
	pageControlMask             = 3
)

// ModeSense10 builds MODE SENSE(10) for one page/subpage (page 0x3F = all).
// dbd asks the target to leave out block descriptors.
func ModeSense10(cdb *CDB, page, subpage byte, pc PageControl, dbd bool, alloc uint16) int {
	*cdb = CDB{}
	cdb[0] = byte(OpModeSense10)
	if dbd {
		cdb[1] = cdbDBD
	}
	cdb[2] = byte(pc&pageControlMask)<<pcShift | page&pageCodeMask
	cdb[3] = subpage
	binary.BigEndian.PutUint16(cdb[7:9], alloc)
	return cdb10Len
}
