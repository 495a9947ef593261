package scsi

import (
	"errors"
	"strconv"
)

// Sentinel errors. Decoders wrap them in a *DecodeError; match with errors.Is.
var (
	// ErrShort: the buffer ends before a field the format requires.
	ErrShort = errors.New("scsi: buffer too short")
	// ErrTruncated: the data names a length beyond the buffer (the allocation
	// length of the command was too small); DecodeError.Need says how many
	// bytes to ask for.
	ErrTruncated = errors.New("scsi: response truncated by allocation length")
	// ErrFormat: a field holds a value the format does not allow.
	ErrFormat = errors.New("scsi: malformed data")
	// ErrPageCode: a VPD or mode page other than the one asked for.
	ErrPageCode = errors.New("scsi: unexpected page code")
	// ErrNoDesignator: VPD page 0x83 has no designator usable as a WWID.
	ErrNoDesignator = errors.New("scsi: no usable designator for a WWID")
	// ErrUnsupported: well-formed, but an encoding this package does not
	// interpret (e.g. a hierarchical LUN).
	ErrUnsupported = errors.New("scsi: unsupported encoding")
	// ErrRange: a value given to an encoder does not fit its field.
	ErrRange = errors.New("scsi: value out of range")
)

// DecodeError says which structure failed to decode, where, and why.
type DecodeError struct {
	What   string // e.g. "fixed sense", "VPD page 0x83"
	Offset int    // byte offset of the offending field
	Need   int    // for ErrTruncated/ErrShort: bytes needed, else 0
	Err    error  // one of the sentinels above
}

func (e *DecodeError) Error() string {
	s := "scsi: decode " + e.What + " at offset " + strconv.Itoa(e.Offset)
	if e.Need > 0 {
		s += " (need " + strconv.Itoa(e.Need) + " bytes)"
	}
	return s + ": " + e.Err.Error()
}

func (e *DecodeError) Unwrap() error { return e.Err }

func decodeErr(what string, off int, err error) error {
	return &DecodeError{What: what, Offset: off, Err: err}
}

func shortErr(what string, need int) error {
	return &DecodeError{What: what, Offset: 0, Need: need, Err: ErrShort}
}

func truncErr(what string, need int) error {
	return &DecodeError{What: what, Offset: 0, Need: need, Err: ErrTruncated}
}

// EncodeError reports a value an encoder could not represent.
type EncodeError struct {
	What string // e.g. "LUN"
	Err  error
}

func (e *EncodeError) Error() string { return "scsi: encode " + e.What + ": " + e.Err.Error() }

func (e *EncodeError) Unwrap() error { return e.Err }
