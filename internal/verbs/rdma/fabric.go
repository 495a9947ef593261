//go:build linux && cgo

package rdma

/*
#cgo pkg-config: libibverbs librdmacm libibumad
#include "shim.h"
*/
import "C"

import (
	"log/slog"
	"syscall"

	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
)

// Fabric is the host's RDMA devices as rdma-core sees them. It implements
// verbs.Fabric and keeps no state besides the logger: every call asks
// libibverbs afresh, so devices added later (rdma link add) show up.
type Fabric struct {
	log *slog.Logger
}

var _ verbs.Fabric = (*Fabric)(nil)

// Open checks that libibverbs can enumerate devices (the uverbs interface
// exists) and returns the fabric. A host with the interface but no device
// gets a Fabric whose Devices is empty.
func Open(log *slog.Logger) (*Fabric, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var n C.int
	list, err := C.ibv_get_device_list(&n)
	if list == nil {
		return nil, &verbs.OpError{Op: "list devices", Err: errnoOr(err, syscall.ENOSYS)}
	}
	C.ibv_free_device_list(list)
	return &Fabric{log: log}, nil
}

// Devices lists the RDMA devices present now, with their limits (each is
// opened briefly to query them).
func (f *Fabric) Devices() ([]verbs.DeviceInfo, error) {
	var n C.int
	list, err := C.ibv_get_device_list(&n)
	if list == nil {
		return nil, &verbs.OpError{Op: "list devices", Err: errnoOr(err, syscall.ENOSYS)}
	}
	defer C.ibv_free_device_list(list)
	out := make([]verbs.DeviceInfo, 0, int(n))
	for i := 0; i < int(n); i++ {
		dev := C.shim_dev_at(list, C.int(i))
		name := C.GoString(C.ibv_get_device_name(dev))
		ctx, err := C.ibv_open_device(dev)
		if ctx == nil {
			return nil, &verbs.OpError{Op: "open device", Device: name, Err: errnoOr(err, syscall.ENODEV)}
		}
		info, qerr := queryDevice(ctx, name)
		C.ibv_close_device(ctx)
		if qerr != nil {
			return nil, qerr
		}
		out = append(out, info)
	}
	return out, nil
}

// Open opens device name. The context is the one librdmacm opened for the
// device (rdma_get_devices), so that connections resolved through RDMA/CM
// land on the same context and protection domain as this handle's buffers;
// without librdmacm (rdma_ucm missing) the device is opened directly and
// only Dial is unavailable.
func (f *Fabric) Open(name string) (verbs.Device, error) {
	d, err := f.OpenDevice(name)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// OpenDevice is Open returning the concrete type (for Listen and the
// provider-specific queries).
func (f *Fabric) OpenDevice(name string) (*Device, error) {
	var n C.int
	cmList := C.rdma_get_devices(&n)
	if cmList != nil {
		for i := 0; i < int(n); i++ {
			ctx := C.shim_ctx_at(cmList, C.int(i))
			if C.GoString(C.shim_ctx_name(ctx)) == name {
				return newDevice(f.log, name, ctx, cmList, false)
			}
		}
		C.rdma_free_devices(cmList)
	}
	list, err := C.ibv_get_device_list(&n)
	if list == nil {
		return nil, &verbs.OpError{Op: "open device", Device: name, Err: errnoOr(err, syscall.ENOSYS)}
	}
	defer C.ibv_free_device_list(list)
	for i := 0; i < int(n); i++ {
		dev := C.shim_dev_at(list, C.int(i))
		if C.GoString(C.ibv_get_device_name(dev)) != name {
			continue
		}
		ctx, err := C.ibv_open_device(dev)
		if ctx == nil {
			return nil, &verbs.OpError{Op: "open device", Device: name, Err: errnoOr(err, syscall.ENODEV)}
		}
		f.log.Warn("librdmacm does not know the device: queries and buffers work, Dial does not", "device", name)
		return newDevice(f.log, name, ctx, nil, true)
	}
	return nil, &verbs.OpError{Op: "open device", Device: name, Err: verbs.ErrNoDevice}
}

// queryDevice reads a context's limits into a DeviceInfo.
func queryDevice(ctx *C.struct_ibv_context, name string) (verbs.DeviceInfo, error) {
	var a C.struct_shim_device
	if rc := C.shim_query_device(ctx, &a); rc != 0 {
		return verbs.DeviceInfo{}, &verbs.OpError{Op: "query device", Device: name, Err: syscall.Errno(rc)}
	}
	return verbs.DeviceInfo{
		Name:         name,
		NodeGUID:     uint64(a.node_guid),
		Ports:        uint8(a.phys_port_cnt),
		MaxQPWR:      int(a.max_qp_wr),
		MaxSGE:       int(a.max_sge),
		MaxQPRdAtom:  int(a.max_qp_rd_atom),
		MaxQPInitRd:  int(a.max_qp_init_rd_atom),
		MaxMRSize:    uint64(a.max_mr_size),
		FirmwareVers: C.GoString(&a.fw_ver[0]),
	}, nil
}

// errnoOr returns err's errno when a C call set one, else fallback.
func errnoOr(err error, fallback syscall.Errno) error {
	if e, ok := err.(syscall.Errno); ok && e != 0 {
		return e
	}
	return fallback
}

// negErrno turns a shim's negative errno return into an error (nil for 0).
func negErrno(rc C.int) error {
	if rc == 0 {
		return nil
	}
	if rc < 0 {
		rc = -rc
	}
	return syscall.Errno(rc)
}
