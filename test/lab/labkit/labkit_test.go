package labkit

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// recTB stands in for the testing.TB a scenario gets, so the tests can look
// at what Begin registers and at a failed or skipped state.
type recTB struct {
	testing.TB
	name     string
	failed   bool
	skipped  string
	cleanups []func()
}

func (r *recTB) Name() string                   { return r.name }
func (r *recTB) Helper()                        {}
func (r *recTB) Failed() bool                   { return r.failed }
func (r *recTB) Cleanup(f func())               { r.cleanups = append(r.cleanups, f) }
func (r *recTB) Log(args ...any)                {}
func (r *recTB) Error(args ...any)              { r.failed = true; r.TB.Log(args...) }
func (r *recTB) Errorf(format string, a ...any) { r.failed = true; r.TB.Logf(format, a...) }
func (r *recTB) Skipf(format string, a ...any)  { r.skipped = format }

// finish runs the cleanups like the testing package does: last in, first out.
func (r *recTB) finish() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

func TestRecordWritesFragmentAndFinalState(t *testing.T) {
	out := t.TempDir()
	t.Setenv(EnvOut, out)
	tb := &recTB{TB: t, name: "TestUblkFsVerify"}

	Record(tb, "ublk-fs-verify", map[string]float64{"errors": 0})
	path := filepath.Join(out, FragmentDir, "ublk-fs-verify.json")
	f, err := ReadFragment(path)
	if err != nil {
		t.Fatal(err)
	}
	if !f.OK || f.Final || f.Test != "TestUblkFsVerify" || f.Figures["errors"] != 0 || len(f.Figures) != 1 {
		t.Fatalf("fragment before the test ended = %+v, want ok, not final, errors=0", f)
	}

	// A second Record adds figures; the test then fails.
	s := Record(tb, "ublk-fs-verify", map[string]float64{"mkfs_ms": 12})
	s.Notef("device %s", "259:0")
	tb.failed = true
	tb.finish()

	f, err = ReadFragment(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.OK || !f.Final {
		t.Errorf("after a failed test: ok=%v final=%v, want ok=false final=true", f.OK, f.Final)
	}
	if f.Figures["errors"] != 0 || f.Figures["mkfs_ms"] != 12 || len(f.Figures) != 2 {
		t.Errorf("figures = %v, want errors=0 and mkfs_ms=12", f.Figures)
	}
	if len(f.Notes) != 1 || f.Notes[0] != "device 259:0" {
		t.Errorf("notes = %q", f.Notes)
	}
}

func TestReadFragmentsKeepsGoodOnesAndReportsBad(t *testing.T) {
	out := t.TempDir()
	dir := filepath.Join(out, FragmentDir)
	if err := WriteFragment(filepath.Join(dir, "lab-smoke.json"), &Fragment{Name: "lab-smoke", OK: true}); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"junk.json": "{", "badname.json": `{"name":"../x"}`} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	frags, err := ReadFragments(out)
	if !errors.Is(err, ErrBadFragment) {
		t.Errorf("err = %v, want ErrBadFragment", err)
	}
	if len(frags) != 1 || frags["lab-smoke"] == nil || !frags["lab-smoke"].OK || frags["lab-smoke"].Figures == nil {
		t.Errorf("fragments = %v, want lab-smoke only, with a non-nil figure map", frags)
	}

	none, err := ReadFragments(filepath.Join(out, "absent"))
	if err != nil || len(none) != 0 {
		t.Errorf("missing dir: %v, %v; want no fragments and no error", none, err)
	}
}

func TestValidName(t *testing.T) {
	for _, name := range []string{"", "Upper", "a/b", "../x", "-lead"} {
		if ValidName(name) {
			t.Errorf("ValidName(%q) = true", name)
		}
	}
	for _, name := range []string{"lab-smoke", "ublk-null-iops", "srp.failover-1"} {
		if !ValidName(name) {
			t.Errorf("ValidName(%q) = false", name)
		}
	}
}

func TestDecodeFio(t *testing.T) {
	for _, tc := range []struct {
		file       string
		errors     int
		wantDecode bool
	}{
		{"fio-randrw.json", 0, true},
		{"fio-with-preamble.json", 0, true},
		{"fio-verify-error.json", 1, true},
	} {
		b, err := os.ReadFile(filepath.Join("testdata", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		var res FioResult
		if err := decodeFio(b, &res); err != nil {
			t.Errorf("%s: %v", tc.file, err)
			continue
		}
		if res.Errors != tc.errors {
			t.Errorf("%s: errors = %d, want %d", tc.file, res.Errors, tc.errors)
		}
		// The golden run is a 1 s randrw: both directions moved data.
		if res.ReadIOPS < 1 || res.WriteIOPS < 1 {
			t.Errorf("%s: iops read %.0f write %.0f, want both > 0", tc.file, res.ReadIOPS, res.WriteIOPS)
		}
	}
	var res FioResult
	for _, bad := range []string{"", "fio: no report", `{"jobs": []}`, `{"jobs": [`} {
		if err := decodeFio([]byte(bad), &res); err == nil {
			t.Errorf("decodeFio(%q) succeeded", bad)
		}
	}
}

func TestBootTimeIsBeforeNow(t *testing.T) {
	d, err := BootTime()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		t.Fatal(err)
	}
	up, err := time.ParseDuration(strings.Fields(string(b))[0] + "s")
	if err != nil {
		t.Fatal(err)
	}
	// The process started after boot and before now; allow one tick of
	// rounding.
	if d < 0 || d > up+time.Second/clockTicksPerSecond {
		t.Errorf("BootTime = %v, uptime %v", d, up)
	}
}

func TestRequireVMSkipsOnHost(t *testing.T) {
	if InVM() {
		t.Skip("this test checks the behaviour outside the lab VM")
	}
	tb := &recTB{TB: t, name: t.Name()}
	RequireVM(tb)
	if !strings.Contains(tb.skipped, "not inside a lab VM") {
		t.Errorf("RequireVM outside the VM: skip reason %q", tb.skipped)
	}
}
