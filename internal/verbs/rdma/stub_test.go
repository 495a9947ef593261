//go:build !(linux && cgo)

package rdma

import (
	"errors"
	"testing"
)

// TestStubSaysWhy: a build without cgo must fail loudly, naming the cause.
func TestStubSaysWhy(t *testing.T) {
	if _, err := Open(nil); !errors.Is(err, ErrNoCgo) {
		t.Errorf("Open = %v, want ErrNoCgo", err)
	}
	var f Fabric
	if _, err := f.Devices(); !errors.Is(err, ErrNoCgo) {
		t.Errorf("Devices = %v, want ErrNoCgo", err)
	}
	if _, err := f.Open("rxe0"); !errors.Is(err, ErrNoCgo) {
		t.Errorf("Open(rxe0) = %v, want ErrNoCgo", err)
	}
}
