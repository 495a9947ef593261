package srplab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/srp"
	"github.com/srp-mpathd/srp-mpathd/test/lab/labkit"
)

// LIO configfs layout (target_core_mod, ib_srpt).
const (
	configfsTarget = "/sys/kernel/config/target"
	srptDir        = configfsTarget + "/srpt"
	// hbaDir holds every LU of the lab: one rd_mcp HBA, one device per LU.
	hbaDir     = configfsTarget + "/core/rd_mcp_0"
	tpgName    = "tpgt_1"
	lunLink    = "lu" // name of the symlinks from a LUN to its backstore / from an ACL's LUN to the TPG LUN
	rdPageSize = 4096 // rd_pages counts pages of PAGE_SIZE
	// serviceGUIDParam is srpt's id_ext and ioc_guid (read-only at run time).
	serviceGUIDParam = "/sys/module/ib_srpt/parameters/srpt_service_guid"

	// LIO's NAA designator: NAA 6 with LIO's IEEE company id 0x001405, then
	// the first hex digits of the unit serial (spc_gen_naa_6h_vendor_specific).
	lioNAAPrefix     = "6001405"
	naaHexDigits     = 32
	srptModule       = "ib_srpt"
	moduleUnloadWait = 30 * time.Second
)

// luSerial is the unit serial of LU j of target k. LIO builds the NAA
// designator from the first 25 hex digits of the serial, so the digits that
// tell LUs apart come first.
func luSerial(k, j int) string {
	return fmt.Sprintf("5e1ab%02x%02x-0c1e-4b7e-9d2f-0123456789ab", k, j)
}

// naaFromSerial is the NAA 6 designator LIO derives from a unit serial:
// "6001405", then the serial's hex digits (others skipped), zero-padded to
// 32 hex digits.
func naaFromSerial(serial string) string {
	var b strings.Builder
	b.WriteString(lioNAAPrefix)
	for _, c := range strings.ToLower(serial) {
		if b.Len() == naaHexDigits {
			break
		}
		if (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') {
			b.WriteRune(c)
		}
	}
	for b.Len() < naaHexDigits {
		b.WriteByte('0')
	}
	return b.String()
}

func (l *Lab) tpgDir(p *Path) string { return filepath.Join(srptDir, p.TPort, tpgName) }

// setupTarget creates the backstores, then the srpt side.
func (l *Lab) setupTarget() error {
	if err := mkdir(hbaDir); err != nil {
		return err
	}
	for k := range l.Targets {
		tg := &l.Targets[k]
		for j := range l.Opts.LUs {
			lu := LU{Target: k, LUN: uint64(j), Serial: luSerial(k, j), Size: l.Opts.LUSize, BlockSize: l.Opts.BlockSize,
				Backstore: filepath.Join(hbaDir, fmt.Sprintf("srplab_t%d_l%d", k, j))}
			lu.NAA = naaFromSerial(lu.Serial)
			if err := mkdir(lu.Backstore); err != nil {
				return err
			}
			// Without a unit serial LIO's VPD 0x83 has no NAA designator:
			// multipath sees a bogus WWID and ALUA cannot attach.
			for _, w := range [][2]string{
				{"control", fmt.Sprintf("rd_pages=%d", lu.Size/rdPageSize)},
				{"wwn/vpd_unit_serial", lu.Serial},
				{"enable", "1"},
				{"attrib/block_size", strconv.Itoa(lu.BlockSize)},
			} {
				if err := writeFile(filepath.Join(lu.Backstore, w[0]), w[1]); err != nil {
					return err
				}
			}
			tg.LUs = append(tg.LUs, lu)
		}
	}
	for i := range l.Paths {
		for _, ext := range l.Opts.InitiatorExts {
			l.acls[i] = append(l.acls[i], l.Paths[i].InitiatorPortID(ext))
		}
	}
	return l.setupSrpt()
}

// setupSrpt configures ib_srpt: the RDMA/CM listener, and per path a tport
// named after the target-side GID with one TPG exporting the path's target's
// LUs to the path's ACLs. The gid-named tport matches RDMA/CM logins by SRP
// initiator port id; the guid-named one would match by IP address.
func (l *Lab) setupSrpt() error {
	guid, err := readTrim(serviceGUIDParam)
	if err != nil {
		return err
	}
	if l.ServiceGUID, err = strconv.ParseUint(strings.TrimPrefix(guid, "0x"), 16, 64); err != nil {
		return &OpError{Op: "parse", Path: serviceGUIDParam, Err: err}
	}
	if err := mkdir(srptDir); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(srptDir, "discovery_auth/rdma_cm_port"), strconv.Itoa(int(l.Port))); err != nil {
		return err
	}
	for i := range l.Paths {
		p := &l.Paths[i]
		tpg := l.tpgDir(p)
		for _, d := range []string{filepath.Dir(tpg), tpg} {
			if err := mkdir(d); err != nil {
				return err
			}
		}
		for _, lu := range l.Targets[p.Target].LUs {
			lun := filepath.Join(tpg, "lun", fmt.Sprintf("lun_%d", lu.LUN))
			if err := mkdir(lun); err != nil {
				return err
			}
			if err := symlink(lu.Backstore, filepath.Join(lun, lunLink)); err != nil {
				return err
			}
		}
		for _, id := range l.acls[i] {
			if err := l.makeACL(p, id); err != nil {
				return err
			}
		}
		if err := writeFile(filepath.Join(tpg, "enable"), "1"); err != nil {
			return err
		}
	}
	return nil
}

func (l *Lab) makeACL(p *Path, id srp.InitiatorPortID) error {
	tpg := l.tpgDir(p)
	acl := filepath.Join(tpg, "acls", id.String())
	if err := mkdir(acl); err != nil {
		return err
	}
	for _, lu := range l.Targets[p.Target].LUs {
		name := fmt.Sprintf("lun_%d", lu.LUN)
		if err := mkdir(filepath.Join(acl, name)); err != nil {
			return err
		}
		if err := symlink(filepath.Join(tpg, "lun", name), filepath.Join(acl, name, lunLink)); err != nil {
			return err
		}
	}
	return nil
}

// AddACL lets initiator port id log in on path i (and keeps it across
// RestartTarget). An initiator that uses the path's local port with its
// own initiator_ext needs Path.InitiatorPortID(ext).
func (l *Lab) AddACL(i int, id srp.InitiatorPortID) error {
	p, err := l.path(i)
	if err != nil {
		return err
	}
	for _, have := range l.acls[i] {
		if have == id {
			return nil
		}
	}
	if err := l.makeACL(p, id); err != nil {
		return err
	}
	l.acls[i] = append(l.acls[i], id)
	return nil
}

// KillSessions ends every SRP session on the target side of path i: the
// path's TPG is disabled (srpt disconnects each channel: a DREQ to the
// initiator, then the session is released) and enabled again at once, so
// the initiator may log in again.
func (l *Lab) KillSessions(i int) error {
	p, err := l.path(i)
	if err != nil {
		return err
	}
	enable := filepath.Join(l.tpgDir(p), "enable")
	if err := writeFile(enable, "0"); err != nil {
		return err
	}
	return writeFile(enable, "1")
}

// RestartTarget stops the SRP target and starts it again: the srpt
// configuration is removed (every session gets a DREQ), ib_srpt is
// unloaded, down passes, ib_srpt is loaded and configured again with the
// same tports, LUNs and ACLs. The backstores, and so the data, stay.
func (l *Lab) RestartTarget(down time.Duration) error {
	if err := l.removeSrpt(); err != nil {
		return err
	}
	if err := waitFor("rmmod "+srptModule, moduleUnloadWait, func() bool {
		_, err := run("modprobe", "-r", srptModule)
		return err == nil
	}); err != nil {
		return err
	}
	time.Sleep(down)
	if err := labkit.LoadModule(srptModule); err != nil {
		return err
	}
	return l.setupSrpt()
}

// removeSrpt removes everything setupSrpt made, leaves first.
func (l *Lab) removeSrpt() error {
	if _, err := os.Stat(srptDir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var errs []error
	for i := range l.Paths {
		tpg := l.tpgDir(&l.Paths[i])
		if _, err := os.Stat(tpg); err != nil {
			continue
		}
		errs = append(errs, writeFile(filepath.Join(tpg, "enable"), "0"))
		acls, _ := os.ReadDir(filepath.Join(tpg, "acls"))
		for _, a := range acls {
			errs = append(errs, removeGroups(filepath.Join(tpg, "acls", a.Name())), rmdir(filepath.Join(tpg, "acls", a.Name())))
		}
		errs = append(errs, removeGroups(filepath.Join(tpg, "lun")), rmdir(tpg), rmdir(filepath.Dir(tpg)))
	}
	errs = append(errs, rmdir(srptDir))
	return errors.Join(errs...)
}

// removeGroups removes the lun_* subdirectories of dir and the symlinks in
// them. configfs attributes are files and stay.
func removeGroups(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return &OpError{Op: "readdir", Path: dir, Err: err}
	}
	var errs []error
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "lun_") {
			continue
		}
		sub := filepath.Join(dir, e.Name())
		inner, _ := os.ReadDir(sub)
		for _, x := range inner {
			if x.Type()&os.ModeSymlink != 0 {
				errs = append(errs, rmdir(filepath.Join(sub, x.Name())))
			}
		}
		errs = append(errs, rmdir(sub))
	}
	return errors.Join(errs...)
}

// rmdir removes a configfs directory or symlink.
func rmdir(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return &OpError{Op: "remove", Path: path, Err: err}
	}
	return nil
}

// teardownTarget removes the srpt configuration and the backstores.
func (l *Lab) teardownTarget() {
	errs := []error{l.removeSrpt()}
	for _, tg := range l.Targets {
		for _, lu := range tg.LUs {
			errs = append(errs, rmdir(lu.Backstore))
		}
	}
	errs = append(errs, rmdir(hbaDir))
	if err := errors.Join(errs...); err != nil {
		l.t.Errorf("srplab teardown of the target: %v", err)
	}
}
