// Package store keeps LU identity (WWID to ublk device id), admin state and
// policy overrides in bbolt, so that /dev/ublkb<id> names the same LU across
// path loss, daemon crashes and upgrades.
//
// # What it owns
//
// One bbolt file (default /var/lib/srp-mpathd/store.db, chosen by the
// daemon), schema version SchemaVersion:
//
//	"srp-mpathd"  meta: "schema" → u32 big-endian, "created" → RFC 3339
//	"identity"    WWID → identity record (dev id, capacity, block sizes,
//	              vendor/product/revision, first and last seen)
//	"devid"       u32 big-endian ublk dev id → WWID: the reservation
//	"path-admin"  path id → admin state (failed by an admin, reason, since)
//	"policy"      WWID → policy override (selector, grouping, failback,
//	              no_path_retry as strings validated by internal/config)
//
// Records are JSON objects carrying a record version "v" (see record.go);
// decoders are strict and never panic (FuzzDecodeIdentity, FuzzDecodeAdmin).
//
// # Device id rules
//
// Bind gives a new WWID the lowest id that has no reservation. A
// reservation outlives the identity: Forget without force deletes the
// identity but keeps the id reserved for that WWID, so it is never handed to
// another LU and the same LU gets it back. Only Forget with force releases
// the id. Ids stay in 0..MaxDevID, the kernel's ublk limit.
//
// # Refusals
//
// Open never hands bbolt a file it has not checked. It takes the file lock
// itself (flock on the descriptor bbolt then uses; a second opener gets
// ErrInUse after Options.LockTimeout), then, under that lock, validates the
// bbolt header (magic, format version, meta checksums, file size against the
// meta's high-water mark) and walks the reachable pages (ids in range, each
// page referenced once, elements inside their page, sane freelist): bbolt
// follows all of these unchecked through its mmap and would fault, panic or
// loop on a damaged file. bbolt itself then runs under a guard that turns
// any remaining panic or memory fault into ErrCorrupt. Last come our meta
// bucket (ErrForeign), the schema version (*SchemaError) and Check. Every
// error names the file.
//
// # Concurrency and order of effects
//
// A Store is safe for concurrent use. Every method is one bbolt transaction
// committed with fsync before it returns, so after a crash (even SIGKILL in
// the middle of Bind) the store holds exactly the completed calls; a
// reservation and its identity are written in the same transaction. A new
// store file is built aside (".<name>.new-*"), then hard-linked into place,
// so the path never names a half-initialised file and two racing creators
// share one store. The caller must Bind a WWID (and so persist its id)
// before it creates /dev/ublkb<id>.
package store
