package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// DumpData is the document Dump writes: everything in the store, in a
// stable order, with the records that do not decode listed as problems
// instead of being dropped.
type DumpData struct {
	Path          string            `json:"path"`
	SchemaVersion uint32            `json:"schema_version"`
	Created       string            `json:"created"`
	Identities    []Identity        `json:"identities"`
	Reservations  []Reservation     `json:"reservations"`
	PathAdmin     []PathAdmin       `json:"path_admin"`
	Policies      map[string]Policy `json:"policies"`
	Problems      []string          `json:"problems"`
}

// Reservation is one device id held by a WWID. Forgotten marks an id kept
// after a non-forced Forget (no identity record, still never reused).
type Reservation struct {
	DevID     int    `json:"dev_id"`
	WWID      string `json:"wwid"`
	Forgotten bool   `json:"forgotten"`
}

// Snapshot reads the whole store in one transaction.
func (s *Store) Snapshot() (*DumpData, error) {
	d := &DumpData{Path: s.path, Identities: []Identity{}, Reservations: []Reservation{},
		PathAdmin: []PathAdmin{}, Policies: map[string]Policy{}, Problems: []string{}}
	bad := func(format string, args ...any) { d.Problems = append(d.Problems, fmt.Sprintf(format, args...)) }
	err := s.view("dump", func(tx *bolt.Tx) error {
		if err := checkMeta(tx); err != nil {
			return err
		}
		meta := tx.Bucket([]byte(bucketMeta))
		d.SchemaVersion = binary.BigEndian.Uint32(meta.Get([]byte(keySchema)))
		d.Created = string(meta.Get([]byte(keyCreated)))
		bound := map[string]bool{}
		_ = tx.Bucket([]byte(bucketIdentity)).ForEach(func(k, v []byte) error {
			id, err := DecodeIdentity(string(k), v)
			if err != nil {
				bad("%v", err)
				return nil
			}
			bound[id.WWID] = true
			d.Identities = append(d.Identities, id)
			return nil
		})
		_ = tx.Bucket([]byte(bucketDevID)).ForEach(func(k, v []byte) error {
			if len(k) != devIDKeyLen {
				bad("devid: key %x is %d bytes", k, len(k))
				return nil
			}
			d.Reservations = append(d.Reservations, Reservation{
				DevID: int(binary.BigEndian.Uint32(k)), WWID: string(v), Forgotten: !bound[string(v)]})
			return nil
		})
		_ = tx.Bucket([]byte(bucketPathAdmin)).ForEach(func(k, v []byte) error {
			pa, err := DecodePathAdmin(string(k), v)
			if err != nil {
				bad("%v", err)
				return nil
			}
			d.PathAdmin = append(d.PathAdmin, pa)
			return nil
		})
		return tx.Bucket([]byte(bucketPolicy)).ForEach(func(k, v []byte) error {
			p, err := DecodePolicy(string(k), v)
			if err != nil {
				bad("%v", err)
				return nil
			}
			d.Policies[string(k)] = p
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(d.Identities, func(a, b Identity) int { return a.DevID - b.DevID })
	slices.SortFunc(d.PathAdmin, func(a, b PathAdmin) int { return strings.Compare(a.PathID, b.PathID) })
	return d, nil
}

// Dump writes the store as indented JSON (DumpData) to w, for `store dump`.
func (s *Store) Dump(w io.Writer) error {
	d, err := s.Snapshot()
	if err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return &OpError{Op: "dump", Path: s.path, Err: err}
	}
	return nil
}
