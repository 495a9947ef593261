package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the layout of buckets and keys this build writes and reads.
// A store with a higher version is refused (SchemaError); a lower one would
// be migrated on open (there is none yet: 1 is the first).
const SchemaVersion uint32 = 1

// DefaultLockTimeout is how long Open waits for the file lock when
// Options.LockTimeout is zero. bbolt itself would wait for ever.
const DefaultLockTimeout = time.Second

// Buckets and keys of schema version 1.
const (
	bucketMeta      = "srp-mpathd" // schema, created
	bucketIdentity  = "identity"   // WWID → identityV1 JSON
	bucketDevID     = "devid"      // u32 big-endian ublk dev id → WWID (the reservation)
	bucketPathAdmin = "path-admin" // path id → pathAdminV1 JSON
	bucketPolicy    = "policy"     // WWID → policyV1 JSON

	keySchema  = "schema"  // u32 big-endian
	keyCreated = "created" // RFC 3339 time the store was made

	devIDKeyLen = 4
	fileMode    = 0o600
)

var dataBuckets = []string{bucketIdentity, bucketDevID, bucketPathAdmin, bucketPolicy}

// Options tune Open. The zero value is valid.
type Options struct {
	// LockTimeout bounds the wait for the file lock; zero means
	// DefaultLockTimeout. A store held by another process is refused with
	// ErrInUse after it.
	LockTimeout time.Duration
	// ReadOnly opens without writing anything (shared lock); the file must
	// exist. Writes return ErrReadOnly.
	ReadOnly bool
	// SkipCheck skips the consistency check Open runs (Check). For the
	// `store dump` command, which must be able to show a damaged store.
	SkipCheck bool
	// Now is the time source for first/last seen and admin timestamps;
	// nil means time.Now.
	Now func() time.Time
	// Logger receives the one-off events of Open (a new store created);
	// nil discards them.
	Logger *slog.Logger
}

// Store is an open identity store. It is safe for concurrent use: bbolt
// serialises writers and lets readers run beside them. Every method is one
// bbolt transaction, committed (and fsynced) before it returns.
type Store struct {
	db       *bolt.DB
	path     string
	readOnly bool
	now      func() time.Time
	maxDevID int // MaxDevID; lowered by tests to exhaust the id space

	closeOnce sync.Once
	closeErr  error
}

// Open opens the store at path, creating it if it does not exist (unless
// ReadOnly). It refuses, with an *OpError naming the path: a file locked by
// another process (ErrInUse), a file that is not bbolt (ErrNotDatabase), a
// truncated file (ErrTruncated), a damaged one (ErrCorrupt), a bbolt file
// without our meta bucket (ErrForeign) and a newer schema (*SchemaError,
// ErrNewerSchema). Unless SkipCheck, it also runs Check.
func Open(path string, opts Options) (*Store, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	fail := func(err error) (*Store, error) { return nil, &OpError{Op: "open", Path: path, Err: err} }

	switch st, err := os.Stat(path); {
	case errors.Is(err, fs.ErrNotExist) && !opts.ReadOnly:
		won, err := create(path, opts)
		if err != nil {
			return fail(err)
		}
		if won {
			opts.Logger.Info("created a new identity store", "path", path, "schema", SchemaVersion)
		}
	case err != nil:
		return fail(err)
	case st.IsDir():
		return fail(fmt.Errorf("%w: it is a directory", ErrNotDatabase))
	case !st.Mode().IsRegular():
		return fail(fmt.Errorf("%w: not a regular file (mode %s)", ErrNotDatabase, st.Mode()))
	}
	var (
		db   *bolt.DB
		file *os.File // bbolt's, so that a panic inside Open can still drop the lock
	)
	// bbolt locks the file after opening it and then trusts what it maps.
	// We lock the same open file first (bbolt's own flock on it then
	// succeeds at once) and check the header under that lock, so a live
	// writer can neither make a sound store look corrupt nor slip past us.
	openFile := func(name string, flag int, perm os.FileMode) (*os.File, error) {
		f, err := os.OpenFile(name, flag, perm)
		if err != nil {
			return nil, err
		}
		if err := lockFile(f, !opts.ReadOnly, opts.LockTimeout); err != nil {
			return nil, errors.Join(err, f.Close())
		}
		if err := checkHeader(f); err != nil {
			return nil, errors.Join(err, f.Close())
		}
		file = f
		return f, nil
	}
	err := guard(func() error {
		var err error
		db, err = bolt.Open(path, fileMode, &bolt.Options{Timeout: opts.LockTimeout, ReadOnly: opts.ReadOnly, OpenFile: openFile})
		return err
	})
	if err != nil {
		if db == nil && file != nil && errors.Is(err, ErrCorrupt) {
			// bbolt panicked half-way: closing its file releases the
			// flock; its mapping, if any, stays until the process exits.
			_ = file.Close()
		}
		return fail(mapBoltError(err, opts.LockTimeout))
	}
	s := &Store{db: db, path: path, readOnly: opts.ReadOnly, now: opts.Now, maxDevID: MaxDevID}
	err = guard(func() error { return db.View(checkMeta) })
	if err == nil && !opts.SkipCheck {
		err = s.check()
	}
	if err != nil {
		_ = db.Close() // the open failed; its cause is the error to report
		return fail(err)
	}
	return s, nil
}

// create makes a new store aside and links it into place, so that path
// never names a half-written file and two daemons racing to create it end up
// with one store. It reports whether this call's file won.
func create(path string, opts Options) (bool, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".new-*")
	if err != nil {
		return false, err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Close(); err != nil {
		return false, err
	}
	db, err := bolt.Open(tmp, fileMode, &bolt.Options{Timeout: opts.LockTimeout})
	if err != nil {
		return false, err
	}
	err = db.Update(func(tx *bolt.Tx) error { return initSchema(tx, opts.Now()) })
	if err = errors.Join(err, db.Close()); err != nil {
		return false, err
	}
	// link, unlike rename, never replaces a store another process made.
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, err
	}
	d, err := os.Open(dir)
	if err != nil {
		return true, err
	}
	return true, errors.Join(d.Sync(), d.Close())
}

// lockRetry is how often lockFile retries a held lock (bbolt uses the same).
const lockRetry = 50 * time.Millisecond

// lockFile takes flock on f (exclusive for writers, shared for readers),
// retrying until timeout; a lock still held then is ErrInUse.
func lockFile(f *os.File, exclusive bool, timeout time.Duration) error {
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("lock: %w", err)
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return fmt.Errorf("%w (lock not acquired within %s)", ErrInUse, timeout)
		}
		time.Sleep(min(wait, lockRetry))
	}
}

// initSchema lays out an empty store of SchemaVersion.
func initSchema(tx *bolt.Tx, now time.Time) error {
	meta, err := tx.CreateBucket([]byte(bucketMeta))
	if err != nil {
		return err
	}
	if err := meta.Put([]byte(keySchema), binary.BigEndian.AppendUint32(nil, SchemaVersion)); err != nil {
		return err
	}
	if err := meta.Put([]byte(keyCreated), []byte(now.UTC().Format(time.RFC3339Nano))); err != nil {
		return err
	}
	for _, b := range dataBuckets {
		if _, err := tx.CreateBucket([]byte(b)); err != nil {
			return err
		}
	}
	return nil
}

// guard runs fn, turning a panic or a memory fault inside bbolt (which
// trusts the file) into ErrCorrupt instead of a crash.
func guard(fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: bbolt failed on the file: %v", ErrCorrupt, r)
		}
	}()
	return fn()
}

func mapBoltError(err error, lockTimeout time.Duration) error {
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return fmt.Errorf("%w (lock not acquired within %s)", ErrInUse, lockTimeout)
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrChecksum), errors.Is(err, bolterrors.ErrVersionMismatch),
		errors.Is(err, bolterrors.ErrInvalidMapping):
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	case errors.Is(err, bolterrors.ErrDatabaseNotOpen):
		return ErrClosed
	case errors.Is(err, bolterrors.ErrDatabaseReadOnly), errors.Is(err, bolterrors.ErrTxNotWritable):
		return ErrReadOnly
	}
	return err
}

// checkMeta verifies that the file is ours and of a schema we read.
func checkMeta(tx *bolt.Tx) error {
	meta := tx.Bucket([]byte(bucketMeta))
	if meta == nil {
		var names []string
		_ = tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			names = append(names, fmt.Sprintf("%q", name))
			return nil
		})
		const shown = 5
		found := "no buckets at all"
		if len(names) > shown {
			found = "buckets " + strings.Join(names[:shown], ", ") + ", ..."
		} else if len(names) > 0 {
			found = "buckets " + strings.Join(names, ", ")
		}
		return fmt.Errorf("%w: no %q bucket (found %s)", ErrForeign, bucketMeta, found)
	}
	v := meta.Get([]byte(keySchema))
	if len(v) != 4 {
		return fmt.Errorf("%w: schema version key holds %d bytes, want 4", ErrCorrupt, len(v))
	}
	switch ver := binary.BigEndian.Uint32(v); {
	case ver == 0:
		return fmt.Errorf("%w: schema version 0", ErrCorrupt)
	case ver > SchemaVersion:
		return &SchemaError{Found: ver, Supported: SchemaVersion}
	}
	for _, b := range dataBuckets {
		if tx.Bucket([]byte(b)) == nil {
			return fmt.Errorf("%w: bucket %q is missing", ErrCorrupt, b)
		}
	}
	return nil
}

// Path returns the file the store was opened from.
func (s *Store) Path() string { return s.path }

// Close closes the store and releases its lock. It is idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if err := s.db.Close(); err != nil {
			s.closeErr = &OpError{Op: "close", Path: s.path, Err: err}
		}
	})
	return s.closeErr
}

func (s *Store) view(op string, fn func(tx *bolt.Tx) error) error {
	err := guard(func() error { return s.db.View(fn) })
	if err != nil {
		return &OpError{Op: op, Path: s.path, Err: mapBoltError(err, 0)}
	}
	return nil
}

func (s *Store) update(op string, fn func(tx *bolt.Tx) error) error {
	if s.readOnly {
		return &OpError{Op: op, Path: s.path, Err: ErrReadOnly}
	}
	err := guard(func() error { return s.db.Update(fn) })
	if err != nil {
		return &OpError{Op: op, Path: s.path, Err: mapBoltError(err, 0)}
	}
	return nil
}

func devKey(id int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(id)) }

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidArgument, fmt.Sprintf(format, args...))
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Bind returns the ublk device id of wwid, allocating one on first sight:
// the id this WWID held before a non-forced Forget, else the lowest id never
// bound to any WWID. created reports a new identity record. An existing
// identity keeps its id; its capacity, vendor, product and revision follow
// the LU (online resize, firmware upgrade), its block sizes may not change
// (*MismatchError). The whole step is one transaction: a crash leaves either
// no trace or the complete binding.
func (s *Store) Bind(wwid string, id Identity) (devID int, created bool, err error) {
	if err := ValidateWWID(wwid); err != nil {
		return 0, false, &OpError{Op: "bind", Path: s.path, Err: err}
	}
	id.WWID = wwid
	if f, err := validateGeometry(id); err != nil {
		return 0, false, &OpError{Op: "bind", Path: s.path, Err: invalid("identity of %s: %s: %v", wwid, f, err)}
	}
	now := s.now().UTC()
	err = s.update("bind", func(tx *bolt.Tx) error {
		ids, devs := tx.Bucket([]byte(bucketIdentity)), tx.Bucket([]byte(bucketDevID))
		if v := ids.Get([]byte(wwid)); v != nil {
			old, err := DecodeIdentity(wwid, v)
			if err != nil {
				return err
			}
			if owner := devs.Get(devKey(old.DevID)); string(owner) != wwid {
				return fmt.Errorf("%w: identity %q has device id %d, whose reservation names %q", ErrCorrupt, wwid, old.DevID, owner)
			}
			if old.LogicalBlockSize != id.LogicalBlockSize {
				return &MismatchError{WWID: wwid, Field: "logical block size",
					Stored: fmt.Sprint(old.LogicalBlockSize), Got: fmt.Sprint(id.LogicalBlockSize)}
			}
			if old.PhysicalBlockSize != id.PhysicalBlockSize {
				return &MismatchError{WWID: wwid, Field: "physical block size",
					Stored: fmt.Sprint(old.PhysicalBlockSize), Got: fmt.Sprint(id.PhysicalBlockSize)}
			}
			rec := old
			rec.Capacity, rec.Vendor, rec.Product, rec.Revision = id.Capacity, id.Vendor, id.Product, id.Revision
			rec.LastSeen = later(now, old.LastSeen)
			devID = old.DevID
			return putIdentity(ids, rec)
		}
		dev, found, err := reservationOf(devs, wwid)
		if err != nil {
			return err
		}
		if !found {
			if dev, err = lowestFree(devs, s.maxDevID); err != nil {
				return err
			}
			if err := devs.Put(devKey(dev), []byte(wwid)); err != nil {
				return err
			}
		}
		rec := id
		rec.DevID, rec.FirstSeen, rec.LastSeen = dev, now, now
		devID, created = dev, true
		return putIdentity(ids, rec)
	})
	if err != nil {
		return 0, false, err
	}
	return devID, created, nil
}

func putIdentity(b *bolt.Bucket, id Identity) error {
	v, err := EncodeIdentity(id)
	if err != nil {
		return err
	}
	return b.Put([]byte(id.WWID), v)
}

// reservationOf finds the device id reserved for wwid, if any.
func reservationOf(devs *bolt.Bucket, wwid string) (int, bool, error) {
	c := devs.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if string(v) != wwid {
			continue
		}
		if len(k) != devIDKeyLen {
			return 0, false, fmt.Errorf("%w: device id key %x is %d bytes", ErrCorrupt, k, len(k))
		}
		return int(binary.BigEndian.Uint32(k)), true, nil
	}
	return 0, false, nil
}

// lowestFree returns the lowest device id without a reservation. Keys are
// big-endian, so the cursor walks them in numeric order.
func lowestFree(devs *bolt.Bucket, maxID int) (int, error) {
	next := 0
	c := devs.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		if len(k) != devIDKeyLen {
			return 0, fmt.Errorf("%w: device id key %x is %d bytes", ErrCorrupt, k, len(k))
		}
		id := int(binary.BigEndian.Uint32(k))
		if id != next {
			break
		}
		next++
	}
	if next > maxID {
		return 0, fmt.Errorf("%w: all %d ids are bound or reserved (Forget with force releases one)", ErrNoFreeDevID, maxID+1)
	}
	return next, nil
}

// Lookup returns the identity bound to wwid (ErrNotFound if none).
func (s *Store) Lookup(wwid string) (Identity, error) {
	var id Identity
	err := s.view("lookup", func(tx *bolt.Tx) error {
		v := tx.Bucket([]byte(bucketIdentity)).Get([]byte(wwid))
		if v == nil {
			return fmt.Errorf("%w: no identity for WWID %q", ErrNotFound, wwid)
		}
		var err error
		id, err = DecodeIdentity(wwid, v)
		return err
	})
	return id, err
}

// DevIDOwner returns the WWID that holds devID, bound or reserved after a
// non-forced Forget (ErrNotFound if the id is free).
func (s *Store) DevIDOwner(devID int) (string, error) {
	var wwid string
	err := s.view("dev id owner", func(tx *bolt.Tx) error {
		if devID < 0 || devID > MaxDevID {
			return invalid("device id %d outside 0..%d", devID, MaxDevID)
		}
		v := tx.Bucket([]byte(bucketDevID)).Get(devKey(devID))
		if v == nil {
			return fmt.Errorf("%w: device id %d is free", ErrNotFound, devID)
		}
		wwid = string(v)
		return nil
	})
	return wwid, err
}

// List returns every identity, ordered by device id.
func (s *Store) List() ([]Identity, error) {
	var out []Identity
	err := s.view("list", func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketIdentity)).ForEach(func(k, v []byte) error {
			id, err := DecodeIdentity(string(k), v)
			if err != nil {
				return err
			}
			out = append(out, id)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b Identity) int { return a.DevID - b.DevID })
	return out, nil
}

// Touch sets the last-seen time of wwid to now (never backwards).
func (s *Store) Touch(wwid string) error {
	now := s.now().UTC()
	return s.update("touch", func(tx *bolt.Tx) error {
		ids := tx.Bucket([]byte(bucketIdentity))
		v := ids.Get([]byte(wwid))
		if v == nil {
			return fmt.Errorf("%w: no identity for WWID %q", ErrNotFound, wwid)
		}
		id, err := DecodeIdentity(wwid, v)
		if err != nil {
			return err
		}
		id.LastSeen = later(now, id.LastSeen)
		return putIdentity(ids, id)
	})
}

// Forget removes the identity of wwid. Without force the device id stays
// reserved for this WWID: no other LU ever gets it, and the same LU gets it
// back on its next Bind. With force the reservation is released too (also
// when only the reservation is left) and the id may go to another WWID; use
// it only when the LU is gone for good and nothing above still refers to
// /dev/ublkb<id>. Policy overrides of the WWID are admin intent and are kept.
func (s *Store) Forget(wwid string, force bool) error {
	return s.update("forget", func(tx *bolt.Tx) error {
		ids, devs := tx.Bucket([]byte(bucketIdentity)), tx.Bucket([]byte(bucketDevID))
		v := ids.Get([]byte(wwid))
		if v != nil {
			id, err := DecodeIdentity(wwid, v)
			if err != nil {
				return err
			}
			if err := ids.Delete([]byte(wwid)); err != nil {
				return err
			}
			if !force {
				return nil
			}
			if owner := devs.Get(devKey(id.DevID)); !bytes.Equal(owner, []byte(wwid)) {
				return fmt.Errorf("%w: identity %q has device id %d, whose reservation names %q", ErrCorrupt, wwid, id.DevID, owner)
			}
			return devs.Delete(devKey(id.DevID))
		}
		if force {
			dev, found, err := reservationOf(devs, wwid)
			if err != nil {
				return err
			}
			if found {
				return devs.Delete(devKey(dev))
			}
		}
		return fmt.Errorf("%w: no identity for WWID %q", ErrNotFound, wwid)
	})
}

// SetPathAdminState records that an admin failed (failed=true, with a
// reason) or restored (failed=false: the record is removed) a path. A path
// failed again keeps the time it was first failed.
func (s *Store) SetPathAdminState(pathID string, failed bool, reason string) error {
	if err := validateKey("path id", pathID); err != nil {
		return &OpError{Op: "set path admin state", Path: s.path, Err: invalid("%v", err)}
	}
	if err := validateText(reason, MaxReasonLen); err != nil {
		return &OpError{Op: "set path admin state", Path: s.path, Err: invalid("reason: %v", err)}
	}
	now := s.now().UTC()
	return s.update("set path admin state", func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketPathAdmin))
		if !failed {
			return b.Delete([]byte(pathID))
		}
		rec := PathAdmin{PathID: pathID, Failed: true, Reason: reason, Since: now}
		if v := b.Get([]byte(pathID)); v != nil {
			old, err := DecodePathAdmin(pathID, v)
			if err != nil {
				return err
			}
			rec.Since = old.Since
		}
		v, err := encodePathAdmin(rec)
		if err != nil {
			return err
		}
		return b.Put([]byte(pathID), v)
	})
}

// PathAdminState returns the admin state of a path; a path never failed by
// an admin has Failed false and a zero Since.
func (s *Store) PathAdminState(pathID string) (PathAdmin, error) {
	pa := PathAdmin{PathID: pathID}
	err := s.view("path admin state", func(tx *bolt.Tx) error {
		v := tx.Bucket([]byte(bucketPathAdmin)).Get([]byte(pathID))
		if v == nil {
			return nil
		}
		var err error
		pa, err = DecodePathAdmin(pathID, v)
		return err
	})
	return pa, err
}

// ListPathAdmin returns every path an admin failed, ordered by path id.
func (s *Store) ListPathAdmin() ([]PathAdmin, error) {
	var out []PathAdmin
	err := s.view("list path admin", func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketPathAdmin)).ForEach(func(k, v []byte) error {
			pa, err := DecodePathAdmin(string(k), v)
			if err != nil {
				return err
			}
			out = append(out, pa)
			return nil
		})
	})
	return out, err
}

// SetPolicy stores the policy override of wwid; a zero Policy removes it.
// The values are validated by the caller (internal/config), the store only
// bounds their size.
func (s *Store) SetPolicy(wwid string, p Policy) error {
	if err := ValidateWWID(wwid); err != nil {
		return &OpError{Op: "set policy", Path: s.path, Err: err}
	}
	if f, err := validatePolicy(p); err != nil {
		return &OpError{Op: "set policy", Path: s.path, Err: invalid("%s: %v", f, err)}
	}
	return s.update("set policy", func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketPolicy))
		if p.IsZero() {
			return b.Delete([]byte(wwid))
		}
		v, err := encodePolicy(p)
		if err != nil {
			return err
		}
		return b.Put([]byte(wwid), v)
	})
}

// ClearPolicy removes the policy override of wwid, if any.
func (s *Store) ClearPolicy(wwid string) error { return s.SetPolicy(wwid, Policy{}) }

// GetPolicy returns the policy override of wwid (ErrNotFound if none).
func (s *Store) GetPolicy(wwid string) (Policy, error) {
	var p Policy
	err := s.view("get policy", func(tx *bolt.Tx) error {
		v := tx.Bucket([]byte(bucketPolicy)).Get([]byte(wwid))
		if v == nil {
			return fmt.Errorf("%w: no policy override for WWID %q", ErrNotFound, wwid)
		}
		var err error
		p, err = DecodePolicy(wwid, v)
		return err
	})
	return p, err
}

// ListPolicies returns every policy override by WWID.
func (s *Store) ListPolicies() (map[string]Policy, error) {
	out := map[string]Policy{}
	err := s.view("list policies", func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketPolicy)).ForEach(func(k, v []byte) error {
			p, err := DecodePolicy(string(k), v)
			if err != nil {
				return err
			}
			out[string(k)] = p
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
