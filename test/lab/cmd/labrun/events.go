package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Outcome is how a top-level test ended, as go test -json reports it.
type Outcome int

const (
	// OutcomeNone: the test never started, or started and never ended (the
	// VM died or timed out under it).
	OutcomeNone Outcome = iota
	OutcomePass
	OutcomeFail
	OutcomeSkip
	// OutcomeRunning: the test started and has not ended yet. After the
	// whole stream it means the same as OutcomeNone, with a known start.
	OutcomeRunning
	// OutcomeAbsent: the suite table names a test the package does not
	// have (yet): the runner found it missing from -test.list.
	OutcomeAbsent
)

func (o Outcome) String() string {
	switch o {
	case OutcomeNone:
		return "not run"
	case OutcomePass:
		return "pass"
	case OutcomeFail:
		return "fail"
	case OutcomeSkip:
		return "skip"
	case OutcomeRunning:
		return "did not finish"
	case OutcomeAbsent:
		return "absent"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// testEvent is one line of go test -json (cmd/test2json).
type testEvent struct {
	Action  string  `json:"Action"`
	Test    string  `json:"Test"`
	Elapsed float64 `json:"Elapsed"` // seconds
	Output  string  `json:"Output"`
}

// TestRecord is what the runner keeps of one top-level test: its outcome,
// its run time and everything it (and its subtests) printed.
type TestRecord struct {
	Outcome Outcome
	Elapsed float64 // seconds, 0 unless it ended
	Output  strings.Builder
}

// TestStream is the decoded event stream of one test binary run.
type TestStream struct {
	Tests map[string]*TestRecord // by top-level test name
	// Package collects the output that belongs to no test (the binary's own
	// panics, "FAIL", a -test.timeout dump's header).
	Package strings.Builder
}

// ParseTestEvents decodes go test -json output. Lines that are not JSON
// events (there should be none) are kept as package output.
func ParseTestEvents(r io.Reader) (*TestStream, error) {
	ts := &TestStream{Tests: map[string]*TestRecord{}}
	sc := bufio.NewScanner(r)
	const maxEventLine = 4 << 20 // a test may print long lines (fio reports)
	sc.Buffer(make([]byte, 64<<10), maxEventLine)
	for sc.Scan() {
		line := sc.Bytes()
		var ev testEvent
		if err := json.Unmarshal(line, &ev); err != nil || ev.Action == "" {
			ts.Package.Write(line)
			ts.Package.WriteByte('\n')
			continue
		}
		top, _, isSub := strings.Cut(ev.Test, "/")
		if top == "" {
			if ev.Action == "output" {
				ts.Package.WriteString(ev.Output)
			}
			continue
		}
		rec := ts.Tests[top]
		if rec == nil {
			rec = &TestRecord{}
			ts.Tests[top] = rec
		}
		switch ev.Action {
		case "output":
			rec.Output.WriteString(ev.Output)
		case "run":
			if !isSub {
				rec.Outcome = OutcomeRunning
			}
		case "pass", "fail", "skip":
			if isSub {
				continue
			}
			rec.Outcome = map[string]Outcome{"pass": OutcomePass, "fail": OutcomeFail, "skip": OutcomeSkip}[ev.Action]
			rec.Elapsed = ev.Elapsed
		}
	}
	if err := sc.Err(); err != nil {
		return ts, fmt.Errorf("reading test events: %w", err)
	}
	return ts, nil
}
