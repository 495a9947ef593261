package discovery

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/srp-mpathd/srp-mpathd/internal/srp/mad"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
)

// PortRef names a local RDMA port, written "DEV:PORT" (e.g. "mlx5_0:1").
type PortRef struct {
	Device string
	Port   uint8
}

func (r PortRef) String() string { return r.Device + ":" + strconv.Itoa(int(r.Port)) }

// ParsePortRef parses "DEV:PORT".
func ParsePortRef(s string) (PortRef, error) {
	dev, port, ok := strings.Cut(s, ":")
	if !ok || dev == "" {
		return PortRef{}, fmt.Errorf("port %q: want DEV:PORT: %w", s, ErrBadTarget)
	}
	n, err := strconv.ParseUint(port, 10, 8)
	if err != nil || n == 0 {
		return PortRef{}, fmt.Errorf("port %q: port number 1..255: %w", s, ErrBadTarget)
	}
	return PortRef{Device: dev, Port: uint8(n)}, nil
}

// Target describes one SRP target port reachable from one local port
// through one partition: what ib_srp's add_target needs, plus where it was
// found.
type Target struct {
	// IDExt and IOCGUID form the target port id.
	IDExt   uint64
	IOCGUID uint64
	// DGID is the target port's GID (InfiniBand); zero for a static
	// RDMA/CM target, which has Dest instead.
	DGID verbs.GID
	// Dest is the RDMA/CM address of a static (RoCE) target.
	Dest netip.AddrPort
	// PKey is the partition, membership bit included.
	PKey uint16
	// PKeyIndex is PKey's index in the local port's table when the target
	// was found (indexes can change: resolve again before use).
	PKeyIndex uint16
	ServiceID uint64
	// MaxIUSize is the IOC profile's send size: the largest IU the target
	// accepts (0 if unknown).
	MaxIUSize int
	// IOClass is the IOC's I/O class (0x0100 SRP rev 16a, 0xff00 rev 10).
	IOClass uint16
	// Local is the port the target was found through; DLID the target
	// port's LID then.
	Local PortRef
	DLID  uint16
	// IOCName is the controller's id string ("Linux SRP target").
	IOCName string
	// Options are the per-target options of the rule that allowed it
	// (e.g. "queue_size=128,max_sect=1024"), in rule order.
	Options string
	// Static is set for a target from the configuration, not the fabric.
	Static bool
}

// Key identifies the target across scans: the same port id through the
// same local port, partition and address.
type Key struct {
	IDExt, IOCGUID, ServiceID uint64
	DGID                      verbs.GID
	Dest                      netip.AddrPort
	PKey                      uint16
	Local                     PortRef
}

// Key returns t's identity.
func (t Target) Key() Key {
	return Key{IDExt: t.IDExt, IOCGUID: t.IOCGUID, ServiceID: t.ServiceID, DGID: t.DGID, Dest: t.Dest, PKey: t.PKey,
		Local: t.Local}
}

// String renders t as `ibsrpdm -c` and srp_daemon print it for ib_srp's
// add_target: id_ext=…,ioc_guid=…,dgid=…,pkey=…,service_id=… (dest=IP:PORT
// instead of dgid for an RDMA/CM target), then io_class=… when it is not
// SRP rev 16a, then the rule's options.
func (t Target) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "id_ext=%016x,ioc_guid=%016x,", t.IDExt, t.IOCGUID)
	if t.DGID == (verbs.GID{}) && t.Dest.IsValid() {
		fmt.Fprintf(&b, "dest=%v", t.Dest)
	} else {
		fmt.Fprintf(&b, "dgid=%s", hex.EncodeToString(t.DGID[:]))
	}
	fmt.Fprintf(&b, ",pkey=%04x,service_id=%016x", t.PKey, t.ServiceID)
	if t.IOClass != 0 && t.IOClass != mad.IOClassSRPRev16A {
		fmt.Fprintf(&b, ",io_class=%04x", t.IOClass)
	}
	if t.Options != "" {
		b.WriteString("," + t.Options)
	}
	return b.String()
}

// ParseTarget parses the String form (the configuration's static targets
// use it): id_ext, ioc_guid and service_id are required, dgid or dest one
// of them, pkey defaults to ffff, io_class to 0100; any other key=value
// is kept in Options.
func ParseTarget(s string) (Target, error) {
	t := Target{PKey: defaultPKey, IOClass: mad.IOClassSRPRev16A, Static: true}
	bad := func(field string, err error) (Target, error) {
		if err == nil {
			err = ErrBadTarget
		} else {
			err = fmt.Errorf("%w: %w", ErrBadTarget, err)
		}
		return Target{}, fmt.Errorf("target %q: %s: %w", s, field, err)
	}
	var seen = map[string]bool{}
	var opts []string
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return bad(f, nil)
		}
		seen[k] = true
		var err error
		switch k {
		case "id_ext":
			t.IDExt, err = strconv.ParseUint(v, 16, 64)
		case "ioc_guid":
			t.IOCGUID, err = strconv.ParseUint(v, 16, 64)
		case "service_id":
			t.ServiceID, err = strconv.ParseUint(v, 16, 64)
		case "dgid":
			t.DGID, err = parseGID(v)
		case "dest":
			t.Dest, err = netip.ParseAddrPort(v)
		case "pkey":
			var p uint64
			p, err = strconv.ParseUint(v, 16, 16)
			t.PKey = uint16(p)
		case "io_class":
			var c uint64
			c, err = strconv.ParseUint(v, 16, 16)
			t.IOClass = uint16(c)
		default:
			opts = append(opts, f)
		}
		if err != nil {
			return bad(k, err)
		}
	}
	for _, k := range []string{"id_ext", "ioc_guid", "service_id"} {
		if !seen[k] {
			return bad(k+" missing", nil)
		}
	}
	if seen["dgid"] == seen["dest"] {
		return bad("exactly one of dgid and dest", nil)
	}
	t.Options = strings.Join(opts, ",")
	return t, nil
}

// parseGID accepts 32 hex digits (srp_daemon's dgid=) or the colon form.
func parseGID(s string) (verbs.GID, error) {
	var g verbs.GID
	if len(s) == 2*len(g) && !strings.Contains(s, ":") {
		if _, err := hex.Decode(g[:], []byte(s)); err != nil {
			return g, err
		}
		return g, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is6() {
		return g, fmt.Errorf("gid %q", s)
	}
	return verbs.GID(a.As16()), nil
}

// gidFrom joins a subnet prefix and a port GUID.
func gidFrom(prefix, guid uint64) verbs.GID {
	var g verbs.GID
	binary.BigEndian.PutUint64(g[:8], prefix)
	binary.BigEndian.PutUint64(g[8:], guid)
	return g
}

// defaultPKey is the default partition, full member.
const defaultPKey = 0xffff

var be = binary.BigEndian

// targetJSON is the JSON form of a Target: identifiers as the hex strings
// of the add_target syntax.
type targetJSON struct {
	IDExt     string `json:"id_ext"`
	IOCGUID   string `json:"ioc_guid"`
	DGID      string `json:"dgid,omitempty"`
	Dest      string `json:"dest,omitempty"`
	PKey      string `json:"pkey"`
	PKeyIndex uint16 `json:"pkey_index"`
	ServiceID string `json:"service_id"`
	MaxIUSize int    `json:"max_iu_size,omitempty"`
	IOClass   string `json:"io_class"`
	Local     string `json:"local_port,omitempty"`
	DLID      uint16 `json:"dlid,omitempty"`
	IOCName   string `json:"ioc_name,omitempty"`
	Options   string `json:"options,omitempty"`
	Static    bool   `json:"static,omitempty"`
	AddTarget string `json:"add_target"`
}

// MarshalJSON renders t for `discover --json`.
func (t Target) MarshalJSON() ([]byte, error) {
	j := targetJSON{IDExt: fmt.Sprintf("%016x", t.IDExt), IOCGUID: fmt.Sprintf("%016x", t.IOCGUID),
		PKey: fmt.Sprintf("%04x", t.PKey), PKeyIndex: t.PKeyIndex, ServiceID: fmt.Sprintf("%016x", t.ServiceID),
		MaxIUSize: t.MaxIUSize, IOClass: fmt.Sprintf("%04x", t.IOClass), DLID: t.DLID, IOCName: t.IOCName,
		Options: t.Options, Static: t.Static, AddTarget: t.String()}
	if t.DGID != (verbs.GID{}) {
		j.DGID = hex.EncodeToString(t.DGID[:])
	}
	if t.Dest.IsValid() {
		j.Dest = t.Dest.String()
	}
	if t.Local.Device != "" {
		j.Local = t.Local.String()
	}
	return json.Marshal(j)
}
