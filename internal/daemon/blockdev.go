package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/srp-mpathd/srp-mpathd/internal/paths"
	"github.com/srp-mpathd/srp-mpathd/internal/ublk"
)

// chanSlack is how many tags a channel has beyond its queue's depth: an
// aborted command keeps its channel tag until the target answers, while
// the queue may already retry the request.
const chanSlack = 8

// openUblk opens the ublk control device (probed once: without ublk_drv
// the daemon serves its devices to in-process queue runners).
// NewControl's error names the control device and why it cannot be opened.
func openUblk(drv ublk.Driver, log *slog.Logger) (*ublk.Control, error) {
	return ublk.NewControl(drv, log)
}

// startBlockDevice serves dev as /dev/ublkb<id>: the device left by a
// previous daemon (crash, upgrade, graceful stop without
// --remove-devices) is recovered, otherwise it is added. Its queues bind
// their tag buffers to the paths queues of the same index (registered with
// every path's RDMA device) when they start.
func (d *Daemon) startBlockDevice(ctx context.Context, dev *device) error {
	if d.ublkCtl == nil {
		return nil
	}
	spec := ublk.DeviceSpec{
		ID: uint32(dev.ident.DevID), Queues: dev.queues, Depth: dev.depth, MaxIO: dev.maxIO,
		LogicalBlockSize: int(dev.lu.BlockSize), PhysicalBlockSize: int(dev.lu.PhysicalBlockSize),
		Size: int64(dev.lu.Capacity()), VolatileCache: dev.lu.WriteCache, FUA: dev.lu.WriteCache,
		Discard: dev.lu.Thin, Recovery: true,
		Handler: paths.NewUblkHandler(dev.pd), Logger: d.log.With("device", dev.name),
	}
	ub, err := ublk.Open(ctx, d.ublkCtl, spec)
	if err != nil {
		return &OpError{Op: "serve " + dev.name + " through ublk", Err: err}
	}
	dev.ub = ub
	if ub.Recovered() {
		d.log.Info("block device recovered", "device", dev.name, "block", ub.BlockPath())
	} else {
		d.log.Info("block device added", "device", dev.name, "block", ub.BlockPath())
	}
	return nil
}

// stopBlockDevice ends serving dev's block device: with RemoveDevices it
// is stopped and deleted, otherwise detached, so the kernel keeps it
// (quiesced, I/O waiting) for the next daemon to recover. Both are bounded
// by DrainTimeout.
func (d *Daemon) stopBlockDevice(dev *device) error {
	if dev.ub == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.opts.DrainTimeout)
	defer cancel()
	var err error
	if d.opts.RemoveDevices {
		// STOP_DEV waits for every request: I/O waiting for a path would
		// hold it (and the process, unkillable) for ever. The device goes
		// away, so that I/O fails now.
		dev.pd.FailWaiting()
		err = dev.ub.Stop(ctx)
	} else {
		err = dev.ub.Detach(ctx)
	}
	if oe, ok := err.(*ublk.OpError); ok && errors.Is(oe.Err, ublk.ErrRequestsLeft) { // that and nothing else
		// I/O waiting for a path when the stop came: the kernel keeps it
		// for the next daemon (USER_RECOVERY_REISSUE), as after a crash.
		d.log.Warn("block device detached with I/O waiting for a path; the next daemon serves it", "device", dev.name,
			"queued", dev.pd.Snapshot().Queued, "drain_timeout", d.opts.DrainTimeout)
		return nil
	}
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return &OpError{Op: "stop block device of " + dev.name, Err: err}
	}
	if err != nil {
		return &OpError{Op: "stop block device of " + dev.name, Err: fmt.Errorf("I/O still in progress after %v: %w", d.opts.DrainTimeout, err)}
	}
	return nil
}
