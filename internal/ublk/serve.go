package ublk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// stopTimeout bounds the graceful stop after Serve's context ends.
const stopTimeout = 30 * time.Second

// ServeSpec describes a device for Serve.
type ServeSpec struct {
	// ID is the device id to serve (uapi.DevIDAny lets the kernel pick).
	ID uint32
	// Backend serves the I/O through the blocking adapter; Handler, when
	// set, is used instead.
	Backend Backend
	Handler Handler
	// Workers per queue for Backend (0 = DefaultWorkers).
	Workers int
	Queues  int
	Depth   int
	MaxIO   int
	// LogicalBlockSize and Size override the backend's Geometry when non-zero.
	LogicalBlockSize int
	Size             int64
	Discard          bool
	// Recover requests USER_RECOVERY|REISSUE and, when the device id exists
	// with a dead server, recovers it instead of adding a new device.
	Recover bool
	// Detach leaves the device (quiesced, with Recover) when ctx ends instead
	// of stopping and deleting it: a successor recovers it.
	Detach bool
	// PinQueues and LockMemory as in DeviceSpec.
	PinQueues, LockMemory bool
	// Driver defaults to Linux{}; tests pass a ublkfake process.
	Driver Driver
	Logger *slog.Logger
	// OnReady is called once the device serves I/O.
	OnReady func(*Device)
}

// Serve runs a ublk server until ctx ends, then stops and deletes the
// device (or detaches from it with Detach). It returns early with the
// queues' error if they exit on their own (e.g. the device was stopped by
// someone else).
func Serve(ctx context.Context, s ServeSpec) error {
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	drv := s.Driver
	if drv == nil {
		drv = Linux{}
	}
	spec, err := s.deviceSpec(log)
	if err != nil {
		return err
	}
	ctl, err := NewControl(drv, log)
	if err != nil {
		return err
	}
	defer func() { _ = ctl.Close() }()
	d, err := Open(ctx, ctl, spec)
	if err != nil {
		return err
	}
	log.Info("ublk: serving", "dev", d.ID(), "path", d.BlockPath(), "recovered", d.Recovered())
	if s.OnReady != nil {
		s.OnReady(d)
	}
	select {
	case <-ctx.Done():
	case <-d.Done():
		return errors.Join(fmt.Errorf("ublk: dev %d: queues exited", d.ID()), d.Err(), d.closeChar())
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	defer cancel()
	if s.Detach {
		return d.Detach(sctx)
	}
	return d.Stop(sctx)
}

func (s *ServeSpec) deviceSpec(log *slog.Logger) (DeviceSpec, error) {
	spec := DeviceSpec{
		ID: s.ID, Queues: s.Queues, Depth: s.Depth, MaxIO: s.MaxIO, LogicalBlockSize: s.LogicalBlockSize,
		Size: s.Size, Discard: s.Discard, Recovery: s.Recover, Handler: s.Handler, Logger: log,
		PinQueues: s.PinQueues, LockMemory: s.LockMemory,
	}
	if sz, ok := s.Backend.(Sized); ok {
		g := sz.Geometry()
		if spec.Size == 0 {
			spec.Size = g.Size
		}
		if spec.LogicalBlockSize == 0 {
			spec.LogicalBlockSize = g.LogicalBlockSize
			spec.PhysicalBlockSize = g.PhysicalBlockSize
		}
		spec.VolatileCache = g.VolatileCache
		spec.FUA = g.VolatileCache
	}
	if spec.Handler == nil {
		if s.Backend == nil {
			return DeviceSpec{}, fmt.Errorf("%w: neither Backend nor Handler", ErrInvalidSpec)
		}
		spec.Handler = NewBackendHandler(s.Backend, s.Workers)
	}
	return spec, nil
}
