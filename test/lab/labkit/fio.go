package labkit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// FioResult is what the lab reads from one fio run.
type FioResult struct {
	ReadIOPS  float64
	WriteIOPS float64
	// Errors counts the I/O and verify errors fio saw over all jobs: a job's
	// total_err when fio continued past errors, else 1 for a job that
	// stopped on its first error.
	Errors int
	// Exit is fio's exit error (nil for status 0). fio exits non-zero on an
	// I/O or verify error, which Errors already counts.
	Exit error
	// Log is what fio printed besides its report (warnings, verify failures).
	Log string
}

// fioReport is the part of `fio --output-format=json` the lab reads.
type fioReport struct {
	Jobs []struct {
		Name     string `json:"jobname"`
		Error    int    `json:"error"`
		TotalErr int    `json:"total_err"`
		Read     struct {
			IOPS float64 `json:"iops"`
		} `json:"read"`
		Write struct {
			IOPS float64 `json:"iops"`
		} `json:"write"`
	} `json:"jobs"`
}

// RunFio runs fio with args plus a JSON report and decodes it. The error is
// non-nil only when fio could not be started or left no readable report; a
// run with I/O errors is a result (Errors > 0), not an error.
func RunFio(ctx context.Context, args ...string) (FioResult, error) {
	rep, err := os.CreateTemp("", "labkit-fio-*.json")
	if err != nil {
		return FioResult{}, &OpError{Op: "fio", Path: "report", Err: err}
	}
	repPath := rep.Name()
	defer os.Remove(repPath)
	if err := rep.Close(); err != nil {
		return FioResult{}, &OpError{Op: "fio", Path: repPath, Err: err}
	}
	full := append(append([]string{}, args...), "--output-format=json", "--output="+repPath)
	cmd := exec.CommandContext(ctx, "fio", full...)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	runErr := cmd.Run()
	res := FioResult{Exit: runErr, Log: log.String()}
	var ee *exec.ExitError
	if runErr != nil && !errors.As(runErr, &ee) {
		return res, &OpError{Op: "fio", Path: filepath.Base(cmd.Path), Err: runErr}
	}
	b, err := os.ReadFile(repPath)
	if err != nil {
		return res, &OpError{Op: "fio report", Path: repPath, Err: err}
	}
	if err := decodeFio(b, &res); err != nil {
		return res, &OpError{Op: "fio report", Path: repPath, Err: fmt.Errorf("%w (fio: %v)\n%s", err, runErr, res.Log)}
	}
	return res, nil
}

// decodeFio fills res from a fio JSON report. fio may print notes before the
// JSON object even in the report file, so decoding starts at the first '{'.
func decodeFio(b []byte, res *FioResult) error {
	i := bytes.IndexByte(b, '{')
	if i < 0 {
		return errors.New("no JSON object in fio report")
	}
	var r fioReport
	if err := json.Unmarshal(b[i:], &r); err != nil {
		return err
	}
	if len(r.Jobs) == 0 {
		return errors.New("fio report has no jobs")
	}
	for _, j := range r.Jobs {
		res.ReadIOPS += j.Read.IOPS
		res.WriteIOPS += j.Write.IOPS
		switch {
		case j.TotalErr > 0:
			res.Errors += j.TotalErr
		case j.Error != 0:
			res.Errors++
		}
	}
	return nil
}
