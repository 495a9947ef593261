package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"
)

// staleProbeTimeout bounds the check whether an existing socket is alive.
const staleProbeTimeout = 500 * time.Millisecond

// listenControl binds the control socket with mode 0660, owned by root and
// group (a name or number; "" keeps the group root). A stale socket left by
// a dead daemon is replaced; a live one is refused (ErrDaemonRunning).
func listenControl(path, group string) (net.Listener, error) {
	gid := -1
	if group != "" {
		var err error
		if gid, err = lookupGroup(group); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, staleProbeTimeout); err == nil {
			_ = c.Close()
			return nil, ErrDaemonRunning
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	// A closed listener unlinks its socket file.
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	fail := func(err error) (net.Listener, error) { return nil, errors.Join(err, ln.Close()) }
	if err := os.Chmod(path, socketMode); err != nil {
		return fail(err)
	}
	switch {
	case gid >= 0:
		if err := os.Chown(path, 0, gid); err != nil {
			return fail(fmt.Errorf("give the socket to group %s: %w", group, err))
		}
	case os.Geteuid() == 0:
		if err := os.Chown(path, 0, 0); err != nil {
			return fail(err)
		}
	}
	return ln, nil
}

// lookupGroup resolves a group name or number.
func lookupGroup(group string) (int, error) {
	if n, err := strconv.Atoi(group); err == nil && n >= 0 {
		return n, nil
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		return 0, fmt.Errorf("%w: socket group %q: %w", ErrBadOptions, group, err)
	}
	return strconv.Atoi(g.Gid)
}
