//go:build lab

package scenarios

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"github.com/srp-mpathd/srp-mpathd/internal/ublk"
	"github.com/srp-mpathd/srp-mpathd/test/lab/daemonlab"
)

// TestMain turns the test binary into a ublk server when LAB_UBLK_SERVE is
// set: the ublk scenarios start it as a separate process, so that they can
// kill -9 it and start it again.
//
// It runs the daemon itself when daemonlab.EnvArgs is set (the e2e
// scenarios start srp-mpathd as a child process with daemonlab.Start).
func TestMain(m *testing.M) {
	if code, ok := daemonlab.RunIfChild(); ok {
		os.Exit(code)
	}
	if spec := os.Getenv(envServe); spec != "" {
		os.Exit(serveMain(spec))
	}
	os.Exit(m.Run())
}

// serveMain serves one ublk device until SIGTERM, then stops and deletes
// it. Once the device is live it prints a serveReady line on stdout; its
// log goes to stderr.
func serveMain(specJSON string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var spec serveSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		log.Error("bad "+envServe, "err", err)
		return 2
	}
	ss := ublk.ServeSpec{
		ID: spec.DevID, Queues: spec.Queues, Depth: spec.Depth,
		LogicalBlockSize: spec.LogicalBlock, Size: spec.Size,
		Recover: spec.Recover, Logger: log,
	}
	switch spec.Backend {
	case backendMem:
		ss.Backend = ublk.NewMemory(spec.Size, spec.LogicalBlock)
	case backendFile:
		f, err := ublk.OpenFile(spec.File, spec.Size, spec.LogicalBlock)
		if err != nil {
			log.Error("backend file", "err", err)
			return 1
		}
		defer f.Close()
		ss.Backend = f
	case backendNull:
		ss.Handler = ublk.NullHandler{}
	default:
		log.Error("unknown backend", "backend", spec.Backend)
		return 2
	}
	ss.OnReady = func(d *ublk.Device) {
		line, err := json.Marshal(serveReady{DevID: d.ID(), Block: d.BlockPath(), PID: os.Getpid(), Recovered: d.Recovered()})
		if err != nil {
			panic(err) // a fixed struct of plain fields always encodes
		}
		fmt.Println(string(line))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := ublk.Serve(ctx, ss); err != nil {
		log.Error("serve", "err", err)
		return 1
	}
	return 0
}
