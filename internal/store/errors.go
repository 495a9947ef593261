package store

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Every error returned by this package wraps one of them
// (through *OpError and the typed errors below), so callers match with
// errors.Is.
var (
	// ErrInUse: another process (or another Store in this process) holds the
	// file's lock.
	ErrInUse = errors.New("store is in use by another process")
	// ErrNotDatabase: the file is not a bbolt database at all.
	ErrNotDatabase = errors.New("not a bbolt database")
	// ErrTruncated: the file is shorter than its own metadata says it is.
	ErrTruncated = errors.New("store file is truncated")
	// ErrCorrupt: the file is a bbolt database, or one of our records,
	// that is damaged.
	ErrCorrupt = errors.New("store file is corrupt")
	// ErrForeign: a valid bbolt database that was not written by srp-mpathd.
	ErrForeign = errors.New("not an srp-mpathd store (foreign bbolt database)")
	// ErrNewerSchema: the store was written by a newer srp-mpathd.
	ErrNewerSchema = errors.New("store schema is newer than this build supports")
	// ErrNotFound: no record under that key.
	ErrNotFound = errors.New("not found")
	// ErrIdentityMismatch: a WWID came back with a geometry that differs
	// from the one bound to its device id.
	ErrIdentityMismatch = errors.New("identity does not match the stored one")
	// ErrNoFreeDevID: every ublk device id is bound.
	ErrNoFreeDevID = errors.New("no free ublk device id")
	// ErrInvalidArgument: the caller passed a value the store refuses to keep.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrReadOnly: a write on a store opened with Options.ReadOnly.
	ErrReadOnly = errors.New("store is open read-only")
	// ErrClosed: the Store was closed.
	ErrClosed = errors.New("store is closed")
)

// OpError records the operation, the store file and the cause of a failure.
type OpError struct {
	Op   string // "open", "bind", "lookup", ...
	Path string // the store file
	Err  error
}

var _ error = (*OpError)(nil)

func (e *OpError) Error() string {
	return "store: " + e.Op + " " + e.Path + ": " + e.Err.Error()
}

func (e *OpError) Unwrap() error { return e.Err }

// SchemaError reports a schema version this build cannot use.
type SchemaError struct {
	Found     uint32 // the version in the file
	Supported uint32 // SchemaVersion of this build
}

var _ error = (*SchemaError)(nil)

func (e *SchemaError) Error() string {
	return fmt.Sprintf("%v: the file has schema version %d, this build reads up to version %d; upgrade srp-mpathd (an older build cannot use this store)",
		ErrNewerSchema, e.Found, e.Supported)
}

func (e *SchemaError) Unwrap() error { return ErrNewerSchema }

// DecodeError reports a record that does not decode. It wraps Kind
// (ErrCorrupt, or ErrNewerSchema for a record from a newer build) and Err.
type DecodeError struct {
	Bucket string // bucket of the record
	Key    string // key of the record (printable form)
	Field  string // offending field, if known
	Kind   error  // ErrCorrupt or ErrNewerSchema
	Err    error  // what is wrong
}

var _ error = (*DecodeError)(nil)

func (e *DecodeError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v: record %s/%q", e.Kind, e.Bucket, e.Key)
	if e.Field != "" {
		b.WriteString(" field " + e.Field)
	}
	b.WriteString(": " + e.Err.Error())
	return b.String()
}

func (e *DecodeError) Unwrap() []error { return []error{e.Kind, e.Err} }

// MismatchError reports that a WWID came back with a different geometry. It
// wraps ErrIdentityMismatch.
type MismatchError struct {
	WWID   string
	Field  string
	Stored string
	Got    string
}

var _ error = (*MismatchError)(nil)

func (e *MismatchError) Error() string {
	return fmt.Sprintf("%s: %v: %s is %s in the store, the LU now reports %s",
		e.WWID, ErrIdentityMismatch, e.Field, e.Stored, e.Got)
}

func (e *MismatchError) Unwrap() error { return ErrIdentityMismatch }

// CheckError lists every consistency problem Check found. It wraps ErrCorrupt.
type CheckError struct {
	Problems []string
}

var _ error = (*CheckError)(nil)

func (e *CheckError) Error() string {
	return fmt.Sprintf("%v: %d problem(s): %s", ErrCorrupt, len(e.Problems), strings.Join(e.Problems, "; "))
}

func (e *CheckError) Unwrap() error { return ErrCorrupt }
