package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode"
	"unicode/utf8"
)

// Records are JSON objects with a record version "v". JSON rather than a
// binary layout because the store is small, read at start and written at
// human pace, and `store dump`/`check` and people reading a hexdump benefit.
// Decoding is strict: unknown fields, trailing data, a missing or zero "v" or
// out-of-range values are corrupt records; a "v" above recordVersion is a
// record from a newer build (ErrNewerSchema).
const recordVersion = 1

// Limits on what the store keeps.
const (
	// MaxDevID is the highest ublk device id: the kernel's ublk_drv hands
	// out ids below UBLK_MAX_UBLKS = UBLK_MINORS = 1 << MINORBITS (20).
	MaxDevID = 1<<20 - 1
	// MaxWWIDLen bounds a WWID: a VPD page 0x83 designator is at most 255
	// bytes; printed as hex with a type prefix it stays below this.
	MaxWWIDLen = 600
	// MaxNameLen bounds path ids, vendor/product/revision strings and policy values.
	MaxNameLen = 256
	// MaxReasonLen bounds an admin's reason text.
	MaxReasonLen = 1024
	// Logical block sizes ublk and SCSI can carry (ublk: 2^9..PAGE_SIZE;
	// SCSI allows larger, which the ublk layer refuses on its own).
	minBlockSize = 512
	maxBlockSize = 1 << 16
)

// Identity is what the store knows about one LU.
type Identity struct {
	WWID              string    `json:"wwid"`
	DevID             int       `json:"dev_id"`   // ublk device id: /dev/ublkb<DevID>
	Capacity          uint64    `json:"capacity"` // bytes, a multiple of LogicalBlockSize
	LogicalBlockSize  uint32    `json:"logical_block_size"`
	PhysicalBlockSize uint32    `json:"physical_block_size"`
	Vendor            string    `json:"vendor"`
	Product           string    `json:"product"`
	Revision          string    `json:"revision"`
	FirstSeen         time.Time `json:"first_seen"`
	LastSeen          time.Time `json:"last_seen"`
}

// PathAdmin is the admin state of one path.
type PathAdmin struct {
	PathID string    `json:"path_id"`
	Failed bool      `json:"failed"`
	Reason string    `json:"reason,omitempty"`
	Since  time.Time `json:"since"`
}

// Policy is a per-WWID policy override. Values are kept as the strings the
// admin gave; the caller (internal/config) validates them before SetPolicy.
// An empty field means "no override".
type Policy struct {
	Selector    string `json:"selector,omitempty"`
	Grouping    string `json:"grouping,omitempty"`
	Failback    string `json:"failback,omitempty"`
	NoPathRetry string `json:"no_path_retry,omitempty"`
}

// IsZero reports whether p overrides nothing.
func (p Policy) IsZero() bool { return p == Policy{} }

// On-disk forms, version 1. They are separate from the API structs so that
// the API can grow without changing the file format.
type identityV1 struct {
	V                 int       `json:"v"`
	DevID             int       `json:"dev_id"`
	Capacity          uint64    `json:"capacity"`
	LogicalBlockSize  uint32    `json:"logical_block_size"`
	PhysicalBlockSize uint32    `json:"physical_block_size"`
	Vendor            string    `json:"vendor"`
	Product           string    `json:"product"`
	Revision          string    `json:"revision"`
	FirstSeen         time.Time `json:"first_seen"`
	LastSeen          time.Time `json:"last_seen"`
}

type pathAdminV1 struct {
	V      int       `json:"v"`
	Failed bool      `json:"failed"`
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
}

type policyV1 struct {
	V           int    `json:"v"`
	Selector    string `json:"selector"`
	Grouping    string `json:"grouping"`
	Failback    string `json:"failback"`
	NoPathRetry string `json:"no_path_retry"`
}

// decodeStrict decodes exactly one JSON object into v.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("trailing data after the record")
	}
	return nil
}

// checkVersion returns the kind of error (ErrNewerSchema or ErrCorrupt) and
// the problem, or nil, nil.
func checkVersion(v int) (kind, err error) {
	switch {
	case v == recordVersion:
		return nil, nil
	case v > recordVersion:
		return ErrNewerSchema, fmt.Errorf("record version %d, this build reads version %d", v, recordVersion)
	default:
		return ErrCorrupt, fmt.Errorf("record version %d", v)
	}
}

// EncodeIdentity returns the stored form of id (the WWID is the key and is
// not part of the value).
func EncodeIdentity(id Identity) ([]byte, error) {
	if f, err := validateIdentity(id); err != nil {
		return nil, fmt.Errorf("%w: identity %q field %s: %v", ErrInvalidArgument, id.WWID, f, err)
	}
	return json.Marshal(identityV1{
		V: recordVersion, DevID: id.DevID, Capacity: id.Capacity,
		LogicalBlockSize: id.LogicalBlockSize, PhysicalBlockSize: id.PhysicalBlockSize,
		Vendor: id.Vendor, Product: id.Product, Revision: id.Revision,
		FirstSeen: id.FirstSeen.UTC(), LastSeen: id.LastSeen.UTC(),
	})
}

// DecodeIdentity decodes a stored identity record of wwid. It never panics;
// errors are *DecodeError.
func DecodeIdentity(wwid string, data []byte) (Identity, error) {
	fail := func(field string, kind, err error) (Identity, error) {
		return Identity{}, &DecodeError{Bucket: bucketIdentity, Key: wwid, Field: field, Kind: kind, Err: err}
	}
	var r identityV1
	if err := decodeStrict(data, &r); err != nil {
		return fail("", ErrCorrupt, err)
	}
	if kind, err := checkVersion(r.V); err != nil {
		return fail("v", kind, err)
	}
	id := Identity{
		WWID: wwid, DevID: r.DevID, Capacity: r.Capacity,
		LogicalBlockSize: r.LogicalBlockSize, PhysicalBlockSize: r.PhysicalBlockSize,
		Vendor: r.Vendor, Product: r.Product, Revision: r.Revision,
		FirstSeen: r.FirstSeen.UTC(), LastSeen: r.LastSeen.UTC(),
	}
	if f, err := validateIdentity(id); err != nil {
		return fail(f, ErrCorrupt, err)
	}
	return id, nil
}

// validateIdentity checks a complete identity (as stored).
func validateIdentity(id Identity) (field string, err error) {
	if err := checkWWID(id.WWID); err != nil {
		return "wwid", err
	}
	if id.DevID < 0 || id.DevID > MaxDevID {
		return "dev_id", fmt.Errorf("device id %d outside 0..%d", id.DevID, MaxDevID)
	}
	if f, err := validateGeometry(id); err != nil {
		return f, err
	}
	if id.LastSeen.Before(id.FirstSeen) {
		return "last_seen", fmt.Errorf("last seen %s is before first seen %s", id.LastSeen.Format(time.RFC3339Nano), id.FirstSeen.Format(time.RFC3339Nano))
	}
	return "", nil
}

// validateGeometry checks what the caller of Bind supplies.
func validateGeometry(id Identity) (field string, err error) {
	lbs, pbs := id.LogicalBlockSize, id.PhysicalBlockSize
	if lbs < minBlockSize || lbs > maxBlockSize || lbs&(lbs-1) != 0 {
		return "logical_block_size", fmt.Errorf("logical block size %d is not a power of two in %d..%d", lbs, minBlockSize, maxBlockSize)
	}
	if pbs < lbs || pbs > maxBlockSize || pbs&(pbs-1) != 0 {
		return "physical_block_size", fmt.Errorf("physical block size %d is not a power of two in %d..%d", pbs, lbs, maxBlockSize)
	}
	if id.Capacity%uint64(lbs) != 0 {
		return "capacity", fmt.Errorf("capacity %d is not a multiple of the logical block size %d", id.Capacity, lbs)
	}
	for _, s := range []struct{ name, v string }{{"vendor", id.Vendor}, {"product", id.Product}, {"revision", id.Revision}} {
		if err := validateText(s.v, MaxNameLen); err != nil {
			return s.name, err
		}
	}
	return "", nil
}

// ValidateWWID reports whether s can be a key of the store: 1..MaxWWIDLen
// bytes of printable ASCII, no spaces (the SCSI layer's WWID form replaces
// them, as multipath does). The error wraps ErrInvalidArgument.
func ValidateWWID(s string) error {
	if err := checkWWID(s); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	return nil
}

func checkWWID(s string) error {
	if s == "" {
		return errors.New("empty WWID")
	}
	if len(s) > MaxWWIDLen {
		return fmt.Errorf("WWID of %d bytes (at most %d)", len(s), MaxWWIDLen)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("WWID %q has byte 0x%02x at %d (accepted: printable ASCII without spaces)", s, c, i)
		}
	}
	return nil
}

// validateText accepts valid UTF-8 without control characters, up to max bytes.
func validateText(s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%d bytes (at most %d)", len(s), max)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%q is not valid UTF-8", s)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("%q contains a control character", s)
		}
	}
	return nil
}

func validateKey(what, s string) error {
	if s == "" {
		return fmt.Errorf("empty %s", what)
	}
	if err := validateText(s, MaxNameLen); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func encodePathAdmin(p PathAdmin) ([]byte, error) {
	return json.Marshal(pathAdminV1{V: recordVersion, Failed: p.Failed, Reason: p.Reason, Since: p.Since.UTC()})
}

// DecodePathAdmin decodes a stored path admin record. It never panics.
func DecodePathAdmin(pathID string, data []byte) (PathAdmin, error) {
	fail := func(field string, kind, err error) (PathAdmin, error) {
		return PathAdmin{}, &DecodeError{Bucket: bucketPathAdmin, Key: pathID, Field: field, Kind: kind, Err: err}
	}
	var r pathAdminV1
	if err := decodeStrict(data, &r); err != nil {
		return fail("", ErrCorrupt, err)
	}
	if kind, err := checkVersion(r.V); err != nil {
		return fail("v", kind, err)
	}
	if err := validateKey("path id", pathID); err != nil {
		return fail("path_id", ErrCorrupt, err)
	}
	if err := validateText(r.Reason, MaxReasonLen); err != nil {
		return fail("reason", ErrCorrupt, err)
	}
	return PathAdmin{PathID: pathID, Failed: r.Failed, Reason: r.Reason, Since: r.Since.UTC()}, nil
}

func encodePolicy(p Policy) ([]byte, error) {
	return json.Marshal(policyV1{V: recordVersion, Selector: p.Selector, Grouping: p.Grouping, Failback: p.Failback, NoPathRetry: p.NoPathRetry})
}

func validatePolicy(p Policy) (field string, err error) {
	for _, s := range []struct{ name, v string }{
		{"selector", p.Selector}, {"grouping", p.Grouping}, {"failback", p.Failback}, {"no_path_retry", p.NoPathRetry},
	} {
		if err := validateText(s.v, MaxNameLen); err != nil {
			return s.name, err
		}
	}
	return "", nil
}

// DecodePolicy decodes a stored policy override record. It never panics.
func DecodePolicy(wwid string, data []byte) (Policy, error) {
	fail := func(field string, kind, err error) (Policy, error) {
		return Policy{}, &DecodeError{Bucket: bucketPolicy, Key: wwid, Field: field, Kind: kind, Err: err}
	}
	var r policyV1
	if err := decodeStrict(data, &r); err != nil {
		return fail("", ErrCorrupt, err)
	}
	if kind, err := checkVersion(r.V); err != nil {
		return fail("v", kind, err)
	}
	p := Policy{Selector: r.Selector, Grouping: r.Grouping, Failback: r.Failback, NoPathRetry: r.NoPathRetry}
	if f, err := validatePolicy(p); err != nil {
		return fail(f, ErrCorrupt, err)
	}
	if p.IsZero() {
		return fail("", ErrCorrupt, errors.New("empty policy override (overrides nothing)"))
	}
	return p, nil
}
