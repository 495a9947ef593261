package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"
)

// stepClock advances one second per reading, so first/last seen differ.
type stepClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

func newClock() *stepClock { return &stepClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func openAt(t *testing.T, path string, opts Options) *Store {
	t.Helper()
	if opts.Now == nil {
		opts.Now = newClock().Now
	}
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newStore(t *testing.T) (*Store, string) {
	path := filepath.Join(t.TempDir(), "store.db")
	return openAt(t, path, Options{}), path
}

func lu(capBlocks uint64) Identity {
	return Identity{Capacity: capBlocks * 512, LogicalBlockSize: 512, PhysicalBlockSize: 4096,
		Vendor: "LIO-ORG", Product: "ramdisk", Revision: "4.0"}
}

func mustBind(t *testing.T, s *Store, wwid string) int {
	t.Helper()
	id, _, err := s.Bind(wwid, lu(2048))
	if err != nil {
		t.Fatalf("Bind(%s): %v", wwid, err)
	}
	return id
}

func TestBindLookupRoundTrip(t *testing.T) {
	s, _ := newStore(t)
	dev, created, err := s.Bind("naa.6001405aaaa", lu(2048))
	if err != nil || !created || dev != 0 {
		t.Fatalf("Bind = %d, %v, %v; want 0, true, nil", dev, created, err)
	}
	got, err := s.Lookup("naa.6001405aaaa")
	if err != nil {
		t.Fatal(err)
	}
	want := lu(2048)
	want.WWID, want.DevID = "naa.6001405aaaa", 0
	want.FirstSeen, want.LastSeen = got.FirstSeen, got.FirstSeen
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("Lookup mismatch (-want +got):\n%s", diff)
	}

	// Rebind: same id, capacity follows the LU, last seen moves.
	dev2, created, err := s.Bind("naa.6001405aaaa", lu(4096))
	if err != nil || created || dev2 != 0 {
		t.Fatalf("rebind = %d, %v, %v; want 0, false, nil", dev2, created, err)
	}
	got2, _ := s.Lookup("naa.6001405aaaa")
	if got2.Capacity != 4096*512 || !got2.FirstSeen.Equal(got.FirstSeen) || !got2.LastSeen.After(got.LastSeen) {
		t.Fatalf("after rebind: %+v", got2)
	}
	if err := s.Touch("naa.6001405aaaa"); err != nil {
		t.Fatal(err)
	}
	got3, _ := s.Lookup("naa.6001405aaaa")
	if !got3.LastSeen.After(got2.LastSeen) {
		t.Fatalf("Touch did not move last seen: %v -> %v", got2.LastSeen, got3.LastSeen)
	}
	if err := s.Touch("naa.unknown"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Touch(unknown) = %v, want ErrNotFound", err)
	}
	if _, err := s.Lookup("naa.unknown"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Lookup(unknown) = %v, want ErrNotFound", err)
	}
	mustBind(t, s, "naa.b")
	list, err := s.List()
	if err != nil || len(list) != 2 || list[0].WWID != "naa.6001405aaaa" || list[1].WWID != "naa.b" || list[1].DevID != 1 {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

func TestIDsStableAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	s := openAt(t, path, Options{})
	wwids := []string{"naa.a", "naa.b", "naa.c", "eui.d"}
	ids := map[string]int{}
	for _, w := range wwids {
		ids[w] = mustBind(t, s, w)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	s2 := openAt(t, path, Options{})
	for i := len(wwids) - 1; i >= 0; i-- { // other order: ids must not follow it
		if got := mustBind(t, s2, wwids[i]); got != ids[wwids[i]] {
			t.Fatalf("%s: id %d after reopen, was %d", wwids[i], got, ids[wwids[i]])
		}
	}
	if got := mustBind(t, s2, "naa.new"); got != len(wwids) {
		t.Fatalf("new WWID got %d, want %d", got, len(wwids))
	}
}

func TestNoIDReuse(t *testing.T) {
	s, _ := newStore(t)
	for i, w := range []string{"naa.a", "naa.b", "naa.c"} {
		if got := mustBind(t, s, w); got != i {
			t.Fatalf("%s got %d want %d", w, got, i)
		}
	}
	// Forget without force: the id stays reserved for naa.b.
	if err := s.Forget("naa.b", false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lookup("naa.b"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Lookup after Forget = %v", err)
	}
	if owner, err := s.DevIDOwner(1); err != nil || owner != "naa.b" {
		t.Fatalf("DevIDOwner(1) = %q, %v; want naa.b", owner, err)
	}
	if got := mustBind(t, s, "naa.d"); got != 3 {
		t.Fatalf("naa.d got %d, want 3 (1 is reserved for naa.b)", got)
	}
	dev, created, err := s.Bind("naa.b", lu(1))
	if err != nil || dev != 1 || !created {
		t.Fatalf("naa.b back = %d, %v, %v; want its old id 1, created", dev, created, err)
	}
	// Forget with force releases the id; the lowest free one goes next.
	if err := s.Forget("naa.b", true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DevIDOwner(1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("DevIDOwner(1) after forced Forget = %v", err)
	}
	if got := mustBind(t, s, "naa.e"); got != 1 {
		t.Fatalf("naa.e got %d, want the released 1", got)
	}
	// A forced Forget of a WWID that only holds a reservation.
	if err := s.Forget("naa.c", false); err != nil {
		t.Fatal(err)
	}
	if err := s.Forget("naa.c", false); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Forget = %v, want ErrNotFound", err)
	}
	if err := s.Forget("naa.c", true); err != nil {
		t.Fatalf("forced Forget of a reservation: %v", err)
	}
	if err := s.Forget("naa.c", true); !errors.Is(err, ErrNotFound) {
		t.Fatalf("forced Forget of nothing = %v, want ErrNotFound", err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

func TestNoFreeDevID(t *testing.T) {
	s, _ := newStore(t)
	s.maxDevID = 1
	mustBind(t, s, "naa.a")
	mustBind(t, s, "naa.b")
	if _, _, err := s.Bind("naa.c", lu(1)); !errors.Is(err, ErrNoFreeDevID) {
		t.Fatalf("Bind with ids exhausted = %v, want ErrNoFreeDevID", err)
	}
	if err := s.Forget("naa.a", false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Bind("naa.c", lu(1)); !errors.Is(err, ErrNoFreeDevID) {
		t.Fatalf("a forgotten id was handed out: %v", err)
	}
}

func TestBindRefusesBadInput(t *testing.T) {
	s, _ := newStore(t)
	mustBind(t, s, "naa.a")
	otherLBS := lu(8)
	otherLBS.LogicalBlockSize = 4096
	_, _, err := s.Bind("naa.a", otherLBS)
	var me *MismatchError
	if !errors.As(err, &me) || !errors.Is(err, ErrIdentityMismatch) || me.Field != "logical block size" {
		t.Fatalf("geometry change = %v, want *MismatchError", err)
	}
	cases := map[string]struct {
		wwid string
		id   Identity
	}{
		"empty wwid":    {"", lu(1)},
		"space in wwid": {"naa.a b", lu(1)},
		"lbs 1000":      {"naa.x", Identity{LogicalBlockSize: 1000, PhysicalBlockSize: 1000}},
		"pbs < lbs":     {"naa.x", Identity{LogicalBlockSize: 4096, PhysicalBlockSize: 512}},
		"odd capacity":  {"naa.x", Identity{Capacity: 1000, LogicalBlockSize: 512, PhysicalBlockSize: 512}},
		"control char":  {"naa.x", Identity{LogicalBlockSize: 512, PhysicalBlockSize: 512, Vendor: "a\x00"}},
	}
	for name, c := range cases {
		if _, _, err := s.Bind(c.wwid, c.id); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: Bind = %v, want ErrInvalidArgument", name, err)
		}
	}
}

func TestAdminStateAndPolicy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	s := openAt(t, path, Options{})
	if pa, err := s.PathAdminState("p1"); err != nil || pa.Failed {
		t.Fatalf("fresh path state = %+v, %v", pa, err)
	}
	if err := s.SetPathAdminState("p1", true, "cable swap"); err != nil {
		t.Fatal(err)
	}
	first, _ := s.PathAdminState("p1")
	if err := s.SetPathAdminState("p1", true, "still swapping"); err != nil {
		t.Fatal(err)
	}
	again, _ := s.PathAdminState("p1")
	if !again.Failed || again.Reason != "still swapping" || !again.Since.Equal(first.Since) {
		t.Fatalf("refail = %+v (first %+v)", again, first)
	}
	if err := s.SetPathAdminState("p2", true, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPathAdminState("", true, "x"); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("empty path id = %v", err)
	}

	pol := Policy{Selector: "round-robin", Failback: "30"}
	if err := s.SetPolicy("naa.a", pol); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetPolicy("naa.b"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetPolicy(none) = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openAt(t, path, Options{})
	list, err := s.ListPathAdmin()
	if err != nil || len(list) != 2 || list[0].PathID != "p1" || list[1].PathID != "p2" {
		t.Fatalf("ListPathAdmin = %+v, %v", list, err)
	}
	if err := s.SetPathAdminState("p1", false, ""); err != nil {
		t.Fatal(err)
	}
	if pa, _ := s.PathAdminState("p1"); pa.Failed {
		t.Fatalf("restored path still failed: %+v", pa)
	}
	if got, err := s.GetPolicy("naa.a"); err != nil || got != pol {
		t.Fatalf("GetPolicy = %+v, %v", got, err)
	}
	all, err := s.ListPolicies()
	if err != nil || len(all) != 1 || all["naa.a"] != pol {
		t.Fatalf("ListPolicies = %v, %v", all, err)
	}
	if err := s.ClearPolicy("naa.a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetPolicy("naa.a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetPolicy after clear = %v", err)
	}
}

func TestConcurrentOpenRefused(t *testing.T) {
	s, path := newStore(t)
	mustBind(t, s, "naa.a")
	// bbolt's flock belongs to the open file description, so a second
	// Open in the same process competes like another daemon would. A 1ns
	// timeout makes bbolt give up after its first try.
	for _, ro := range []bool{false, true} {
		_, err := Open(path, Options{LockTimeout: time.Nanosecond, ReadOnly: ro})
		if !errors.Is(err, ErrInUse) {
			t.Fatalf("second Open(readOnly=%v) = %v, want ErrInUse", ro, err)
		}
		if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, "store is in use by another process") {
			t.Fatalf("message %q does not name the path and the problem", msg)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openAt(t, path, Options{LockTimeout: time.Nanosecond})
	if got := mustBind(t, s2, "naa.a"); got != 0 {
		t.Fatalf("id after reopen %d", got)
	}
}

func TestReadOnly(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(filepath.Join(dir, "missing.db"), Options{ReadOnly: true}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("read-only open of a missing file = %v", err)
	}
	s, path := newStore(t)
	mustBind(t, s, "naa.a")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r1 := openAt(t, path, Options{ReadOnly: true})
	r2 := openAt(t, path, Options{ReadOnly: true}) // shared lock: readers coexist
	if id, err := r2.Lookup("naa.a"); err != nil || id.DevID != 0 {
		t.Fatalf("read-only Lookup = %+v, %v", id, err)
	}
	if _, _, err := r1.Bind("naa.b", lu(1)); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Bind on read-only store = %v", err)
	}
	if _, err := Open(path, Options{LockTimeout: time.Nanosecond}); !errors.Is(err, ErrInUse) {
		t.Fatalf("writer beside readers = %v, want ErrInUse", err)
	}
}

func TestClosedStore(t *testing.T) {
	s, _ := newStore(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.List(); !errors.Is(err, ErrClosed) {
		t.Fatalf("List after Close = %v, want ErrClosed", err)
	}
	if _, _, err := s.Bind("naa.a", lu(1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Bind after Close = %v, want ErrClosed", err)
	}
}

// rawBolt edits a store behind the package's back.
func rawBolt(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, fileMode, &bolt.Options{Timeout: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

var bigStoreOnce struct {
	sync.Once
	data []byte
	err  error
}

// bigStore writes a closed store spanning many pages to path. It is built
// once per test binary (300 fsynced binds) and copied.
func bigStore(t *testing.T, path string) {
	t.Helper()
	bigStoreOnce.Do(func() {
		dir, err := os.MkdirTemp("", "store-big-")
		if err != nil {
			bigStoreOnce.err = err
			return
		}
		defer os.RemoveAll(dir)
		src := filepath.Join(dir, "store.db")
		s, err := Open(src, Options{Now: newClock().Now})
		if err != nil {
			bigStoreOnce.err = err
			return
		}
		for i := range 300 {
			if _, _, err := s.Bind(fmt.Sprintf("naa.60014050000000000000000000%06d", i), lu(2048)); err != nil {
				bigStoreOnce.err = errors.Join(err, s.Close())
				return
			}
		}
		if err := s.Close(); err != nil {
			bigStoreOnce.err = err
			return
		}
		bigStoreOnce.data, bigStoreOnce.err = os.ReadFile(src)
	})
	if bigStoreOnce.err != nil {
		t.Fatal(bigStoreOnce.err)
	}
	write(t, path, bigStoreOnce.data)
}

func TestOpenRefusesBadFiles(t *testing.T) {
	cases := []struct {
		name    string
		make    func(t *testing.T, path string)
		want    error
		wantMsg string
	}{
		{"empty file", func(t *testing.T, p string) { write(t, p, nil) }, ErrTruncated, "the file is empty"},
		{"short garbage", func(t *testing.T, p string) { write(t, p, []byte("hello")) }, ErrNotDatabase, "5 bytes, too short"},
		{"garbage", func(t *testing.T, p string) {
			r := rand.New(rand.NewPCG(1, 2))
			b := make([]byte, 64<<10)
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			write(t, p, b)
		}, ErrNotDatabase, "no bbolt magic number"},
		{"text file", func(t *testing.T, p string) {
			write(t, p, bytes.Repeat([]byte("defaults:\n  selector: round-robin\n"), 200))
		}, ErrNotDatabase, "no bbolt magic number"},
		{"truncated", func(t *testing.T, p string) {
			bigStore(t, p)
			st, _ := os.Stat(p)
			if err := os.Truncate(p, st.Size()/2); err != nil {
				t.Fatal(err)
			}
		}, ErrTruncated, "covers"},
		{"truncated to one page", func(t *testing.T, p string) {
			bigStore(t, p)
			if err := os.Truncate(p, 4096); err != nil {
				t.Fatal(err)
			}
		}, ErrTruncated, ""},
		{"meta checksums broken", func(t *testing.T, p string) {
			bigStore(t, p)
			b, _ := os.ReadFile(p)
			ps := int(binary.NativeEndian.Uint32(b[boltPageHeaderSize+offPageSize:]))
			b[boltPageHeaderSize+offTxid] ^= 0xff
			b[ps+boltPageHeaderSize+offTxid] ^= 0xff
			write(t, p, b)
		}, ErrCorrupt, "both bbolt meta pages fail their checksum"},
		{"data pages overwritten", func(t *testing.T, p string) {
			bigStore(t, p)
			b, _ := os.ReadFile(p)
			ps := int(binary.NativeEndian.Uint32(b[boltPageHeaderSize+offPageSize:]))
			r := rand.New(rand.NewPCG(3, 4))
			for i := 2 * ps; i < len(b); i++ {
				b[i] = byte(r.Uint32())
			}
			write(t, p, b)
		}, ErrCorrupt, ""},
		{"leaf pages overwritten", func(t *testing.T, p string) {
			bigStore(t, p)
			b, _ := os.ReadFile(p)
			m, _ := parseBoltMeta(b)
			ps := int(m.pageSize)
			r := rand.New(rand.NewPCG(5, 6))
			for pg := 2; pg < len(b)/ps; pg++ {
				if uint64(pg) == m.freelist || uint64(pg) == m.root {
					continue
				}
				for i := pg * ps; i < (pg+1)*ps; i++ {
					b[i] = byte(r.Uint32())
				}
			}
			write(t, p, b)
		}, ErrCorrupt, ""},
		{"foreign bbolt", func(t *testing.T, p string) {
			rawBolt(t, p, func(tx *bolt.Tx) error {
				_, err := tx.CreateBucket([]byte("vault"))
				return err
			})
		}, ErrForeign, `no "srp-mpathd" bucket (found buckets "vault")`},
		{"empty bbolt", func(t *testing.T, p string) { rawBolt(t, p, func(*bolt.Tx) error { return nil }) },
			ErrForeign, "no buckets at all"},
		{"newer schema", func(t *testing.T, p string) {
			bigStore(t, p)
			rawBolt(t, p, func(tx *bolt.Tx) error {
				return tx.Bucket([]byte(bucketMeta)).Put([]byte(keySchema), binary.BigEndian.AppendUint32(nil, 7))
			})
		}, ErrNewerSchema, "schema version 7, this build reads up to version 1"},
		{"bad record", func(t *testing.T, p string) {
			bigStore(t, p)
			rawBolt(t, p, func(tx *bolt.Tx) error {
				return tx.Bucket([]byte(bucketIdentity)).Put([]byte("naa.x"), []byte(`{"v":1,"dev_id":"x"}`))
			})
		}, ErrCorrupt, `record identity/"naa.x"`},
		{"duplicate id", func(t *testing.T, p string) {
			bigStore(t, p)
			rawBolt(t, p, func(tx *bolt.Tx) error {
				// naa.…000001 claims id 0, which is reserved for naa.…000000.
				ids := tx.Bucket([]byte(bucketIdentity))
				k := []byte("naa.60014050000000000000000000000001")
				id, err := DecodeIdentity(string(k), ids.Get(k))
				if err != nil {
					return err
				}
				id.DevID = 0
				return putIdentity(ids, id)
			})
		}, ErrCorrupt, "device id 0 is reserved for"},
		{"directory", func(t *testing.T, p string) {
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
		}, ErrNotDatabase, "it is a directory"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "store.db")
			c.make(t, path)
			s, err := Open(path, Options{LockTimeout: time.Nanosecond})
			if err == nil {
				s.Close()
				t.Fatal("Open accepted the file")
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("Open = %v, want %v", err, c.want)
			}
			msg := err.Error()
			if !strings.Contains(msg, path) || !strings.Contains(msg, c.want.Error()) || !strings.Contains(msg, c.wantMsg) {
				t.Fatalf("message %q lacks the path, %q or %q", msg, c.want, c.wantMsg)
			}
			t.Log(msg)
			// The refusal must not have changed the file or left it locked.
			if c.want != ErrNotDatabase || c.name != "directory" {
				if _, err2 := Open(path, Options{LockTimeout: time.Nanosecond}); errors.Is(err2, ErrInUse) {
					t.Fatalf("refused store left locked: %v", err2)
				}
			}
		})
	}
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestSkipCheckAndDumpShowDamage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	s := openAt(t, path, Options{})
	mustBind(t, s, "naa.a")
	mustBind(t, s, "naa.b")
	if err := s.Forget("naa.b", false); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPolicy("naa.a", Policy{Grouping: "multibus"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPathAdminState("p1", true, "maintenance"); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.Dump(&buf); err != nil {
		t.Fatal(err)
	}
	var d DumpData
	if err := json.Unmarshal(buf.Bytes(), &d); err != nil {
		t.Fatalf("dump is not JSON: %v\n%s", err, buf.Bytes())
	}
	wantRes := []Reservation{{DevID: 0, WWID: "naa.a"}, {DevID: 1, WWID: "naa.b", Forgotten: true}}
	if d.SchemaVersion != SchemaVersion || len(d.Identities) != 1 || !cmp.Equal(d.Reservations, wantRes) ||
		d.Policies["naa.a"].Grouping != "multibus" || len(d.PathAdmin) != 1 || len(d.Problems) != 0 {
		t.Fatalf("dump = %s", buf.Bytes())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	rawBolt(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketPolicy)).Put([]byte("naa.z"), []byte(`{"v":9}`))
	})
	if _, err := Open(path, Options{}); !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("Open of damaged store = %v", err)
	}
	s = openAt(t, path, Options{SkipCheck: true, ReadOnly: true})
	err := s.Check()
	var ce *CheckError
	if !errors.As(err, &ce) || len(ce.Problems) != 1 || !strings.Contains(ce.Problems[0], "record version 9") {
		t.Fatalf("Check = %v", err)
	}
	d2, err := s.Snapshot()
	if err != nil || len(d2.Problems) != 1 || len(d2.Identities) != 1 {
		t.Fatalf("Snapshot of damaged store = %+v, %v", d2, err)
	}
}

func TestConcurrentBinds(t *testing.T) {
	s, _ := newStore(t)
	const workers, each = 4, 25
	var wg sync.WaitGroup
	ids := make([][]int, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				dev, _, err := s.Bind(fmt.Sprintf("naa.w%d.%d", w, i), lu(8))
				if err != nil {
					t.Error(err)
					return
				}
				ids[w] = append(ids[w], dev)
			}
		})
	}
	wg.Wait()
	seen := map[int]bool{}
	for _, l := range ids {
		for _, id := range l {
			if seen[id] {
				t.Fatalf("id %d handed out twice", id)
			}
			seen[id] = true
		}
	}
	for id := range workers * each {
		if !seen[id] {
			t.Fatalf("id %d skipped: allocation is not lowest-free", id)
		}
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

func TestCreateIsAtomicAndNeverReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "store.db")
	s := openAt(t, path, Options{})
	mustBind(t, s, "naa.a")
	mustBind(t, s, "naa.b")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != fileMode {
		t.Fatalf("store file mode %v, %v; want %v", st.Mode().Perm(), err, os.FileMode(fileMode))
	}
	// A second creator that lost the race (the file appeared after its
	// Stat) must not replace the store.
	won, err := create(path, Options{Now: time.Now, LockTimeout: time.Second})
	if err != nil || won {
		t.Fatalf("create over an existing store = %v, %v; want false, nil", won, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("directory holds %v (%v); want only the store, no temporary files", entries, err)
	}
	s = openAt(t, path, Options{})
	if got := mustBind(t, s, "naa.b"); got != 1 {
		t.Fatalf("store was replaced: naa.b now has id %d", got)
	}
}

func TestBigStoreOpens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	bigStore(t, path) // the base of the damaged-file cases must itself be sound
	s := openAt(t, path, Options{})
	list, err := s.List()
	if err != nil || len(list) != 300 || list[299].DevID != 299 {
		t.Fatalf("List = %d identities, %v", len(list), err)
	}
}
