package main

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// TestWriteReportGolden rewrites a copy of testdata/report-doc.md from
// testdata/report-results.json and compares it with report.golden.md; a
// second rewrite changes nothing.
func TestWriteReportGolden(t *testing.T) {
	res, err := ReadResults(filepath.Join("testdata", "report-results.json"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join("testdata", "report-doc.md"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "README.md")
	if err := os.WriteFile(path, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteReport(path, res); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "report.golden.md")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("report (-want +got; go test -update rewrites %s):\n%s", golden, diff)
	}
	if err := WriteReport(path, res); err != nil {
		t.Fatal(err)
	}
	again, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(got) {
		t.Errorf("a second rewrite changed the file:\n%s", cmp.Diff(string(got), string(again)))
	}
}

func TestReplaceSectionNeedsOneSection(t *testing.T) {
	for name, doc := range map[string]string{
		"none":     "text\n",
		"no end":   reportBegin + "\n",
		"reversed": reportEnd + "\n" + reportBegin + "\n",
		"twice":    reportBegin + reportEnd + reportBegin + reportEnd,
	} {
		if _, err := replaceSection([]byte(doc), "x\n"); !errors.Is(err, ErrNoReportMarkers) {
			t.Errorf("%s: err = %v, want ErrNoReportMarkers", name, err)
		}
	}
	got, err := replaceSection([]byte("a "+reportBegin+" old "+reportEnd+" b"), "new\n")
	if err != nil || string(got) != "a "+reportBegin+"\nnew\n"+reportEnd+" b" {
		t.Errorf("replaceSection = %q, %v", got, err)
	}
}

func TestReadResultsFallsBackToModTime(t *testing.T) {
	path := filepath.Join(t.TempDir(), "results.json")
	if err := os.WriteFile(path, []byte(`{"kernel":"k","wall_ms":1,"scenarios":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := ReadResults(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if r.Started != fi.ModTime().UTC().Format("2006-01-02T15:04:05Z07:00") {
		t.Errorf("started %q, want the file's mtime %v", r.Started, fi.ModTime().UTC())
	}
	if _, err := ReadResults(filepath.Join(t.TempDir(), "absent.json")); err == nil {
		t.Error("ReadResults of a missing file succeeded")
	}
}
