//go:build linux && cgo

package rdma

import (
	"errors"
	"testing"
)

// saSegment is an SA GetTableResp MAD with the given RMPP flags.
func saSegment(rmppVersion, flags byte) []byte {
	m := make([]byte, madSize)
	m[madClassOff], m[madVersionOff], m[madMethodOff] = madClassSA, madSAVersion, 0x92 // GetTableResp
	m[madRMPPVersionOff], m[madRMPPFlagsOff] = rmppVersion, flags
	return m
}

// TestCheckRMPP: a port without the kernel's RMPP reassembly refuses a
// segment of a multi-segment SA answer with ErrRMPP (instead of reading
// it as the whole table) and takes single-segment and non-RMPP answers;
// with kernel RMPP every answer arrives whole and passes.
func TestCheckRMPP(t *testing.T) {
	const active, first, last = rmppFlagActive, rmppFlagFirst, rmppFlagLast
	cases := []struct {
		mad    []byte
		noRMPP bool
		want   error
	}{
		{saSegment(1, active|first), true, ErrRMPP},
		{saSegment(1, active), true, ErrRMPP},
		{saSegment(1, active|last), true, ErrRMPP},
		{saSegment(1, active|first|last), true, nil},
		{saSegment(1, 0x18|active|first|last), true, nil}, // RRespTime bits do not count
		{saSegment(0, 0), true, nil},
		{saSegment(1, active|first), false, nil},
	}
	for i, c := range cases {
		m := &madPort{noRMPP: c.noRMPP}
		if err := m.checkRMPP(c.mad); !errors.Is(err, c.want) || (c.want == nil && err != nil) {
			t.Errorf("case %d: %v, want %v", i, err, c.want)
		}
	}
	dm := saSegment(1, active|first)
	dm[madClassOff] = 0x06 // DM: never RMPP here
	if err := (&madPort{noRMPP: true}).checkRMPP(dm); err != nil {
		t.Errorf("DM MAD: %v", err)
	}
}
