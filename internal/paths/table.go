package paths

import "time"

// table is one immutable view of the device's paths, published by the
// control plane through an atomic pointer and read by the queue threads
// without locks. A new table replaces the old one on every change.
type table struct {
	version uint64
	policy  Policy
	paths   [MaxPaths]pathView
	// active are the usable slots of the active group, others the usable
	// slots of every other group (used when the active group's paths are
	// all excluded for an I/O), both in slot order.
	active []uint8
	others []uint8
	// noPathSince is when the device last lost its last usable path (zero
	// while one is usable); no_path_retry counts from it.
	noPathSince time.Time
	// noWait: I/O with no usable path fails at once whatever
	// no_path_retry says: every path of the device was lost (removed at
	// dev_loss_tmo) and none has been added since (doc.go, "Losing every
	// path"), or the device is being removed (FailWaiting).
	noWait bool
}

// pathView is what a queue needs to know of one path.
type pathView struct {
	present bool
	// usable: the path is running and belongs to a group I/O may use.
	usable bool
	// inc changes whenever the slot gets a new path, so queue-local
	// statistics of an old path are not inherited.
	inc   uint64
	id    string
	lun   uint64
	chans []Channel   // per queue; nil entries while not connected
	mrs   []memRegion // per queue: the queue's memory registered on the path's device
	ctr   *pathCounters
}

// memRegion is a queue's tag memory as registered on one RDMA device.
type memRegion struct {
	addr       uint64
	rkey, lkey uint32
}

// anyUsable reports whether some path may carry I/O.
func (t *table) anyUsable() bool { return len(t.active) > 0 || len(t.others) > 0 }
