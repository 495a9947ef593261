package config

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrInvalid is wrapped by every *Error: the configuration was refused.
var ErrInvalid = errors.New("invalid configuration")

// FieldError is one problem, at one field.
type FieldError struct {
	Path     string // e.g. defaults.fast_io_fail_tmo, targets[1].pkey, devices["naa.6001"].selector
	Line     int    // 1-based line in the file; 0 when not from a file
	Msg      string
	Accepted string // what the field accepts, when that helps
}

var _ error = (*FieldError)(nil)

func (e *FieldError) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Msg)
	if e.Accepted != "" {
		b.WriteString(" (accepted: " + e.Accepted + ")")
	}
	return b.String()
}

// Error lists every problem of a refused configuration, ordered by line.
type Error struct {
	File     string // "" for Parse
	Problems []*FieldError
}

var _ error = (*Error)(nil)

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("config")
	if e.File != "" {
		b.WriteString(" " + e.File)
	}
	n := len(e.Problems)
	if n == 1 {
		b.WriteString(": " + e.Problems[0].Error())
		return b.String()
	}
	fmt.Fprintf(&b, ": %d problems:", n)
	for _, p := range e.Problems {
		b.WriteString("\n  " + p.Error())
	}
	return b.String()
}

// Unwrap returns ErrInvalid and every problem, for errors.Is/As.
func (e *Error) Unwrap() []error {
	out := []error{ErrInvalid}
	for _, p := range e.Problems {
		out = append(out, p)
	}
	return out
}

// OpError is a failure to read the configuration file.
type OpError struct {
	Op   string
	Path string
	Err  error
}

var _ error = (*OpError)(nil)

func (e *OpError) Error() string { return "config: " + e.Op + " " + e.Path + ": " + e.Err.Error() }

func (e *OpError) Unwrap() error { return e.Err }

// problems collects FieldErrors.
type problems struct{ list []*FieldError }

func (p *problems) add(path string, line int, accepted, format string, args ...any) {
	p.list = append(p.list, &FieldError{Path: path, Line: line, Msg: fmt.Sprintf(format, args...), Accepted: accepted})
}

// err returns the *Error of the collected problems (nil if none), sorted by
// line then path so that output is stable.
func (p *problems) err(file string) error {
	if len(p.list) == 0 {
		return nil
	}
	list := slices.Clone(p.list)
	slices.SortStableFunc(list, func(a, b *FieldError) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Path, b.Path))
	})
	return &Error{File: file, Problems: list}
}
