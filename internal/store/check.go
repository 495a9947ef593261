package store

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// maxCheckProblems bounds the list a damaged store produces.
const maxCheckProblems = 100

// Check verifies the whole store: bbolt's own page-level check, the schema,
// that every record decodes, that every identity's device id is reserved
// for that identity and that no WWID holds two ids (so ids are unique). It
// returns an *OpError wrapping *CheckError (ErrCorrupt) listing every
// problem, or nil.
func (s *Store) Check() error {
	if err := s.check(); err != nil {
		return &OpError{Op: "check", Path: s.path, Err: err}
	}
	return nil
}

func (s *Store) check() error {
	var problems []string
	add := func(format string, args ...any) {
		if len(problems) < maxCheckProblems {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	err := guard(func() error {
		return s.db.View(func(tx *bolt.Tx) error {
			for err := range tx.Check() {
				add("bbolt: %v", err)
			}
			if err := checkMeta(tx); err != nil {
				add("%v", err)
				return nil
			}
			checkRecords(tx, add)
			return nil
		})
	})
	if err != nil {
		add("%v", err)
	}
	if len(problems) > 0 {
		return &CheckError{Problems: problems}
	}
	return nil
}

func checkRecords(tx *bolt.Tx, add func(string, ...any)) {
	// Reservations: id → WWID, and no WWID twice.
	owners := map[int]string{}
	held := map[string]int{}
	_ = tx.Bucket([]byte(bucketDevID)).ForEach(func(k, v []byte) error {
		if len(k) != devIDKeyLen {
			add("devid: key %x is %d bytes, want %d", k, len(k), devIDKeyLen)
			return nil
		}
		id := int(binary.BigEndian.Uint32(k))
		if id > MaxDevID {
			add("devid: device id %d above %d", id, MaxDevID)
		}
		if err := checkWWID(string(v)); err != nil {
			add("devid: device id %d: %v", id, err)
			return nil
		}
		if other, dup := held[string(v)]; dup {
			add("devid: WWID %q holds device ids %d and %d", v, other, id)
		}
		held[string(v)] = id
		owners[id] = string(v)
		return nil
	})
	_ = tx.Bucket([]byte(bucketIdentity)).ForEach(func(k, v []byte) error {
		id, err := DecodeIdentity(string(k), v)
		if err != nil {
			add("%v", err)
			return nil
		}
		switch owner, ok := owners[id.DevID]; {
		case !ok:
			add("identity %q: device id %d has no reservation", id.WWID, id.DevID)
		case owner != id.WWID:
			add("identity %q: device id %d is reserved for %q", id.WWID, id.DevID, owner)
		}
		return nil
	})
	_ = tx.Bucket([]byte(bucketPathAdmin)).ForEach(func(k, v []byte) error {
		if _, err := DecodePathAdmin(string(k), v); err != nil {
			add("%v", err)
		}
		return nil
	})
	_ = tx.Bucket([]byte(bucketPolicy)).ForEach(func(k, v []byte) error {
		if err := checkWWID(string(k)); err != nil {
			add("policy: key: %v", err)
		}
		if _, err := DecodePolicy(string(k), v); err != nil {
			add("%v", err)
		}
		return nil
	})
}
