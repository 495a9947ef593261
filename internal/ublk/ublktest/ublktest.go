package ublktest

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	"github.com/srp-mpathd/srp-mpathd/internal/ublk"
	"github.com/srp-mpathd/srp-mpathd/internal/ublk/uapi"
)

// EnvServe makes a test binary that calls MaybeServe from TestMain act as
// a ublk server; its value is the server's flags, separated by spaces.
const EnvServe = "UBLKTEST_SERVE"

// ReadyPrefix starts the line the server prints on stdout once the device
// serves I/O: "UBLKTEST READY id=<id> path=<path> recovered=<bool>".
const ReadyPrefix = "UBLKTEST READY"

// Exit codes of MaybeServe.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// MaybeServe runs the server and exits the process when EnvServe is set;
// otherwise it returns at once. Call it first thing in TestMain.
func MaybeServe() {
	args, ok := os.LookupEnv(EnvServe)
	if !ok {
		return
	}
	err := Run(context.Background(), strings.Fields(args), os.Stdout, os.Stderr)
	switch {
	case err == nil:
		os.Exit(exitOK)
	case errors.Is(err, flag.ErrHelp), errors.Is(err, errUsage):
		fmt.Fprintln(os.Stderr, err)
		os.Exit(exitUsage)
	default:
		fmt.Fprintln(os.Stderr, "ublktest serve:", err)
		os.Exit(exitError)
	}
}

var errUsage = errors.New("ublktest: bad arguments")

// Options are the server's settings; Run parses them from flags.
type Options struct {
	ID       uint
	Queues   int
	Depth    int
	MaxIO    int
	LBS      int
	Size     int64
	Backend  string // "mem", "null" or "file:PATH"
	Recover  bool
	Detach   bool
	Discard  bool
	Workers  int
	Pin      bool
	LogLevel string
}

func parse(args []string, stderr io.Writer) (Options, error) {
	var o Options
	fs := flag.NewFlagSet("ublktest-serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.UintVar(&o.ID, "id", 0, "ublk device id (/dev/ublkb<id>)")
	fs.IntVar(&o.Queues, "queues", 1, "hardware queues")
	fs.IntVar(&o.Depth, "depth", 64, "tags per queue")
	fs.IntVar(&o.MaxIO, "max-io", 512<<10, "largest request in bytes")
	fs.IntVar(&o.LBS, "lbs", 512, "logical block size (512 or 4096)")
	fs.Int64Var(&o.Size, "size", 256<<20, "device size in bytes (file: 0 keeps the file's size)")
	fs.StringVar(&o.Backend, "backend", "mem", "mem | null | file:PATH")
	fs.BoolVar(&o.Recover, "recover", true, "USER_RECOVERY|REISSUE; recover an existing device with this id")
	fs.BoolVar(&o.Detach, "detach", false, "on SIGTERM leave the device quiesced for a successor instead of deleting it")
	fs.BoolVar(&o.Discard, "discard", true, "advertise DISCARD and WRITE_ZEROES")
	fs.IntVar(&o.Workers, "workers", ublk.DefaultWorkers, "backend workers per queue")
	fs.BoolVar(&o.Pin, "pin", false, "pin queue threads to their CPUs (GET_QUEUE_AFFINITY)")
	fs.StringVar(&o.LogLevel, "log", "info", "debug | info | warn | error")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("%w: unexpected %q", errUsage, fs.Args())
	}
	return o, nil
}

// Run parses args, serves the device until ctx ends or SIGTERM/SIGINT
// arrives, and prints the ready line to stdout. Logs go to stderr.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parse(args, stderr)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.LogLevel)); err != nil {
		return fmt.Errorf("%w: -log %q", errUsage, o.LogLevel)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	backend, closeBackend, err := openBackend(o)
	if err != nil {
		return err
	}
	defer closeBackend()
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return ublk.Serve(ctx, ublk.ServeSpec{
		ID: uint32(o.ID), Backend: backend, Workers: o.Workers, Queues: o.Queues, Depth: o.Depth, MaxIO: o.MaxIO,
		Discard: o.Discard, Recover: o.Recover, Detach: o.Detach, PinQueues: o.Pin, LockMemory: true, Logger: log,
		OnReady: func(d *ublk.Device) {
			fmt.Fprintf(stdout, "%s id=%d path=%s recovered=%t\n", ReadyPrefix, d.ID(), d.BlockPath(), d.Recovered())
		},
	})
}

func openBackend(o Options) (ublk.Backend, func(), error) {
	switch {
	case o.Backend == "mem":
		return ublk.NewMemory(o.Size, o.LBS), func() {}, nil
	case o.Backend == "null":
		return ublk.Null{Size: o.Size, LogicalBlockSize: o.LBS}, func() {}, nil
	case strings.HasPrefix(o.Backend, "file:"):
		f, err := ublk.OpenFile(strings.TrimPrefix(o.Backend, "file:"), o.Size, o.LBS)
		if err != nil {
			return nil, nil, err
		}
		return f, func() { _ = f.Close() }, nil
	}
	return nil, nil, fmt.Errorf("%w: -backend %q, want mem, null or file:PATH", errUsage, o.Backend)
}

// Server is a ublk server running in a child process (the re-executed
// test binary).
type Server struct {
	Cmd       *exec.Cmd
	ID        uint32
	Path      string
	Recovered bool
	stderr    *strings.Builder
}

// Start re-executes the current binary (a test binary whose TestMain calls
// MaybeServe) as a server with args and waits for its ready line. The
// child is killed when ctx ends.
func Start(ctx context.Context, args ...string) (*Server, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), EnvServe+"="+strings.Join(args, " "))
	stderr := &strings.Builder{}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &Server{Cmd: cmd, stderr: stderr}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, ReadyPrefix) {
			continue
		}
		if _, err := fmt.Sscanf(strings.TrimPrefix(line, ReadyPrefix), " id=%d path=%s recovered=%t", &s.ID, &s.Path, &s.Recovered); err != nil {
			_ = s.Kill()
			return nil, fmt.Errorf("ublktest: bad ready line %q: %w", line, err)
		}
		go func() { _, _ = io.Copy(io.Discard, out) }()
		return s, nil
	}
	werr := cmd.Wait()
	return nil, fmt.Errorf("ublktest: server exited before ready: %v; stderr:\n%s", werr, stderr.String())
}

// Kill sends SIGKILL (a crash: the device stays for recovery) and waits.
func (s *Server) Kill() error {
	_ = s.Cmd.Process.Kill()
	_ = s.Cmd.Wait()
	return nil
}

// Stop sends SIGTERM (graceful stop, or detach with -detach) and waits.
func (s *Server) Stop() error {
	if err := s.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	if err := s.Cmd.Wait(); err != nil {
		return fmt.Errorf("ublktest: server: %w; stderr:\n%s", err, s.stderr.String())
	}
	return nil
}

// Stderr returns what the server logged so far (after Stop or Kill).
func (s *Server) Stderr() string { return s.stderr.String() }

// BlockPath returns /dev/ublkb<id>.
func BlockPath(id uint32) string { return fmt.Sprintf("%s%d", uapi.BlockDevPrefix, id) }
