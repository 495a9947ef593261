package labkit

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func TestTimelineBufCapsAndDrops(t *testing.T) {
	b := newTimelineBuf(3)
	b.add(1*time.Millisecond, 500*time.Microsecond, 0)
	snap := b.snapshot(time.Unix(0, 0))
	b.add(2*time.Millisecond, -time.Second, IOWrite)           // a clock step: clamped to 0
	b.add(3*time.Millisecond, 100*time.Hour, IOWrite|IOFailed) // saturates
	b.add(4*time.Millisecond, time.Millisecond, 0)             // full: dropped
	b.add(5*time.Millisecond, time.Millisecond, 0)
	got := b.snapshot(time.Unix(0, 0))
	want := []IOSample{
		{At: time.Millisecond, LatencyUS: 500},
		{At: 2 * time.Millisecond, LatencyUS: 0, Flags: IOWrite},
		{At: 3 * time.Millisecond, LatencyUS: ^uint32(0), Flags: IOWrite | IOFailed},
	}
	if diff := cmp.Diff(want, got.Samples); diff != "" || got.Dropped != 2 {
		t.Errorf("samples (-want +got):\n%s\ndropped %d, want 2", diff, got.Dropped)
	}
	// An earlier snapshot still sees its own prefix only, and appending to
	// a snapshot never writes into the buffer.
	if len(snap.Samples) != 1 || cap(snap.Samples) != 1 {
		t.Errorf("early snapshot: len %d cap %d, want 1 1", len(snap.Samples), cap(snap.Samples))
	}
	if none := newTimelineBuf(-1); func() bool { none.add(0, 0, 0); return none.dropped != 1 }() {
		t.Errorf("a zero-capacity timeline must count every I/O as dropped")
	}
}

// TestTimelineAddDoesNotAllocate: the timeline is filled on the load's I/O
// path, which must not allocate per I/O.
func TestTimelineAddDoesNotAllocate(t *testing.T) {
	b := newTimelineBuf(1 << 12)
	var at time.Duration
	allocs := testing.AllocsPerRun(1000, func() {
		at += time.Millisecond
		b.add(at, time.Millisecond, IOWrite)
	})
	if allocs != 0 {
		t.Errorf("add allocates %.1f times per I/O", allocs)
	}
	// The same when full (the drop path).
	full := newTimelineBuf(0)
	if allocs := testing.AllocsPerRun(100, func() { full.add(0, 0, 0) }); allocs != 0 {
		t.Errorf("add on a full timeline allocates %.1f times", allocs)
	}
}

// goldenStats is a small load as the lab would see it: a fault at 5 s, one
// I/O caught for 1.5 s, a failed write, the path restored at 7 s.
func goldenStats() IOStats {
	start := time.Date(2026, 11, 25, 18, 0, 0, 123456789, time.UTC)
	st := IOStats{
		Start: start, End: start.Add(9 * time.Second), Reads: 3, Writes: 1, Errors: 1,
		MaxGap: 1200 * time.Millisecond, MaxLatency: 1500 * time.Millisecond,
	}
	st.Timeline = IOTimeline{
		Start: start,
		Samples: []IOSample{
			{At: 4900 * time.Millisecond, LatencyUS: 812},
			{At: 4950 * time.Millisecond, LatencyUS: 1034, Flags: IOWrite},
			{At: 6200 * time.Millisecond, LatencyUS: 1_500_000},
			{At: 6300 * time.Millisecond, LatencyUS: 20_000, Flags: IOWrite | IOFailed},
			{At: 6301 * time.Millisecond, LatencyUS: 700},
		},
		Markers: []Marker{{Name: MarkRestore, At: start.Add(7 * time.Second)}},
		Dropped: 2,
	}
	return st
}

func TestTimelineGoldenAndRoundTrip(t *testing.T) {
	st := goldenStats()
	var b bytes.Buffer
	// The fault comes as an extra marker, after the load's restore marker:
	// the file lists them in time order.
	if err := EncodeTimeline(&b, "kernel-linkdown", st, Marker{Name: MarkFault, At: st.Start.Add(5 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "timeline.csv")
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), b.String()); diff != "" {
		t.Errorf("encoding differs from %s (-want +got; go test -update rewrites it):\n%s", golden, diff)
	}

	tf, err := DecodeTimeline(bytes.NewReader(want))
	if err != nil {
		t.Fatal(err)
	}
	wantFile := &TimelineFile{
		Name: "kernel-linkdown", Start: st.Start, Duration: 9 * time.Second, Dropped: 2,
		MaxGap: st.MaxGap, MaxLatency: st.MaxLatency, Errors: 1,
		Samples: st.Timeline.Samples,
		Markers: []FileMarker{{Name: MarkFault, At: 5 * time.Second}, {Name: MarkRestore, At: 7 * time.Second}},
	}
	if diff := cmp.Diff(wantFile, tf); diff != "" {
		t.Errorf("decoded (-want +got):\n%s", diff)
	}
	if tf.Zero() != 5*time.Second || tf.Stall() != 1500*time.Millisecond {
		t.Errorf("zero %v stall %v, want 5s 1.5s", tf.Zero(), tf.Stall())
	}
}

func TestTimelineZeroFallsBack(t *testing.T) {
	tf := &TimelineFile{}
	if tf.Zero() != 0 {
		t.Errorf("no markers: zero %v", tf.Zero())
	}
	tf.Markers = []FileMarker{{Name: "warm", At: time.Second}, {Name: "linkdown", At: 3 * time.Second}}
	if tf.Zero() != time.Second {
		t.Errorf("no fault marker: zero %v, want the first marker", tf.Zero())
	}
	tf.Markers = append(tf.Markers, FileMarker{Name: MarkFault, At: 4 * time.Second})
	if tf.Zero() != 4*time.Second {
		t.Errorf("zero %v, want the fault marker", tf.Zero())
	}
}

func TestDecodeTimelineRejects(t *testing.T) {
	good := "# " + timelineMagic + "\n# name x\n" + timelineHeader + "\n1,2,r\n"
	if _, err := DecodeTimeline(strings.NewReader(good)); err != nil {
		t.Fatalf("minimal timeline: %v", err)
	}
	for name, in := range map[string]string{
		"empty":       "",
		"no magic":    "# name x\n" + timelineHeader + "\n",
		"no header":   "# " + timelineMagic + "\n# name x\n",
		"bad header":  "# " + timelineMagic + "\n# name x\nat,lat\n",
		"bad name":    "# " + timelineMagic + "\n# name ../x\n" + timelineHeader + "\n",
		"bad op":      "# " + timelineMagic + "\n# name x\n" + timelineHeader + "\n1,2,x\n",
		"short line":  "# " + timelineMagic + "\n# name x\n" + timelineHeader + "\n1,2\n",
		"bad number":  "# " + timelineMagic + "\n# name x\n" + timelineHeader + "\n1,-2,r\n",
		"bad mark":    "# " + timelineMagic + "\n# name x\n# mark 5\n" + timelineHeader + "\n",
		"bad dropped": "# " + timelineMagic + "\n# name x\n# dropped many\n" + timelineHeader + "\n",
	} {
		if _, err := DecodeTimeline(strings.NewReader(in)); !errors.Is(err, ErrBadTimeline) {
			t.Errorf("%s: err = %v, want ErrBadTimeline", name, err)
		}
	}
}

func TestSaveTimelineWritesNextToFragments(t *testing.T) {
	out := t.TempDir()
	t.Setenv(EnvOut, out)
	tb := &recTB{TB: t, name: "TestKernelDREQ"}
	sc := Begin(tb, "kernel-dreq")
	st := goldenStats()
	SaveTimeline(sc, "", st)
	SaveTimeline(sc, "restart", st, Marker{Name: MarkFault, At: st.Start})
	SaveTimeline(sc, "Bad/Name", st)
	if !tb.failed {
		t.Error("a bad timeline name must fail the test")
	}
	tb.finish()
	for file, marks := range map[string]int{"kernel-dreq.csv": 1, "kernel-dreq.restart.csv": 2} {
		tf, err := ReadTimeline(filepath.Join(out, TimelineDir, file))
		if err != nil {
			t.Fatal(err)
		}
		if tf.Name != strings.TrimSuffix(file, ".csv") || len(tf.Samples) != len(st.Timeline.Samples) || len(tf.Markers) != marks {
			t.Errorf("%s: name %q, %d samples, %d markers", file, tf.Name, len(tf.Samples), len(tf.Markers))
		}
	}
	f, err := ReadFragment(filepath.Join(out, FragmentDir, "kernel-dreq.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Notes) != 2 || !strings.Contains(f.Notes[0], "timelines/kernel-dreq.csv: 5 I/Os, 1 markers, 2 dropped") {
		t.Errorf("notes %q", f.Notes)
	}
}

// TestIOLoadTimeline: every I/O of a real load is in its timeline, in
// completion order, with the markers, and a capped timeline counts the rest.
func TestIOLoadTimeline(t *testing.T) {
	path := directFile(t, 1<<20)
	for _, capacity := range []int{0, 8} {
		run, err := StartIOLoad(IOLoad{Path: path, Depth: 4, WritePercent: 50, Verify: true, Seed: 2, TimelineCap: capacity})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		// Flowing a little: more than 8 I/Os on any file system.
		if _, err := run.WaitFlowing(ctx, time.Now(), 100*time.Millisecond, 100*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		run.Mark(MarkFault)
		if _, err := run.WaitFlowing(ctx, time.Now(), 100*time.Millisecond, 50*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		run.Mark(MarkRestore)
		st, err := run.Stop(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		tl := st.Timeline
		ended := st.Reads + st.Writes + st.Errors
		if int64(len(tl.Samples))+tl.Dropped != ended {
			t.Errorf("cap %d: %d samples + %d dropped, %d I/Os ended", capacity, len(tl.Samples), tl.Dropped, ended)
		}
		if capacity == 8 && (len(tl.Samples) != 8 || tl.Dropped == 0) {
			t.Errorf("cap 8: %d samples, %d dropped", len(tl.Samples), tl.Dropped)
		}
		if len(tl.Markers) != 2 || tl.Markers[0].Name != MarkFault || !tl.Markers[1].At.After(tl.Markers[0].At) || !tl.Start.Equal(st.Start) {
			t.Errorf("markers %+v, start %v", tl.Markers, tl.Start)
		}
		var writes int
		for i, s := range tl.Samples {
			if i > 0 && s.At < tl.Samples[i-1].At {
				t.Fatalf("sample %d at %v before sample %d at %v", i, s.At, i-1, tl.Samples[i-1].At)
			}
			if s.Latency() > st.MaxLatency || s.At > st.End.Sub(st.Start) {
				t.Fatalf("sample %d %+v outside the stats %v", i, s, st)
			}
			if s.Flags&IOWrite != 0 {
				writes++
			}
		}
		if capacity == 0 && int64(writes) != st.Writes {
			t.Errorf("%d write samples, %d writes", writes, st.Writes)
		}
	}
}

// directFile makes a file of size bytes that takes O_DIRECT, or skips.
func directFile(t *testing.T, size int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dev")
	if err := os.WriteFile(path, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	if f, err := os.OpenFile(path, os.O_RDWR|syscall.O_DIRECT, 0); err != nil {
		t.Skipf("O_DIRECT on %s: %v", filepath.Dir(path), err)
	} else {
		f.Close()
	}
	return path
}
