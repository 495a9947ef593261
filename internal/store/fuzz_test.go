package store

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"
)

// FuzzDecodeIdentity: the decoder never panics, every error is a
// *DecodeError of a known kind, and what decodes re-encodes to a record
// that decodes to the same identity.
func FuzzDecodeIdentity(f *testing.F) {
	good, err := EncodeIdentity(Identity{WWID: "naa.1", DevID: 3, Capacity: 1 << 30, LogicalBlockSize: 512,
		PhysicalBlockSize: 4096, Vendor: "LIO-ORG", Product: "rd", Revision: "4.0",
		FirstSeen: time.Unix(1e9, 5).UTC(), LastSeen: time.Unix(2e9, 0).UTC()})
	if err != nil {
		f.Fatal(err)
	}
	f.Add("naa.1", good)
	f.Add("naa.1", []byte(`{"v":2}`))
	f.Add("naa.1", []byte(`{"v":1,"dev_id":-1}`))
	f.Add("naa.1", []byte(`{"v":1,"dev_id":1,"logical_block_size":512,"physical_block_size":512,"first_seen":"2026-01-01T00:00:00+02:00","last_seen":"2026-01-01T00:00:00Z"} x`))
	f.Add("", []byte(`null`))
	f.Fuzz(func(t *testing.T, wwid string, data []byte) {
		id, err := DecodeIdentity(wwid, data)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || !(errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNewerSchema)) {
				t.Fatalf("error %v is not a *DecodeError of a known kind", err)
			}
			return
		}
		again, err := EncodeIdentity(id)
		if err != nil {
			t.Fatalf("decoded identity does not encode: %v (%+v)", err, id)
		}
		id2, err := DecodeIdentity(wwid, again)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v\n%s", err, again)
		}
		if diff := cmp.Diff(id, id2); diff != "" {
			t.Fatalf("round trip changed the identity (-first +second):\n%s", diff)
		}
	})
}

// FuzzDecodeAdmin does the same for path admin and policy records.
func FuzzDecodeAdmin(f *testing.F) {
	pa, _ := encodePathAdmin(PathAdmin{PathID: "p", Failed: true, Reason: "x", Since: time.Unix(1, 0)})
	pol, _ := encodePolicy(Policy{Selector: "round-robin", NoPathRetry: "queue"})
	f.Add("p", pa)
	f.Add("naa.1", pol)
	f.Add("naa.1", []byte(`{"v":1}`))
	f.Fuzz(func(t *testing.T, key string, data []byte) {
		if p, err := DecodePathAdmin(key, data); err == nil {
			b, err := encodePathAdmin(p)
			if err != nil {
				t.Fatal(err)
			}
			p2, err := DecodePathAdmin(key, b)
			if err != nil || !cmp.Equal(p, p2) {
				t.Fatalf("path admin round trip: %+v -> %+v, %v", p, p2, err)
			}
		} else if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNewerSchema) {
			t.Fatalf("path admin error of unknown kind: %v", err)
		}
		if p, err := DecodePolicy(key, data); err == nil {
			b, err := encodePolicy(p)
			if err != nil {
				t.Fatal(err)
			}
			p2, err := DecodePolicy(key, b)
			if err != nil || p != p2 {
				t.Fatalf("policy round trip: %+v -> %+v, %v", p, p2, err)
			}
		} else if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNewerSchema) {
			t.Fatalf("policy error of unknown kind: %v", err)
		}
	})
}

// FuzzOpen: whatever the file holds, Open returns an error of a known kind
// or a store that passes Check; it never panics or faults.
func FuzzOpen(f *testing.F) {
	// A seed with 1 KiB pages keeps inputs small (bbolt's minimum is 4 pages).
	seed := filepath.Join(f.TempDir(), "seed.db")
	db, err := bolt.Open(seed, fileMode, &bolt.Options{PageSize: 1024, Timeout: time.Nanosecond})
	if err != nil {
		f.Fatal(err)
	}
	if err := errors.Join(db.Update(func(tx *bolt.Tx) error { return initSchema(tx, time.Unix(0, 0)) }), db.Close()); err != nil {
		f.Fatal(err)
	}
	s, err := Open(seed, Options{})
	if err != nil {
		f.Fatal(err)
	}
	if _, _, err := s.Bind("naa.seed", lu(8)); err != nil {
		f.Fatal(err)
	}
	if err := s.Close(); err != nil {
		f.Fatal(err)
	}
	b, err := os.ReadFile(seed)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Add([]byte("not a store"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "store.db")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		// Read-only: no fsync per input (write-mode refusals are covered
		// by TestOpenRefusesBadFiles), the same header walk and checks.
		s, err := Open(path, Options{LockTimeout: time.Nanosecond, ReadOnly: true})
		if err != nil {
			for _, known := range []error{ErrNotDatabase, ErrTruncated, ErrCorrupt, ErrForeign, ErrNewerSchema} {
				if errors.Is(err, known) {
					return
				}
			}
			t.Fatalf("Open error of unknown kind: %v", err)
		}
		defer s.Close()
		if err := s.Check(); err != nil {
			t.Fatalf("opened store fails Check: %v", err)
		}
	})
}
