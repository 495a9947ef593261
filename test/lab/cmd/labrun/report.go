package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// The README's lab results: labrun -report FILE rewrites the lines between
// reportBegin and reportEnd in FILE from a results.json, so the figures a
// reader sees are the last run's, not hand-copied ones.
const (
	reportBegin = "<!-- lab-results:begin -->"
	reportEnd   = "<!-- lab-results:end -->"
	// maxReasonLen bounds a failed scenario's reason in the report; the
	// whole reason is in results.json.
	maxReasonLen = 160
)

// ErrNoReportMarkers is returned when the file to rewrite lacks the begin
// and end markers, in that order, once each.
var ErrNoReportMarkers = errors.New("labrun: no " + reportBegin + " ... " + reportEnd + " section")

// ReadResults decodes a results.json. A file written before results carried
// their start time gets the file's modification time instead.
func ReadResults(path string) (*Results, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Results
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.Started == "" {
		if fi, err := os.Stat(path); err == nil {
			r.Started = fi.ModTime().UTC().Format(time.RFC3339)
		}
	}
	return &r, nil
}

// WriteReport rewrites the lab-results section of the file at docPath from
// r, atomically.
func WriteReport(docPath string, r *Results) error {
	doc, err := os.ReadFile(docPath)
	if err != nil {
		return err
	}
	out, err := replaceSection(doc, r.Markdown())
	if err != nil {
		return fmt.Errorf("%s: %w", docPath, err)
	}
	tmp := filepath.Join(filepath.Dir(docPath), "."+filepath.Base(docPath)+".tmp")
	if err := os.WriteFile(tmp, out, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, docPath)
}

// replaceSection puts body between the markers of doc, keeping the marker
// lines and everything outside them.
func replaceSection(doc []byte, body string) ([]byte, error) {
	if bytes.Count(doc, []byte(reportBegin)) != 1 || bytes.Count(doc, []byte(reportEnd)) != 1 {
		return nil, ErrNoReportMarkers
	}
	i := bytes.Index(doc, []byte(reportBegin)) + len(reportBegin)
	j := bytes.Index(doc, []byte(reportEnd))
	if j < i {
		return nil, ErrNoReportMarkers
	}
	var b bytes.Buffer
	b.Write(doc[:i])
	b.WriteString("\n")
	b.WriteString(body)
	b.Write(doc[j:])
	return b.Bytes(), nil
}

// Markdown renders r as the README's lab-results section: one line on the
// run, a table with a row per scenario and the reasons of the failed ones.
// The output depends on r only.
func (r *Results) Markdown() string {
	var b strings.Builder
	b.WriteString("<!-- written by `make lab-report` (labrun -report) from results.json: edits here are overwritten -->\n\n")
	date := r.Started
	if t, err := time.Parse(time.RFC3339, r.Started); err == nil {
		date = t.UTC().Format("2006-01-02 15:04 UTC")
	}
	fmt.Fprintf(&b, "Lab run of %s: kernel %s, accel %s, %d scenarios, %d failed, wall time %s.\n\n",
		orDash(date), orDash(r.Kernel), orDash(r.Accel), len(r.Scenarios), r.Failed(),
		(time.Duration(r.WallMS) * time.Millisecond).Round(time.Second))
	b.WriteString("| scenario | result | stall | longest single I/O | longest gap | kernel stack's stall, same fault | I/O / verify errors | IOPS | other figures |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|---|\n")
	var reasons []string
	for _, s := range r.Scenarios {
		res := "ok"
		if !s.OK {
			res = "**FAIL**"
			reasons = append(reasons, fmt.Sprintf("- `%s`: %s", s.Name, clip(s.Reason, maxReasonLen)))
		}
		row := reportRow(s.Figures)
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s | %s | %s | %s | %s |\n", s.Name, res, row.stall, row.maxIO, row.gap, row.kernel, row.errors, row.iops, row.other)
	}
	b.WriteString("\nstall: the longest an application waited (the longest of the longest gap between two completions, the longest\n" +
		"single I/O and the oldest I/O still in flight at the end), under the same verified load on both stacks.\n")
	if len(reasons) > 0 {
		b.WriteString("\nFailed:\n\n")
		b.WriteString(strings.Join(reasons, "\n"))
		b.WriteString("\n")
	}
	return b.String()
}

// waits are a failover scenario's wait figures: stall_ms (labkit's
// IOStats.Stall: the longest of the longest gap between completions, the
// longest single I/O and the oldest I/O in flight at the end), max_io_ms,
// max_gap_ms, and the kernel baseline's stall as the scenario copied it.
type waits struct {
	stall, maxIO, gap, kernelStall             float64
	hasStall, hasMaxIO, hasGap, hasKernelStall bool
	used                                       []string
}

// waitFigures reads the wait figures. Results written before stall_ms meant
// the Stall (it was the longest gap, and max_gap_ms did not exist) are read
// the new way: the gap is stall_ms, the stall the longer of it and max_io_ms.
func waitFigures(figs map[string]float64) waits {
	var w waits
	get := func(name string) (float64, bool) {
		v, ok := figs[name]
		if ok {
			w.used = append(w.used, name)
		}
		return v, ok
	}
	w.stall, w.hasStall = get("stall_ms")
	w.maxIO, w.hasMaxIO = get("max_io_ms")
	w.gap, w.hasGap = get("max_gap_ms")
	w.kernelStall, w.hasKernelStall = get("kernel_stall_ms")
	if !w.hasGap && w.hasStall && w.hasMaxIO { // the old definition
		w.gap, w.hasGap = w.stall, true
		w.stall = max(w.stall, w.maxIO)
		if kio, ok := figs["kernel_max_io_ms"]; ok && w.hasKernelStall {
			w.kernelStall = max(w.kernelStall, kio)
		}
	}
	return w
}

// shorter says how many times ours is below the kernel's stall, "" when
// either is missing.
func (w waits) shorter() string {
	if !w.hasStall || !w.hasKernelStall || w.stall <= 0 || w.kernelStall <= 0 {
		return ""
	}
	return fmt.Sprintf(" (%s× shorter)", thousands(w.kernelStall/w.stall))
}

// tableRow is one scenario's cells.
type tableRow struct {
	stall, maxIO, gap, kernel, errors, iops, other string
}

// reportRow sorts a scenario's figures into the table's cells.
func reportRow(figs map[string]float64) tableRow {
	used := map[string]bool{}
	get := func(name string) (float64, bool) {
		v, ok := figs[name]
		if ok {
			used[name] = true
		}
		return v, ok
	}
	var row tableRow
	w := waitFigures(figs)
	for _, n := range w.used {
		used[n] = true
	}
	if w.hasStall {
		row.stall = thousands(w.stall) + " ms" + w.shorter()
	}
	if w.hasMaxIO {
		row.maxIO = thousands(w.maxIO) + " ms"
	}
	if w.hasGap {
		row.gap = thousands(w.gap) + " ms"
	}
	if w.hasKernelStall {
		row.kernel = thousands(w.kernelStall) + " ms"
		// The kernel's other figures are in its own row; the ratios are
		// the same figures divided.
		for _, n := range []string{"kernel_max_io_ms", "kernel_max_gap_ms", "ratio", "max_io_ratio"} {
			get(n)
		}
	}
	var errCell string
	for _, n := range []string{"errors", "io_errors"} {
		if v, ok := get(n); ok && errCell == "" {
			errCell = formatFigure(v)
		}
	}
	if v, ok := get("verify_errors"); ok {
		errCell = cellStr(errCell) + " / " + formatFigure(v)
	}
	row.errors = errCell
	var iops []string
	for _, n := range slices.Sorted(maps.Keys(figs)) {
		if n != "iops" && !strings.HasSuffix(n, "_iops") {
			continue
		}
		v, _ := get(n)
		if label := strings.TrimSuffix(n, "_iops"); n != "iops" {
			iops = append(iops, label+" "+thousands(v))
		} else {
			iops = append([]string{thousands(v)}, iops...)
		}
	}
	row.iops = strings.Join(iops, ", ")
	var other []string
	for _, n := range slices.Sorted(maps.Keys(figs)) {
		if !used[n] {
			other = append(other, n+"="+formatFigure(figs[n]))
		}
	}
	row.other = strings.Join(other, " ")
	return row
}

func cellStr(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// clip shortens s to n bytes at most, on a rune boundary, and keeps it on
// one line.
func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + " …"
}
