package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/srp-mpathd/srp-mpathd/internal/paths"
	"github.com/srp-mpathd/srp-mpathd/internal/store"
	"github.com/srp-mpathd/srp-mpathd/internal/ublk"
)

// blockDevPrefix names the block device of ublk device id N.
const blockDevPrefix = "ublkb"

// device is one served LU: its identity, its multipath device and the
// queue runners standing in for ublk queue threads. Devices are only ever
// added (discovery, late paths), never removed while the daemon runs;
// Daemon.devices() returns the current list.
type device struct {
	name    string // "ublkb<dev id>"
	wwid    string
	ident   store.Identity
	target  string
	pd      *paths.Device
	runners []*queueRunner
	wl      *workload
	hist    *latencyHist
	specs   []paths.PathSpec
	// eps are the endpoints of specs by path id: a path lost at
	// dev_loss_tmo is probed again through its endpoint (keepPaths).
	eps map[string]*endpoint

	// lu is the identity and geometry the paths agreed on at start.
	lu LUInfo
	// Geometry of the ublk device (queues × depth tags of maxIO bytes)
	// and the tag count of each channel.
	queues, depth, maxIO, chanDepth int
	// ub serves the device through ublk (nil without ublk).
	ub *ublk.Device
	// free releases off-heap runner memory after the device is closed.
	free []func() error
}

func devName(devID int) string { return fmt.Sprintf("%s%d", blockDevPrefix, devID) }

// devicesDir is where the udev rule imports device properties from.
func devicesDir(runtimeDir string) string { return filepath.Join(runtimeDir, "devices") }

// udevValue makes a value safe for udev's IMPORT{file}: printable ASCII
// without spaces or quotes.
func udevValue(s string) string {
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r > '~' || r == '"' || r == '\'' || r == '\\' {
			return '_'
		}
		return r
	}, strings.TrimSpace(s))
}

// writeDeviceFile writes <runtime>/devices/ublkbN (KEY=VALUE lines the udev
// rule imports) atomically; it must exist before the block device appears.
func writeDeviceFile(runtimeDir string, dev *device) error {
	dir := devicesDir(runtimeDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	body := fmt.Sprintf("SRP_MPATHD_WWID=%s\nSRP_MPATHD_VENDOR=%s\nSRP_MPATHD_PRODUCT=%s\n",
		udevValue(dev.wwid), udevValue(dev.ident.Vendor), udevValue(dev.ident.Product))
	tmp, err := os.CreateTemp(dir, "."+dev.name+".*")
	if err != nil {
		return err
	}
	_, werr := tmp.WriteString(body)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(tmp.Name())
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		_ = os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, dev.name))
}

// removeDeviceFile deletes a device's udev file (on --remove-devices).
func removeDeviceFile(runtimeDir, name string) error {
	err := os.Remove(filepath.Join(devicesDir(runtimeDir), name))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}
