package srp

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by a decoder is a *DecodeError and
// every error returned by an encoder is an *EncodeError; both wrap one of
// these, so callers match with errors.Is.
var (
	// ErrShortBuffer: the buffer ends before the fixed part of the IU (or,
	// when encoding, the destination is smaller than Len()).
	ErrShortBuffer = errors.New("short buffer")
	// ErrBadOpcode: the opcode byte is not the one of the IU being decoded,
	// or is not an SRP opcode at all.
	ErrBadOpcode = errors.New("bad opcode")
	// ErrBadLength: a length or count field points past the end of the
	// buffer, or a value does not fit its wire field.
	ErrBadLength = errors.New("bad length")
	// ErrBadFormat: a data descriptor format nibble that SRP does not
	// define, or one used where SRP forbids it (immediate data for DATA-IN).
	ErrBadFormat = errors.New("bad descriptor format")
	// ErrReserved: reserved bits set inside a field whose value depends on
	// them being zero (the low two bits of ADDITIONAL CDB LENGTH).
	ErrReserved = errors.New("reserved bits set")
)

// DecodeError reports why an IU could not be decoded. IU is the information
// unit that was being decoded, Field the kernel's name for the offending field
// (include/scsi/srp.h spelling), Offset its byte offset from the start of the
// IU.
type DecodeError struct {
	IU     Opcode
	Field  string
	Offset int
	Err    error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("srp: decode %v: %s at offset %d: %v", e.IU, e.Field, e.Offset, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

func decodeErr(iu Opcode, field string, off int, err error) error {
	return &DecodeError{IU: iu, Field: field, Offset: off, Err: err}
}

// EncodeError reports why an IU value could not be encoded.
type EncodeError struct {
	IU    Opcode
	Field string
	Err   error
}

func (e *EncodeError) Error() string {
	return fmt.Sprintf("srp: encode %v: %s: %v", e.IU, e.Field, e.Err)
}

func (e *EncodeError) Unwrap() error { return e.Err }

func encodeErr(iu Opcode, field string, err error) error {
	return &EncodeError{IU: iu, Field: field, Err: err}
}
