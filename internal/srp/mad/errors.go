package mad

import (
	"errors"
	"fmt"
)

// Sentinel errors. Decoders return a *DecodeError, encoders an *EncodeError,
// and Status.Err a *StatusError; each wraps one of these, so callers match
// with errors.Is.
var (
	// ErrShortBuffer: the buffer ends before the fixed part of the MAD or
	// record (or, when encoding, the destination is smaller than needed).
	ErrShortBuffer = errors.New("mad: short buffer")
	// ErrBadHeader: a common-header field that this package does not speak
	// (base version other than 1, an unexpected class or attribute).
	ErrBadHeader = errors.New("mad: unexpected header field")
	// ErrBadValue: a field whose value does not fit its wire field or
	// contradicts another field (an AttributeOffset of zero, a slot
	// outside 1..128).
	ErrBadValue = errors.New("mad: bad field value")
	// ErrStatus: a response carries a non-zero MAD status; the
	// *StatusError says which.
	ErrStatus = errors.New("mad: error status")
	// ErrNoRecords: the SA answered "no records" (class status 0x0300);
	// wraps ErrStatus too.
	ErrNoRecords = errors.New("mad: no records")
)

// DecodeError reports why a MAD or record could not be decoded. What names
// the structure (e.g. "PathRecord"), Field its field and Offset the field's
// byte offset inside the structure.
type DecodeError struct {
	What   string
	Field  string
	Offset int
	Err    error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("mad: decode %s: %s at offset %d: %v", e.What, e.Field, e.Offset, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

func decodeErr(what, field string, off int, err error) error {
	return &DecodeError{What: what, Field: field, Offset: off, Err: err}
}

// EncodeError reports why a value could not be encoded.
type EncodeError struct {
	What  string
	Field string
	Err   error
}

func (e *EncodeError) Error() string {
	return fmt.Sprintf("mad: encode %s: %s: %v", e.What, e.Field, e.Err)
}

func (e *EncodeError) Unwrap() error { return e.Err }

func encodeErr(what, field string, err error) error {
	return &EncodeError{What: what, Field: field, Err: err}
}

// StatusError is a response whose MAD status is not zero.
type StatusError struct {
	Class  Class
	Attr   AttrID
	Status Status
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("mad: %v %v: status %v", e.Class, e.Attr.Name(e.Class), e.Status.Describe(e.Class))
}

// Unwrap yields ErrStatus, plus ErrNoRecords for the SA's "no records".
func (e *StatusError) Unwrap() []error {
	if e.Class == ClassSA && e.Status.ClassCode() == SAStatusNoRecords {
		return []error{ErrStatus, ErrNoRecords}
	}
	return []error{ErrStatus}
}
