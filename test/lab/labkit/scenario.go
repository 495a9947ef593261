package labkit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"testing"
)

// FragmentDir is the subdirectory of $LAB_OUT that holds one fragment per
// scenario.
const FragmentDir = "scenarios"

// Fragment is what one scenario reports: its figures and whether the test
// that measured them passed. It is the unit the runner merges into
// results.json.
type Fragment struct {
	Name    string             `json:"name"`
	Test    string             `json:"test"`
	OK      bool               `json:"ok"`
	Figures map[string]float64 `json:"figures"`
	Notes   []string           `json:"notes,omitempty"`
	// Final is set by the write after the test finished; a fragment without
	// it was cut short (the VM died or timed out mid-scenario).
	Final bool `json:"final"`
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]*$`)

// ValidName reports whether name may name a scenario: lower case letters,
// digits, '-' and '.', which keeps it a safe file name too.
func ValidName(name string) bool { return nameRE.MatchString(name) }

// Scenario collects the figures of one scenario measured by test t.
type Scenario struct {
	t    testing.TB
	path string

	mu   sync.Mutex
	frag Fragment
}

// Begin starts the record of scenario name, measured by t. The fragment is
// written at once (OK so far, no figures) and once more after t finished.
// Begin fails t when $LAB_OUT is unset or name is not a [ValidName].
func Begin(t testing.TB, name string) *Scenario {
	t.Helper()
	if !ValidName(name) {
		t.Fatalf("labkit: scenario name %q: want %s", name, nameRE)
	}
	dir := os.Getenv(EnvOut)
	if dir == "" {
		t.Fatal(ErrNoOutDir)
	}
	s := &Scenario{
		t:    t,
		path: filepath.Join(dir, FragmentDir, name+".json"),
		frag: Fragment{Name: name, Test: t.Name(), Figures: map[string]float64{}},
	}
	s.write(t, false)
	t.Cleanup(func() { s.write(t, true) })
	return s
}

// Record writes figures for scenario name measured by t: Begin followed by
// Figures. Calling it again for the same scenario adds to the figures.
func Record(t testing.TB, name string, figures map[string]float64) *Scenario {
	t.Helper()
	s := Begin(t, name)
	s.Figures(figures)
	return s
}

// Figure records one figure and rewrites the fragment.
func (s *Scenario) Figure(name string, value float64) {
	s.t.Helper()
	s.Figures(map[string]float64{name: value})
}

// Figures records several figures and rewrites the fragment.
func (s *Scenario) Figures(figures map[string]float64) {
	s.t.Helper()
	s.mu.Lock()
	maps.Copy(s.frag.Figures, figures)
	s.mu.Unlock()
	s.write(s.t, false)
}

// Notef logs a line with t.Logf and keeps it in the fragment's notes: for
// facts a reader of results.json needs without the full test log (a device
// number, a kernel message).
func (s *Scenario) Notef(format string, args ...any) {
	s.t.Helper()
	line := fmt.Sprintf(format, args...)
	s.t.Log(line)
	s.mu.Lock()
	s.frag.Notes = append(s.frag.Notes, line)
	s.mu.Unlock()
	s.write(s.t, false)
}

func (s *Scenario) write(t testing.TB, final bool) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frag.OK = !t.Failed()
	s.frag.Final = final
	if old, err := ReadFragment(s.path); err == nil && old.Test == s.frag.Test {
		// Another Scenario of the same test and name (Record called twice)
		// may have written figures this one has not seen: the file is the
		// union of both.
		for k, v := range old.Figures {
			if _, ok := s.frag.Figures[k]; !ok {
				s.frag.Figures[k] = v
			}
		}
		for _, n := range old.Notes {
			if !slices.Contains(s.frag.Notes, n) {
				s.frag.Notes = append(s.frag.Notes, n)
			}
		}
	}
	if err := WriteFragment(s.path, &s.frag); err != nil {
		t.Error(err)
	}
}

// WriteFragment stores f at path atomically (write, then rename), so a reader
// never sees half a file, whatever moment the VM dies at.
func WriteFragment(path string, f *Fragment) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return &OpError{Op: "encode fragment", Path: path, Err: err}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return &OpError{Op: "write fragment", Path: path, Err: err}
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return &OpError{Op: "write fragment", Path: path, Err: err}
	}
	if err := os.Rename(tmp, path); err != nil {
		return &OpError{Op: "write fragment", Path: path, Err: err}
	}
	return nil
}

// ReadFragment decodes the fragment at path.
func ReadFragment(path string) (*Fragment, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &OpError{Op: "read fragment", Path: path, Err: err}
	}
	var f Fragment
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, &OpError{Op: "read fragment", Path: path, Err: fmt.Errorf("%w: %w", ErrBadFragment, err)}
	}
	if !ValidName(f.Name) {
		return nil, &OpError{Op: "read fragment", Path: path, Err: fmt.Errorf("%w: scenario name %q", ErrBadFragment, f.Name)}
	}
	if f.Figures == nil {
		f.Figures = map[string]float64{}
	}
	return &f, nil
}

// ReadFragments decodes every fragment under outDir/scenarios, keyed by
// scenario name. A missing directory is no fragments; a bad file is an error
// (joined with the others), and the good ones are still returned.
func ReadFragments(outDir string) (map[string]*Fragment, error) {
	dir := filepath.Join(outDir, FragmentDir)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]*Fragment{}, nil
	}
	if err != nil {
		return nil, &OpError{Op: "read fragments", Path: dir, Err: err}
	}
	frags := map[string]*Fragment{}
	var errs []error
	for _, e := range ents {
		if e.IsDir() || filepath.Ext(e.Name()) != ".json" {
			continue
		}
		f, err := ReadFragment(filepath.Join(dir, e.Name()))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		frags[f.Name] = f
	}
	return frags, errors.Join(errs...)
}

// FigureNames returns the figure names of f in a stable order.
func (f *Fragment) FigureNames() []string { return slices.Sorted(maps.Keys(f.Figures)) }
