//go:build !(linux && cgo)

package rdma

import (
	"log/slog"

	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
)

// Fabric is the rdma-core provider; in this build (no cgo, or not Linux)
// it has no devices and every call fails with ErrNoCgo.
type Fabric struct{}

var _ verbs.Fabric = (*Fabric)(nil)

// Open fails with ErrNoCgo: the provider is C code over rdma-core.
func Open(*slog.Logger) (*Fabric, error) {
	return nil, &verbs.OpError{Op: "open fabric", Err: ErrNoCgo}
}

// Devices fails with ErrNoCgo.
func (*Fabric) Devices() ([]verbs.DeviceInfo, error) {
	return nil, &verbs.OpError{Op: "list devices", Err: ErrNoCgo}
}

// Open fails with ErrNoCgo.
func (*Fabric) Open(name string) (verbs.Device, error) {
	return nil, &verbs.OpError{Op: "open device", Device: name, Err: ErrNoCgo}
}
