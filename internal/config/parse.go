package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// The file is decoded twice: once into a yaml.Node tree (to know the line
// and path of every key), once with KnownFields(true) into the raw structs
// below, whose leaves are yaml.Node so that the text and line of every value
// survive for our own parsing. yaml.v3's unknown-key and type errors are
// translated to paths with the node tree.

type rawDevice struct {
	Selector    yaml.Node `yaml:"selector"`
	Grouping    yaml.Node `yaml:"grouping"`
	Failback    yaml.Node `yaml:"failback"`
	NoPathRetry yaml.Node `yaml:"no_path_retry"`
	IOTimeout   yaml.Node `yaml:"io_timeout"`
	QueueDepth  yaml.Node `yaml:"queue_depth"`
	UblkQueues  yaml.Node `yaml:"ublk_queues"`
	MaxIOSize   yaml.Node `yaml:"max_io_size"`
}

type rawDefaults struct {
	rawDevice         `yaml:",inline"`
	ReconnectDelay    yaml.Node `yaml:"reconnect_delay"`
	FastIOFailTmo     yaml.Node `yaml:"fast_io_fail_tmo"`
	DevLossTmo        yaml.Node `yaml:"dev_loss_tmo"`
	HeartbeatInterval yaml.Node `yaml:"heartbeat_interval"`
	HeartbeatTimeout  yaml.Node `yaml:"heartbeat_timeout"`
	AckTimeout        yaml.Node `yaml:"ack_timeout"`
	RetryCount        yaml.Node `yaml:"retry_count"`
	HoldDown          yaml.Node `yaml:"hold_down"`
	FlapThreshold     yaml.Node `yaml:"flap_threshold"`
	FlapWindow        yaml.Node `yaml:"flap_window"`
	FlapHoldDown      yaml.Node `yaml:"flap_hold_down"`
}

type rawTarget struct {
	Name         yaml.Node `yaml:"name"`
	Address      yaml.Node `yaml:"address"`
	Port         yaml.Node `yaml:"port"`
	IDExt        yaml.Node `yaml:"id_ext"`
	IOCGUID      yaml.Node `yaml:"ioc_guid"`
	ServiceID    yaml.Node `yaml:"service_id"`
	InitiatorExt yaml.Node `yaml:"initiator_ext"`
	Source       yaml.Node `yaml:"source"`
	PKey         yaml.Node `yaml:"pkey"`
}

type rawBlacklist struct {
	WWID    yaml.Node `yaml:"wwid"`
	Vendor  yaml.Node `yaml:"vendor"`
	Product yaml.Node `yaml:"product"`
}

type rawConfig struct {
	Defaults  rawDefaults          `yaml:"defaults"`
	Targets   []rawTarget          `yaml:"targets"`
	Devices   map[string]rawDevice `yaml:"devices"`
	Blacklist []rawBlacklist       `yaml:"blacklist"`
	Discovery rawDiscovery         `yaml:"discovery"`
}

// Limits of the values we accept.
const (
	// SCSI_DEVICE_BLOCK_MAX_TIMEOUT (drivers/scsi/scsi_priv.h), the bound
	// srp_tmo_valid puts on fast_io_fail_tmo and, with fast I/O failing
	// off, on dev_loss_tmo.
	scsiDeviceBlockMaxTimeout = 600 * time.Second
	maxRetryCount             = 7 // 3 bits in the QP context
	maxQueueDepth             = 4096
	maxUblkQueues             = 256
	minMaxIOSize              = 4 * kib
	maxMaxIOSize              = 1 * mib
	ioSizeAlign               = 4 * kib
	maxFlapThreshold          = 100
	maxWWIDLen                = 600 // as internal/store
	maxNameLen                = 64
)

// tree indexes the node tree: the path of each key and item, by line.
type tree struct {
	keyAt  map[lineKey]string // (line, key) → path
	lineOf map[string]int     // path → line of its key or item
	valAt  map[int][]string   // line → paths whose value starts there, outermost first
}

type lineKey struct {
	line int
	key  string
}

func indexTree(doc *yaml.Node) *tree {
	t := &tree{keyAt: map[lineKey]string{}, lineOf: map[string]int{}, valAt: map[int][]string{}}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				child := childPath(path, k.Value)
				t.keyAt[lineKey{k.Line, k.Value}] = child
				t.record(child, k.Line)
				t.valAt[v.Line] = append(t.valAt[v.Line], child)
				walk(v, child)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				child := fmt.Sprintf("%s[%d]", path, i)
				t.record(child, c.Line)
				t.valAt[c.Line] = append(t.valAt[c.Line], child)
				walk(c, child)
			}
		}
	}
	walk(doc, "")
	return t
}

func (t *tree) record(path string, line int) {
	if _, ok := t.lineOf[path]; !ok {
		t.lineOf[path] = line
	}
}

func childPath(parent, key string) string {
	switch parent {
	case "":
		return key
	case "devices":
		return fmt.Sprintf("devices[%q]", key)
	}
	return parent + "." + key
}

var (
	reUnknown = regexp.MustCompile(`^line (\d+): field (.+) not found in type config\.(\w+)$`)
	reAlready = regexp.MustCompile(`^line (\d+): field (.+) already set in type config\.(\w+)$`)
	reDupKey  = regexp.MustCompile(`^line (\d+): mapping key "(.*)" already defined at line (\d+)$`)
	reCannot  = regexp.MustCompile(`^line (\d+): cannot unmarshal (!!\w+)(?: .*)? into (.+)$`)
	reLine    = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
)

// rawKeys lists the keys a raw struct accepts, for "accepted:" lists.
func rawKeys(typeName string) []string {
	var t reflect.Type
	switch typeName {
	case "rawConfig":
		t = reflect.TypeFor[rawConfig]()
	case "rawDefaults":
		t = reflect.TypeFor[rawDefaults]()
	case "rawDevice":
		t = reflect.TypeFor[rawDevice]()
	case "rawTarget":
		t = reflect.TypeFor[rawTarget]()
	case "rawBlacklist":
		t = reflect.TypeFor[rawBlacklist]()
	case "rawDiscovery":
		t = reflect.TypeFor[rawDiscovery]()
	default:
		return nil
	}
	var keys []string
	var collect func(t reflect.Type)
	collect = func(t reflect.Type) {
		for f := range t.Fields() {
			tag := f.Tag.Get("yaml")
			if tag == ",inline" {
				collect(f.Type)
				continue
			}
			keys = append(keys, strings.Split(tag, ",")[0])
		}
	}
	collect(t)
	return keys
}

// translate turns one yaml.v3 type-error line into a FieldError.
func (t *tree) translate(msg string) *FieldError {
	atoi := func(s string) int { n, _ := strconv.Atoi(s); return n }
	if m := reUnknown.FindStringSubmatch(msg); m != nil {
		line := atoi(m[1])
		return &FieldError{Path: t.keyAt[lineKey{line, m[2]}], Line: line,
			Msg: fmt.Sprintf("unknown key %q", m[2]), Accepted: strings.Join(rawKeys(m[3]), ", ")}
	}
	if m := reAlready.FindStringSubmatch(msg); m != nil {
		line := atoi(m[1])
		return &FieldError{Path: t.keyAt[lineKey{line, m[2]}], Line: line, Msg: fmt.Sprintf("key %q given twice", m[2])}
	}
	if m := reDupKey.FindStringSubmatch(msg); m != nil {
		line := atoi(m[1])
		return &FieldError{Path: t.keyAt[lineKey{line, m[2]}], Line: line, Msg: fmt.Sprintf("key %q given twice (first at line %s)", m[2], m[3])}
	}
	if m := reCannot.FindStringSubmatch(msg); m != nil {
		line := atoi(m[1])
		want := "a mapping"
		switch {
		case strings.HasPrefix(m[3], "[]"):
			want = "a list"
		case m[3] == "yaml.Node":
			want = "a value"
		}
		path := "top level"
		if ps := t.valAt[line]; len(ps) > 0 {
			path = ps[0]
		}
		return &FieldError{Path: path, Line: line, Msg: fmt.Sprintf("expected %s, got %s", want, kindOfTag(m[2]))}
	}
	if m := reLine.FindStringSubmatch(msg); m != nil {
		return &FieldError{Line: atoi(m[1]), Msg: "YAML: " + m[2]}
	}
	return &FieldError{Msg: "YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

func kindOfTag(tag string) string {
	switch tag {
	case "!!seq":
		return "a list"
	case "!!map":
		return "a mapping"
	case "!!null":
		return "nothing"
	}
	return "a single value (" + strings.TrimPrefix(tag, "!!") + ")"
}

func parse(data []byte, file string) (*Config, error) {
	var p problems
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		p.list = append(p.list, (&tree{}).translate(err.Error()))
		return nil, p.err(file)
	}
	t := indexTree(&doc)

	var raw rawConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	switch err := dec.Decode(&raw); {
	case err == nil, errors.Is(err, io.EOF): // EOF: an empty file is the defaults
	default:
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			p.list = append(p.list, t.translate(err.Error()))
			return nil, p.err(file)
		}
		for _, m := range te.Errors {
			p.list = append(p.list, t.translate(m))
		}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		p.add("", extra.Line, "", "a second YAML document: the file must hold one")
	}

	c := Default()
	c.File = file
	parseDefaults(&p, &raw.Defaults, &c.Defaults)
	c.Targets = parseTargets(&p, t, raw.Targets)
	c.Devices = parseDevices(&p, t, raw.Devices)
	c.Blacklist = parseBlacklist(&p, t, raw.Blacklist)
	c.Discovery = parseDiscovery(&p, &raw.Discovery)
	if err := p.err(file); err != nil {
		return nil, err
	}
	return c, nil
}

// value returns the text of a scalar node; ok is false when the key is
// absent or the node is not a usable scalar (then a problem is recorded).
func value(p *problems, path string, n *yaml.Node, accepted string) (string, bool) {
	switch {
	case n.Kind == 0:
		return "", false
	case n.Kind != yaml.ScalarNode:
		p.add(path, n.Line, accepted, "expected a single value, got %s", kindOfTag(n.ShortTag()))
		return "", false
	case n.ShortTag() == "!!null":
		p.add(path, n.Line, accepted, "no value given")
		return "", false
	}
	return n.Value, true
}

// field parses node n into *dst if present and valid, reporting problems.
func field[T any](p *problems, path string, n *yaml.Node, accepted string, parse func(string) (T, error), dst *T) bool {
	s, ok := value(p, path, n, accepted)
	if !ok {
		return false
	}
	v, err := parse(s)
	if err != nil {
		p.add(path, n.Line, accepted, "%v", err)
		return false
	}
	*dst = v
	return true
}

// optField parses into a fresh *T (nil when absent or invalid).
func optField[T any](p *problems, path string, n *yaml.Node, accepted string, parse func(string) (T, error)) *T {
	var v T
	if !field(p, path, n, accepted, parse, &v) {
		return nil
	}
	return &v
}

func intRange(lo, hi int) func(string) (int, error) {
	return func(s string) (int, error) {
		n, err := strconv.Atoi(s)
		if err != nil {
			return 0, fmt.Errorf("%q is not a whole number", s)
		}
		if n < lo || n > hi {
			return 0, fmt.Errorf("%d is outside %d..%d", n, lo, hi)
		}
		return n, nil
	}
}

func rangeText(lo, hi int) string { return fmt.Sprintf("%d..%d", lo, hi) }

func parseIOSize(s string) (Size, error) {
	v, err := ParseSize(s)
	if err != nil {
		return 0, err
	}
	if v < minMaxIOSize || v > maxMaxIOSize || v%ioSizeAlign != 0 {
		return 0, fmt.Errorf("%s is not a multiple of %s in %s..%s", v, Size(ioSizeAlign), Size(minMaxIOSize), Size(maxMaxIOSize))
	}
	return v, nil
}

func parseIOTimeout(s string) (Timeout, error) {
	v, err := ParseTimeout(s)
	if err == nil && v == 0 {
		return 0, errors.New("0s would abort every I/O: write off to disable the deadline")
	}
	return v, err
}

func parseAckTimeout(s string) (AckTimeout, error) {
	n, err := intRange(0, maxAckTimeout)(s)
	return AckTimeout(n), err
}

var (
	acceptQueueDepth = rangeText(1, maxQueueDepth)
	acceptUblkQueues = rangeText(1, maxUblkQueues) + " (the kernel caps it at the number of CPUs)"
	acceptIOSize     = fmt.Sprintf("a multiple of %s in %s..%s (%s)", Size(ioSizeAlign), Size(minMaxIOSize), Size(maxMaxIOSize), acceptSize)
)

// parseDeviceFields parses the device settings of defaults or one device.
func parseDeviceFields(p *problems, prefix string, r *rawDevice) DeviceOverride {
	return DeviceOverride{
		Selector:    optField(p, prefix+".selector", &r.Selector, acceptSelector, ParseSelector),
		Grouping:    optField(p, prefix+".grouping", &r.Grouping, acceptGrouping, ParseGrouping),
		Failback:    optField(p, prefix+".failback", &r.Failback, acceptFailback, ParseFailback),
		NoPathRetry: optField(p, prefix+".no_path_retry", &r.NoPathRetry, acceptNoPath, ParseNoPathRetry),
		IOTimeout:   optField(p, prefix+".io_timeout", &r.IOTimeout, acceptTimeout, parseIOTimeout),
		QueueDepth:  optField(p, prefix+".queue_depth", &r.QueueDepth, acceptQueueDepth, intRange(1, maxQueueDepth)),
		UblkQueues:  optField(p, prefix+".ublk_queues", &r.UblkQueues, acceptUblkQueues, intRange(1, maxUblkQueues)),
		MaxIOSize:   optField(p, prefix+".max_io_size", &r.MaxIOSize, acceptIOSize, parseIOSize),
	}
}

func parseDefaults(p *problems, r *rawDefaults, d *Defaults) {
	parseDeviceFields(p, "defaults", &r.rawDevice).apply(&d.Device)
	ps := &d.Path
	const pre = "defaults."
	field(p, pre+"reconnect_delay", &r.ReconnectDelay, acceptTimeout, ParseTimeout, &ps.ReconnectDelay)
	field(p, pre+"fast_io_fail_tmo", &r.FastIOFailTmo, acceptTimeout, ParseTimeout, &ps.FastIOFailTmo)
	field(p, pre+"dev_loss_tmo", &r.DevLossTmo, acceptTimeout, ParseTimeout, &ps.DevLossTmo)
	field(p, pre+"heartbeat_interval", &r.HeartbeatInterval, acceptTimeout, ParseTimeout, &ps.HeartbeatInterval)
	field(p, pre+"heartbeat_timeout", &r.HeartbeatTimeout, acceptDuration, parseDuration, &ps.HeartbeatTimeout)
	field(p, pre+"ack_timeout", &r.AckTimeout, acceptAckTimeout, parseAckTimeout, &ps.AckTimeout)
	field(p, pre+"retry_count", &r.RetryCount, rangeText(0, maxRetryCount), intRange(0, maxRetryCount), &ps.RetryCount)
	field(p, pre+"hold_down", &r.HoldDown, acceptDuration, parseDuration, &ps.HoldDown)
	field(p, pre+"flap_threshold", &r.FlapThreshold, rangeText(0, maxFlapThreshold)+" (0 = off)", intRange(0, maxFlapThreshold), &ps.FlapThreshold)
	field(p, pre+"flap_window", &r.FlapWindow, acceptDuration, parseDuration, &ps.FlapWindow)
	field(p, pre+"flap_hold_down", &r.FlapHoldDown, acceptDuration, parseDuration, &ps.FlapHoldDown)
	checkPathRules(p, r, ps)
}

// checkPathRules applies the rules between path settings. The first group
// is the kernel's srp_tmo_valid (drivers/scsi/scsi_transport_srp.c); its
// rule dev_loss_tmo < LONG_MAX/HZ cannot fail for a Go duration.
func checkPathRules(p *problems, r *rawDefaults, s *PathSettings) {
	type ref struct {
		name string
		node *yaml.Node
		v    Timeout
	}
	rd := ref{"reconnect_delay", &r.ReconnectDelay, s.ReconnectDelay}
	fio := ref{"fast_io_fail_tmo", &r.FastIOFailTmo, s.FastIOFailTmo}
	dl := ref{"dev_loss_tmo", &r.DevLossTmo, s.DevLossTmo}
	// desc names a timer with its value, marking values not in the file.
	desc := func(x ref) string {
		if x.node.Kind == 0 {
			return fmt.Sprintf("defaults.%s (%s, the default)", x.name, x.v)
		}
		return fmt.Sprintf("defaults.%s (%s)", x.name, x.v)
	}
	// at reports on the first of refs that the file sets (else the first).
	at := func(msg string, refs ...ref) {
		for _, x := range refs {
			if x.node.Kind != 0 {
				p.add("defaults."+x.name, x.node.Line, "", "%s", msg)
				return
			}
		}
		p.add("defaults."+refs[0].name, 0, "", "%s", msg)
	}
	const rule = " [kernel rule srp_tmo_valid]"
	if rd.v.IsOff() && fio.v.IsOff() && dl.v.IsOff() {
		at("reconnect_delay, fast_io_fail_tmo and dev_loss_tmo are all off: a failed path would be neither retried nor failed"+rule, rd, fio, dl)
	}
	if rd.v == 0 {
		at("0s is not allowed: write off to disable reconnecting"+rule, rd)
	}
	if fio.v.Duration() > scsiDeviceBlockMaxTimeout {
		at(fmt.Sprintf("%s exceeds %s (SCSI_DEVICE_BLOCK_MAX_TIMEOUT)", fio.v, scsiDeviceBlockMaxTimeout)+rule, fio)
	}
	if fio.v.IsOff() && dl.v.Duration() > scsiDeviceBlockMaxTimeout {
		at(fmt.Sprintf("%s exceeds %s (SCSI_DEVICE_BLOCK_MAX_TIMEOUT) while fast_io_fail_tmo is off", dl.v, scsiDeviceBlockMaxTimeout)+rule, dl, fio)
	}
	if !fio.v.IsOff() && !dl.v.IsOff() && fio.v >= dl.v {
		if fio.node.Kind != 0 || dl.node.Kind == 0 {
			at(fmt.Sprintf("%s must be smaller than %s", fio.v, desc(dl))+rule, fio)
		} else {
			at(fmt.Sprintf("%s must be larger than %s", dl.v, desc(fio))+rule, dl)
		}
	}
	if !s.HeartbeatInterval.IsOff() && s.HeartbeatInterval == 0 {
		p.add("defaults.heartbeat_interval", r.HeartbeatInterval.Line, acceptTimeout, "0s would send heartbeats without pause: write off to disable them")
	}
	if !s.HeartbeatInterval.IsOff() && s.HeartbeatTimeout == 0 {
		p.add("defaults.heartbeat_timeout", r.HeartbeatTimeout.Line, acceptDuration, "must be more than 0s while heartbeat_interval is on")
	}
	if s.FlapThreshold > 0 && s.FlapWindow == 0 {
		p.add("defaults.flap_window", r.FlapWindow.Line, acceptDuration, "must be more than 0s while flap_threshold is %d", s.FlapThreshold)
	}
	if s.FlapThreshold > 0 && s.FlapHoldDown < s.HoldDown {
		line := r.FlapHoldDown.Line
		if line == 0 {
			line = r.HoldDown.Line
		}
		p.add("defaults.flap_hold_down", line, "", "%s must be at least hold_down (%s): a flapping path is held down longer, not shorter", s.FlapHoldDown, s.HoldDown)
	}
}

func parseTargets(p *problems, tr *tree, raw []rawTarget) []Target {
	out := make([]Target, 0, len(raw))
	names := map[string]int{}
	type nexus struct {
		addr   string
		port   uint16
		source string
		ext    GUID
	}
	seen := map[nexus]int{}
	for i := range raw {
		r := &raw[i]
		pre := fmt.Sprintf("targets[%d]", i)
		item := tr.lineOf[pre]
		var t Target
		t.PKey = PKeyDefault
		okAddr := field(p, pre+".address", &r.Address, "an IPv4 or IPv6 address", parseTargetAddr, &t.Address)
		if r.Address.Kind == 0 {
			p.add(pre+".address", item, "an IPv4 or IPv6 address", "missing: every target needs the address of its RDMA/CM listener")
		}
		var port int
		okPort := field(p, pre+".port", &r.Port, rangeText(1, 65535), intRange(1, 65535), &port)
		t.Port = uint16(port)
		if r.Port.Kind == 0 {
			p.add(pre+".port", item, rangeText(1, 65535), "missing: the RDMA/CM port of the target (ib_srpt's rdma_cm_port) has no default")
		}
		okID := field(p, pre+".id_ext", &r.IDExt, acceptGUID, ParseGUID, &t.IDExt)
		if r.IDExt.Kind == 0 {
			p.add(pre+".id_ext", item, acceptGUID, "missing: the first half of the SRP target port id (LIO: its service GUID)")
		}
		t.IOCGUID = t.IDExt
		field(p, pre+".ioc_guid", &r.IOCGUID, acceptGUID, ParseGUID, &t.IOCGUID)
		t.ServiceID = t.IOCGUID
		field(p, pre+".service_id", &r.ServiceID, acceptGUID, ParseGUID, &t.ServiceID)
		field(p, pre+".initiator_ext", &r.InitiatorExt, acceptGUID, ParseGUID, &t.InitiatorExt)
		field(p, pre+".source", &r.Source, acceptSource, ParseSource, &t.Source)
		field(p, pre+".pkey", &r.PKey, acceptPKey, ParsePKey, &t.PKey)
		if field(p, pre+".name", &r.Name, "1..64 of A-Z a-z 0-9 . _ : -", parseName, &t.Name) {
			if j, dup := names[t.Name]; dup {
				p.add(pre+".name", r.Name.Line, "", "%q is already the name of targets[%d]", t.Name, j)
			}
		} else if r.Name.Kind == 0 && okAddr && okPort {
			t.Name = defaultName(t)
		}
		if _, dup := names[t.Name]; !dup && t.Name != "" {
			names[t.Name] = i
		}
		if okAddr && okPort && okID {
			k := nexus{t.Address.String(), t.Port, t.Source.String(), t.InitiatorExt}
			if j, dup := seen[k]; dup {
				p.add(pre, item, "",
					"same address, port, source and initiator_ext as targets[%d]: the second login would replace the first (SRP logins are single per I_T nexus); give one a different initiator_ext or source", j)
			} else {
				seen[k] = i
			}
		}
		out = append(out, t)
	}
	return out
}

// defaultName names a target by its nexus: address:port, plus the source
// and initiator_ext when set, so that distinct paths get distinct names.
func defaultName(t Target) string {
	n := netip.AddrPortFrom(t.Address, t.Port).String()
	if !t.Source.IsZero() {
		n += ",source=" + t.Source.String()
	}
	if t.InitiatorExt != 0 {
		n += ",initiator_ext=" + t.InitiatorExt.String()
	}
	return n
}

var targetName = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

func parseName(s string) (string, error) {
	if !targetName.MatchString(s) {
		return "", fmt.Errorf("%q is not a usable name", s)
	}
	return s, nil
}

func parseTargetAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return a, fmt.Errorf("%q is not an IP address", s)
	}
	if a.IsUnspecified() || a.IsMulticast() {
		return a, fmt.Errorf("%s cannot be a target address", a)
	}
	return a, nil
}

func parseDevices(p *problems, t *tree, raw map[string]rawDevice) map[string]DeviceOverride {
	out := make(map[string]DeviceOverride, len(raw))
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, wwid := range keys {
		r := raw[wwid]
		pre := fmt.Sprintf("devices[%q]", wwid)
		if err := checkWWID(wwid); err != nil {
			p.add(pre, t.lineOf[pre], "printable ASCII without spaces, at most 600 bytes", "%v", err)
			continue
		}
		out[wwid] = parseDeviceFields(p, pre, &r)
	}
	return out
}

func checkWWID(s string) error {
	if s == "" {
		return errors.New("empty WWID")
	}
	if len(s) > maxWWIDLen {
		return fmt.Errorf("WWID of %d bytes", len(s))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("WWID %q has byte 0x%02x at offset %d", s, c, i)
		}
	}
	return nil
}

func parseBlacklist(p *problems, tr *tree, raw []rawBlacklist) []BlacklistRule {
	out := make([]BlacklistRule, 0, len(raw))
	const accepted = "a Go regular expression (RE2 syntax)"
	for i := range raw {
		r := &raw[i]
		pre := fmt.Sprintf("blacklist[%d]", i)
		rule := BlacklistRule{Line: tr.lineOf[pre]}
		rule.WWID = optRegexp(p, pre+".wwid", &r.WWID, accepted)
		rule.Vendor = optRegexp(p, pre+".vendor", &r.Vendor, accepted)
		rule.Product = optRegexp(p, pre+".product", &r.Product, accepted)
		if r.WWID.Kind == 0 && r.Vendor.Kind == 0 && r.Product.Kind == 0 {
			p.add(pre, rule.Line, "wwid, vendor, product", "an empty rule would exclude every LU")
			continue
		}
		out = append(out, rule)
	}
	return out
}

func optRegexp(p *problems, path string, n *yaml.Node, accepted string) *regexp.Regexp {
	re := optField(p, path, n, accepted, func(s string) (*regexp.Regexp, error) {
		re, err := regexp.Compile(s)
		if err != nil {
			return nil, fmt.Errorf("%q does not compile: %v", s, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		}
		return re, nil
	})
	if re == nil {
		return nil
	}
	return *re
}
