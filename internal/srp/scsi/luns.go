package scsi

import "encoding/binary"

// LUN is an 8-byte SAM LUN as it travels in SRP_CMD and REPORT LUNS.
type LUN [8]byte

// AddressMethod is the ADDRESS METHOD of the first level of a LUN (SAM-5
// 4.7.7): the top two bits of byte 0.
type AddressMethod byte

// Address methods.
const (
	AddrPeripheral  AddressMethod = 0 // 00b: bus id + 8-bit LUN
	AddrFlat        AddressMethod = 1 // 01b: 14-bit flat space LUN
	AddrLogicalUnit AddressMethod = 2 // 10b: target/bus/5-bit LUN
	AddrExtended    AddressMethod = 3 // 11b: extended addressing (length + method)
)

func (m AddressMethod) String() string {
	switch m {
	case AddrPeripheral:
		return "peripheral"
	case AddrFlat:
		return "flat"
	case AddrLogicalUnit:
		return "logical-unit"
	case AddrExtended:
		return "extended"
	}
	return "AddressMethod(" + hex2(byte(m)) + ")"
}

// LUN encoding constants (SAM-5 tables 10..27).
const (
	lunMethodShift    = 6
	lunBusMask        = 0x3F // peripheral: bus identifier; logical unit: target
	lunFlatHiMask     = 0x3F
	lunLUBusShift     = 5
	lunLUNumMask      = 0x1F
	lunExtLenMask     = 0x30
	lunExtLenShift    = 4
	lunExtFlat        = 0xD2 // extended flat space: length 01b, method 2h
	lunLongExtFlat    = 0xE2 // long extended flat space: length 10b, method 2h
	lunWellKnown      = 0xC1 // well-known LUN: length 00b, method 1h
	lunPeripheralMax  = 0xFF
	lunFlatMax        = 0x3FFF
	lunExtFlatMax     = 0xFFFFFF
	lunLongExtFlatMax = 0xFF_FFFF_FFFF
	lunLevelLen       = 2
)

// Method returns the address method of the first level.
func (l LUN) Method() AddressMethod { return AddressMethod(l[0] >> lunMethodShift) }

// levelLen is the number of bytes the first level occupies.
func (l LUN) levelLen() int {
	if l.Method() != AddrExtended {
		return lunLevelLen
	}
	// Extended addressing: length field 0..3 → 2, 4, 6, 8 bytes.
	return lunLevelLen * (1 + int(l[0]&lunExtLenMask>>lunExtLenShift))
}

// Number decodes a single-level LUN to its number, for the encodings a target
// uses: peripheral (bus 0), flat space, logical unit addressing (target 0,
// bus 0), extended flat space and long extended flat space. Hierarchical
// LUNs (a non-zero second level, or a peripheral bus id ≠ 0 that names one),
// well-known LUNs and other extended methods return ErrUnsupported.
func (l LUN) Number() (uint64, error) {
	n := l.levelLen()
	for _, c := range l[n:] {
		if c != 0 {
			return 0, decodeErr("hierarchical LUN", n, ErrUnsupported)
		}
	}
	switch l.Method() {
	case AddrPeripheral:
		if l[0]&lunBusMask != 0 {
			return 0, decodeErr("peripheral LUN with bus id", 0, ErrUnsupported)
		}
		return uint64(l[1]), nil
	case AddrFlat:
		return uint64(l[0]&lunFlatHiMask)<<8 | uint64(l[1]), nil
	case AddrLogicalUnit:
		if l[0]&lunBusMask != 0 || l[1]>>lunLUBusShift != 0 {
			return 0, decodeErr("logical unit address with target/bus", 0, ErrUnsupported)
		}
		return uint64(l[1] & lunLUNumMask), nil
	}
	switch l[0] {
	case lunExtFlat:
		return uint64(l[1])<<16 | uint64(l[2])<<8 | uint64(l[3]), nil
	case lunLongExtFlat:
		return uint64(l[1])<<32 | uint64(l[2])<<24 | uint64(l[3])<<16 | uint64(l[4])<<8 | uint64(l[5]), nil
	}
	return 0, decodeErr("extended LUN 0x"+hex2(l[0]), 0, ErrUnsupported)
}

// IsWellKnown reports whether l is a well-known LUN (e.g. REPORT LUNS W-LUN
// c1 01 00 ...), which names a function, not a logical unit.
func (l LUN) IsWellKnown() bool { return l[0] == lunWellKnown }

// String prints the LUN number when it has one, else the raw bytes.
func (l LUN) String() string {
	if n, err := l.Number(); err == nil {
		return uitoa(n)
	}
	var buf [2 * len(LUN{})]byte
	const digits = "0123456789abcdef"
	for i, c := range l {
		buf[2*i], buf[2*i+1] = digits[c>>4], digits[c&0xF]
	}
	return "0x" + string(buf[:])
}

func uitoa(n uint64) string {
	var buf [20]byte
	i := len(buf)
	for {
		i--
		buf[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return string(buf[i:])
}

// EncodeLUN encodes LUN number n the way LIO and SPC-4 targets do: peripheral
// device addressing below 256, flat space below 16384, then extended flat
// space (24 bits) and long extended flat space (40 bits). Larger numbers are
// ErrRange.
func EncodeLUN(n uint64) (LUN, error) {
	var l LUN
	switch {
	case n <= lunPeripheralMax:
		l[1] = byte(n)
	case n <= lunFlatMax:
		l[0] = byte(AddrFlat)<<lunMethodShift | byte(n>>8)
		l[1] = byte(n)
	case n <= lunExtFlatMax:
		l[0] = lunExtFlat
		l[1], l[2], l[3] = byte(n>>16), byte(n>>8), byte(n)
	case n <= lunLongExtFlatMax:
		l[0] = lunLongExtFlat
		l[1], l[2], l[3], l[4], l[5] = byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	default:
		return LUN{}, &EncodeError{What: "LUN " + uitoa(n), Err: ErrRange}
	}
	return l, nil
}

// REPORT LUNS parameter data layout (SPC-4 6.33).
const (
	reportLUNsHdrLen = 8
	// ReportLUNsMinAlloc is the smallest allocation length SPC-4 allows.
	ReportLUNsMinAlloc = 16
	lunEntryLen        = 8
)

// ParseReportLUNs decodes REPORT LUNS parameter data into the raw LUNs, in
// the target's order. If the list is longer than b, it returns ErrTruncated
// with Need set to the allocation length that would hold it all.
func ParseReportLUNs(b []byte) ([]LUN, error) {
	if len(b) < reportLUNsHdrLen {
		return nil, shortErr("REPORT LUNS data", reportLUNsHdrLen)
	}
	n := uint64(binary.BigEndian.Uint32(b))
	if n%lunEntryLen != 0 {
		return nil, decodeErr("REPORT LUNS list length", 0, ErrFormat)
	}
	if need := reportLUNsHdrLen + n; need > uint64(len(b)) {
		return nil, truncErr("REPORT LUNS data", int(min(need, uint64(maxInt))))
	}
	luns := make([]LUN, n/lunEntryLen)
	for i := range luns {
		copy(luns[i][:], b[reportLUNsHdrLen+i*lunEntryLen:])
	}
	return luns, nil
}

const maxInt = int(^uint(0) >> 1)

// AppendReportLUNs encodes REPORT LUNS parameter data.
func AppendReportLUNs(b []byte, luns []LUN) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(luns)*lunEntryLen))
	b = append(b, 0, 0, 0, 0)
	for i := range luns {
		b = append(b, luns[i][:]...)
	}
	return b
}
