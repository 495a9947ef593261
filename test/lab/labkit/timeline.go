package labkit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The latency timeline: every I/O an [IORun] ends goes into one sample of a
// slice allocated when the load starts (no allocation per I/O); once it is
// full, further I/Os are only counted as dropped. A scenario saves the
// timeline with [SaveTimeline] as a CSV file under $LAB_OUT/timelines/, and
// the runner plots it on the host against the kernel's.

// TimelineDir is the subdirectory of $LAB_OUT that holds the saved
// timelines.
const TimelineDir = "timelines"

// DaemonLogDir is the subdirectory of $LAB_OUT that keeps the log of every
// daemon a scenario ran (daemonlab); labrun clears it with the rest.
const DaemonLogDir = "daemonlab"

// DefaultTimelineCap is the number of samples an [IORun] keeps by default:
// 16 bytes each, 8 MiB in all, which holds 29 minutes of the lab's load
// under TCG (about 300 IOPS) and 50 s at 10 000 IOPS.
const DefaultTimelineCap = 1 << 19

// Marker names the scenarios use; the plot puts time zero at [MarkFault].
const (
	MarkFault   = "fault"
	MarkRestore = "restore"
)

// maxSampleLatency is the longest latency a sample holds (its field is
// uint32 microseconds, 71 minutes); longer ones saturate.
const maxSampleLatency = time.Duration(math.MaxUint32) * time.Microsecond

// IOFlags says what kind of I/O a sample is.
type IOFlags uint8

const (
	// IOWrite marks a write; a sample without it is a read.
	IOWrite IOFlags = 1 << iota
	// IOFailed marks an I/O that ended with an error.
	IOFailed
)

func (f IOFlags) String() string {
	op := "read"
	if f&IOWrite != 0 {
		op = "write"
	}
	if f&IOFailed != 0 {
		op += " failed"
	}
	return op
}

// IOSample is one ended I/O: when it ended, counted from the load's start,
// and how long it took. 16 bytes, so the default capacity stays at 8 MiB.
type IOSample struct {
	At        time.Duration // completion, since the load's Start
	LatencyUS uint32        // microseconds, saturated at maxSampleLatency
	Flags     IOFlags
}

// Latency is the sample's I/O time.
func (s IOSample) Latency() time.Duration { return time.Duration(s.LatencyUS) * time.Microsecond }

// Marker is a named moment of a load: a fault injected, a path restored.
type Marker struct {
	Name string
	At   time.Time
}

// IOTimeline is the per-I/O record of a load.
type IOTimeline struct {
	Start   time.Time
	Samples []IOSample // in completion order
	Markers []Marker   // in the order they were added
	// Dropped counts the I/Os that ended after Samples was full.
	Dropped int64
}

// timelineBuf is the fixed-capacity store an IORun writes samples into. It
// is guarded by the IORun's mutex; a snapshot shares the written prefix,
// which is never written again.
type timelineBuf struct {
	samples []IOSample // len 0, cap fixed at start
	dropped int64
	markers []Marker
}

func newTimelineBuf(capacity int) timelineBuf {
	return timelineBuf{samples: make([]IOSample, 0, max(capacity, 0))}
}

// add records an I/O that ended at at (since Start) after lat.
func (b *timelineBuf) add(at, lat time.Duration, flags IOFlags) {
	if len(b.samples) == cap(b.samples) {
		b.dropped++
		return
	}
	lat = min(max(lat, 0), maxSampleLatency)
	b.samples = append(b.samples, IOSample{At: at, LatencyUS: uint32(lat / time.Microsecond), Flags: flags})
}

// snapshot returns the timeline so far. The sample slice is capped at its
// length so no append through it can reach the buffer's free part.
func (b *timelineBuf) snapshot(start time.Time) IOTimeline {
	n := len(b.samples)
	return IOTimeline{Start: start, Samples: b.samples[:n:n], Markers: slices.Clone(b.markers), Dropped: b.dropped}
}

// Mark adds a named marker at the current time to the load's timeline, e.g.
// load.Mark(labkit.MarkFault) just before a fault is injected.
func (r *IORun) Mark(name string) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.timeline.markers = append(r.timeline.markers, Marker{Name: name, At: now})
}

// TimelineFile is a saved timeline, as [ReadTimeline] returns it.
type TimelineFile struct {
	Name     string // the timeline's name (the scenario's, by default)
	Start    time.Time
	Duration time.Duration // the load's Start to End
	Dropped  int64
	// The load's summary figures ([IOStats]), for titles and tables.
	MaxGap, MaxLatency, OldestInFlight time.Duration
	Errors, VerifyErrors               int64
	Samples                            []IOSample
	Markers                            []FileMarker
}

// FileMarker is a marker of a saved timeline, relative to its Start.
type FileMarker struct {
	Name string
	At   time.Duration
}

// Stall is the longest wait the load saw, as [IOStats.Stall].
func (f *TimelineFile) Stall() time.Duration { return max(f.MaxGap, f.MaxLatency, f.OldestInFlight) }

// Marker returns the offset of the first marker named name.
func (f *TimelineFile) Marker(name string) (time.Duration, bool) {
	for _, m := range f.Markers {
		if m.Name == name {
			return m.At, true
		}
	}
	return 0, false
}

// Zero is the moment a plot counts time from: the [MarkFault] marker, else
// the first marker, else the load's start (0).
func (f *TimelineFile) Zero() time.Duration {
	if at, ok := f.Marker(MarkFault); ok {
		return at
	}
	if len(f.Markers) > 0 {
		return f.Markers[0].At
	}
	return 0
}

// The file format: '#' lines of "key value" metadata, then one CSV line per
// sample "at_us,latency_us,op" where op is r or w, followed by ! when the
// I/O failed. Integers in microseconds keep it exact and compact (about 20
// bytes a sample).
const (
	timelineMagic  = "labkit-timeline 1"
	timelineHeader = "at_us,latency_us,op"
)

// SaveTimeline writes st's timeline as $LAB_OUT/timelines/<name>.csv, with
// extra markers (e.g. the fault's time, when the load was not marked) and
// notes the file in sc. name "" is sc's scenario name; otherwise it is
// appended to it after a '.' (kernel-dreq.restart), so every file belongs to
// a scenario. A failure to write fails the test, as a fragment's does.
func SaveTimeline(sc *Scenario, name string, st IOStats, extra ...Marker) {
	sc.t.Helper()
	full := sc.frag.Name
	if name != "" {
		full += "." + name
	}
	path := filepath.Join(filepath.Dir(filepath.Dir(sc.path)), TimelineDir, full+".csv")
	if err := WriteTimeline(path, full, st, extra...); err != nil {
		sc.t.Error(err)
		return
	}
	sc.Notef("timeline %s: %d I/Os, %d markers, %d dropped", filepath.Join(TimelineDir, full+".csv"),
		len(st.Timeline.Samples), len(st.Timeline.Markers)+len(extra), st.Timeline.Dropped)
}

// WriteTimeline stores st's timeline at path atomically, named name.
func WriteTimeline(path, name string, st IOStats, extra ...Marker) error {
	if !ValidName(name) {
		return &OpError{Op: "write timeline", Path: path, Err: fmt.Errorf("timeline name %q: want %s", name, nameRE)}
	}
	var b bytes.Buffer
	if err := EncodeTimeline(&b, name, st, extra...); err != nil {
		return &OpError{Op: "write timeline", Path: path, Err: err}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return &OpError{Op: "write timeline", Path: path, Err: err}
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
		return &OpError{Op: "write timeline", Path: path, Err: err}
	}
	if err := os.Rename(tmp, path); err != nil {
		return &OpError{Op: "write timeline", Path: path, Err: err}
	}
	return nil
}

// EncodeTimeline writes st's timeline in the file format. Markers (the
// load's and extra) are sorted by time.
func EncodeTimeline(w io.Writer, name string, st IOStats, extra ...Marker) error {
	tl := st.Timeline
	start := tl.Start
	if start.IsZero() {
		start = st.Start
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "# %s\n# name %s\n# start %s\n# duration_us %d\n# dropped %d\n",
		timelineMagic, name, start.UTC().Format(time.RFC3339Nano), us(st.End.Sub(start)), tl.Dropped)
	fmt.Fprintf(bw, "# max_gap_us %d\n# max_latency_us %d\n# oldest_in_flight_us %d\n# errors %d\n# verify_errors %d\n",
		us(st.MaxGap), us(st.MaxLatency), us(st.OldestInFlight), st.Errors, st.VerifyErrors)
	marks := append(slices.Clone(tl.Markers), extra...)
	slices.SortStableFunc(marks, func(a, b Marker) int { return a.At.Compare(b.At) })
	for _, m := range marks {
		if m.Name == "" || strings.ContainsAny(m.Name, "\n\r") {
			return fmt.Errorf("marker name %q", m.Name)
		}
		fmt.Fprintf(bw, "# mark %d %s\n", us(m.At.Sub(start)), m.Name)
	}
	bw.WriteString(timelineHeader + "\n")
	var line []byte
	for _, s := range tl.Samples {
		line = strconv.AppendInt(line[:0], us(s.At), 10)
		line = append(line, ',')
		line = strconv.AppendUint(line, uint64(s.LatencyUS), 10)
		line = append(line, ',')
		line = append(line, opCode(s.Flags)...)
		line = append(line, '\n')
		bw.Write(line)
	}
	return bw.Flush()
}

func us(d time.Duration) int64 { return int64(d / time.Microsecond) }

func opCode(f IOFlags) string {
	op := "r"
	if f&IOWrite != 0 {
		op = "w"
	}
	if f&IOFailed != 0 {
		op += "!"
	}
	return op
}

// ReadTimeline decodes the timeline file at path.
func ReadTimeline(path string) (*TimelineFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &OpError{Op: "read timeline", Path: path, Err: err}
	}
	defer f.Close()
	tf, err := DecodeTimeline(f)
	if err != nil {
		return nil, &OpError{Op: "read timeline", Path: path, Err: err}
	}
	return tf, nil
}

// DecodeTimeline reads a timeline in the file format.
func DecodeTimeline(r io.Reader) (*TimelineFile, error) {
	sc := bufio.NewScanner(r)
	tf := &TimelineFile{}
	lineNo := 0
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: line %d: %s", ErrBadTimeline, lineNo, fmt.Sprintf(format, args...))
	}
	header := false
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		if lineNo == 1 {
			if line != "# "+timelineMagic {
				return nil, bad("not a timeline (want %q)", "# "+timelineMagic)
			}
			continue
		}
		if meta, ok := strings.CutPrefix(line, "# "); ok && !header {
			key, val, _ := strings.Cut(meta, " ")
			if err := tf.setMeta(key, val); err != nil {
				return nil, bad("%s: %v", key, err)
			}
			continue
		}
		if !header {
			if line != timelineHeader {
				return nil, bad("header %q, want %q", line, timelineHeader)
			}
			header = true
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			return nil, bad("%v", err)
		}
		tf.Samples = append(tf.Samples, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadTimeline, err)
	}
	if !header {
		return nil, fmt.Errorf("%w: no sample header", ErrBadTimeline)
	}
	if !ValidName(tf.Name) {
		return nil, fmt.Errorf("%w: name %q", ErrBadTimeline, tf.Name)
	}
	return tf, nil
}

func (tf *TimelineFile) setMeta(key, val string) error {
	var err error
	usVal := func(d *time.Duration) {
		var n int64
		n, err = strconv.ParseInt(val, 10, 64)
		*d = time.Duration(n) * time.Microsecond
	}
	count := func(n *int64) { *n, err = strconv.ParseInt(val, 10, 64) }
	switch key {
	case "name":
		tf.Name = val
	case "start":
		tf.Start, err = time.Parse(time.RFC3339Nano, val)
	case "duration_us":
		usVal(&tf.Duration)
	case "dropped":
		count(&tf.Dropped)
	case "max_gap_us":
		usVal(&tf.MaxGap)
	case "max_latency_us":
		usVal(&tf.MaxLatency)
	case "oldest_in_flight_us":
		usVal(&tf.OldestInFlight)
	case "errors":
		count(&tf.Errors)
	case "verify_errors":
		count(&tf.VerifyErrors)
	case "mark":
		at, name, ok := strings.Cut(val, " ")
		if !ok || name == "" {
			return errors.New("want \"mark <at_us> <name>\"")
		}
		var m FileMarker
		val = at
		usVal(&m.At)
		m.Name = name
		tf.Markers = append(tf.Markers, m)
	default:
		// Unknown keys are later additions; older readers skip them.
	}
	return err
}

func parseSample(line string) (IOSample, error) {
	at, rest, ok1 := strings.Cut(line, ",")
	lat, op, ok2 := strings.Cut(rest, ",")
	if !ok1 || !ok2 {
		return IOSample{}, fmt.Errorf("sample %q: want at_us,latency_us,op", line)
	}
	a, err := strconv.ParseInt(at, 10, 64)
	if err != nil {
		return IOSample{}, err
	}
	l, err := strconv.ParseUint(lat, 10, 32)
	if err != nil {
		return IOSample{}, err
	}
	s := IOSample{At: time.Duration(a) * time.Microsecond, LatencyUS: uint32(l)}
	failed := strings.HasSuffix(op, "!")
	switch strings.TrimSuffix(op, "!") {
	case "r":
	case "w":
		s.Flags |= IOWrite
	default:
		return IOSample{}, fmt.Errorf("sample %q: op %q", line, op)
	}
	if failed {
		s.Flags |= IOFailed
	}
	return s, nil
}
