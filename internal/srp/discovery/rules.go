package discovery

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
)

// Rule is one allow/deny line in the spirit of srp_daemon.conf:
//
//	a ioc_guid=00a0b80200402bef,queue_size=128
//	d dgid=fe800000000000000002c90200402bd5
//	a pkey=8001
//	d
//
// A rule matches a target when every match key it names equals the
// target's value (id_ext, ioc_guid, service_id: 16 hex digits; dgid: 32
// hex digits; pkey: 4 hex digits, membership bit included, compared
// exactly as srp_daemon does). A rule with no match key matches every
// target. Allow rules may carry per-target options, which ib_srp's
// add_target understands and which are passed on in Target.Options.
type Rule struct {
	Allow bool
	// Match keys; nil means "any".
	IDExt, IOCGUID, ServiceID *uint64
	DGID                      *verbs.GID
	PKey                      *uint16
	// Options in file order, "key=value" each.
	Options []string
}

// Rules is an ordered rule list: the first rule that matches decides; a
// target no rule matches is allowed (srp_daemon's behaviour).
type Rules []Rule

// Options srp_daemon accepts on allow rules (parse_other_option), plus
// max_it_iu_size, which it appends itself.
var ruleOptions = []string{
	"allow_ext_sg", "ch_count", "cmd_sg_entries", "comp_vector", "max_cmd_per_lun", "max_sect",
	"queue_size", "sg_tablesize", "tl_retry_count", "max_it_iu_size",
}

// ParseRules reads rules, one per line; '#' starts a comment and blank
// lines are skipped. The whole input is rejected at the first bad line.
func ParseRules(r io.Reader) (Rules, error) {
	var out Rules
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		rule, err := ParseRule(line)
		if err != nil {
			return nil, &RuleError{Line: n, Text: sc.Text(), Err: err}
		}
		out = append(out, rule)
	}
	if err := sc.Err(); err != nil {
		return nil, &RuleError{Err: err}
	}
	return out, nil
}

// ParseRule parses one rule line ("a key=value,..." or "d key=value,...").
func ParseRule(line string) (Rule, error) {
	line = strings.TrimSpace(line)
	var r Rule
	switch {
	case strings.HasPrefix(line, "a"):
		r.Allow = true
	case strings.HasPrefix(line, "d"):
	default:
		return Rule{}, fmt.Errorf("want 'a' (allow) or 'd' (deny) first: %w", ErrBadRule)
	}
	rest := line[1:]
	if rest != "" && rest[0] != ' ' && rest[0] != '\t' {
		return Rule{}, fmt.Errorf("want 'a' or 'd' then blank: %w", ErrBadRule)
	}
	for f := range strings.SplitSeq(strings.TrimSpace(rest), ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		k, v, ok := strings.Cut(f, "=")
		if !ok || v == "" {
			return Rule{}, fmt.Errorf("%q: want key=value: %w", f, ErrBadRule)
		}
		bad := func(why string) error { return fmt.Errorf("%s=%s: %s: %w", k, v, why, ErrBadRule) }
		switch k {
		case "id_ext", "ioc_guid", "service_id":
			x, err := strconv.ParseUint(v, 16, 64)
			if err != nil || len(v) > 16 {
				return Rule{}, bad("want up to 16 hex digits")
			}
			switch k {
			case "id_ext":
				r.IDExt = &x
			case "ioc_guid":
				r.IOCGUID = &x
			default:
				r.ServiceID = &x
			}
		case "dgid":
			g, err := parseGID(v)
			if err != nil {
				return Rule{}, bad("want 32 hex digits")
			}
			r.DGID = &g
		case "pkey":
			x, err := strconv.ParseUint(v, 16, 16)
			if err != nil {
				return Rule{}, bad("want up to 4 hex digits")
			}
			p := uint16(x)
			r.PKey = &p
		default:
			if !slices.Contains(ruleOptions, k) {
				return Rule{}, bad("unknown key (match keys: id_ext, ioc_guid, dgid, pkey, service_id; options: " +
					strings.Join(ruleOptions, ", ") + ")")
			}
			if !r.Allow {
				return Rule{}, bad("options only on allow rules")
			}
			r.Options = append(r.Options, f)
		}
	}
	return r, nil
}

// Matches reports whether every match key of r equals t's value.
func (r *Rule) Matches(t *Target) bool {
	return (r.IDExt == nil || *r.IDExt == t.IDExt) &&
		(r.IOCGUID == nil || *r.IOCGUID == t.IOCGUID) &&
		(r.ServiceID == nil || *r.ServiceID == t.ServiceID) &&
		(r.DGID == nil || *r.DGID == t.DGID) &&
		(r.PKey == nil || *r.PKey == t.PKey)
}

// Decide applies the rules to t: whether it is allowed, and the options of
// the allowing rule.
func (rs Rules) Decide(t *Target) (allow bool, options []string) {
	for i := range rs {
		if rs[i].Matches(t) {
			return rs[i].Allow, rs[i].Options
		}
	}
	return true, nil
}

// String renders r in the file syntax.
func (r Rule) String() string {
	var f []string
	if r.IDExt != nil {
		f = append(f, fmt.Sprintf("id_ext=%016x", *r.IDExt))
	}
	if r.IOCGUID != nil {
		f = append(f, fmt.Sprintf("ioc_guid=%016x", *r.IOCGUID))
	}
	if r.DGID != nil {
		f = append(f, fmt.Sprintf("dgid=%x", r.DGID[:]))
	}
	if r.PKey != nil {
		f = append(f, fmt.Sprintf("pkey=%04x", *r.PKey))
	}
	if r.ServiceID != nil {
		f = append(f, fmt.Sprintf("service_id=%016x", *r.ServiceID))
	}
	f = append(f, r.Options...)
	head := "d"
	if r.Allow {
		head = "a"
	}
	if len(f) == 0 {
		return head
	}
	return head + " " + strings.Join(f, ",")
}
