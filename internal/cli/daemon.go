package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/srp-mpathd/srp-mpathd/internal/daemon"
)

// daemonOpts are the daemon command's flags.
type daemonOpts struct {
	config        string
	fabric        string
	store         string
	socket        string
	socketGroup   string
	metrics       string
	runtimeDir    string
	removeDevices bool
	logLevel      string
	simWorkload   bool
	noUblk        bool
	probeTimeout  time.Duration
}

func parseLogLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, &UsageError{Err: fmt.Errorf("--log-level %q: want debug, info, warn or error", s)}
	}
	return l, nil
}

func newDaemonCmd() *cobra.Command {
	var o daemonOpts
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run the daemon (systemd: Type=notify; SIGHUP reloads policies)",
		Long: `Run the daemon in the foreground: log in to the targets over every path
(--fabric rdma: the config file's targets, one entry per path, each with the
IP address of its local RoCE port as source), probe the logical units
(REPORT LUNS, INQUIRY, VPD page 0x83, READ CAPACITY(16)), serve each logical
unit as one ublk block device /dev/ublkbN (recovered after a restart), and
serve the control API on a unix socket and metrics, a dashboard and a
read-only API on --metrics-listen.

Signals: SIGTERM/SIGINT stop gracefully (I/O is drained; devices are left for
recovery by the next daemon unless --remove-devices); SIGHUP reloads the
policies (config file and stored overrides) without dropping I/O.
Under systemd it reports READY=1 once every device is up, WATCHDOG=1 while
healthy and STOPPING=1 when it stops.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			level, err := parseLogLevel(o.logLevel)
			if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			opts := daemon.Options{
				Fabric: o.fabric, StorePath: o.store, SocketPath: o.socket, SocketGroup: o.socketGroup,
				MetricsListen: o.metrics, RuntimeDir: o.runtimeDir, RemoveDevices: o.removeDevices,
				SimWorkload: o.simWorkload, NoUblk: o.noUblk, ProbeTimeout: o.probeTimeout, Logger: log,
			}
			if err := applyConfigFile(&opts, o.config, cmd); err != nil {
				return err
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			reload := make(chan struct{}, 1)
			opts.Reload = reload
			go func() {
				for {
					select {
					case <-hup:
						select {
						case reload <- struct{}{}:
						default:
						}
					case <-ctx.Done():
						return
					}
				}
			}()
			d, err := daemon.New(opts, Version)
			if err != nil {
				if errors.Is(err, daemon.ErrBadOptions) {
					return &UsageError{Err: err}
				}
				return err
			}
			return d.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.config, "config", "", "configuration file (YAML)")
	f.StringVar(&o.fabric, "fabric", daemon.FabricRDMA, "fabric: rdma, or sim (the built-in simulated topology: 2 targets x 2 paths)")
	f.StringVar(&o.store, "store", daemon.DefaultStorePath, "identity store file")
	f.StringVar(&o.socket, "socket", daemon.DefaultSocketPath, "control socket (mode 0660)")
	f.StringVar(&o.socketGroup, "socket-group", "", "group allowed to use the control socket besides root")
	f.StringVar(&o.metrics, "metrics-listen", daemon.DefaultMetricsListen, "address of /metrics and the dashboard; - disables")
	f.StringVar(&o.runtimeDir, "runtime-dir", daemon.DefaultRuntimeDir, "runtime directory (devices/ublkbN for udev)")
	f.BoolVar(&o.removeDevices, "remove-devices", false, "remove the devices at stop instead of leaving them recoverable")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	f.BoolVar(&o.noUblk, "no-ublk", false, "with --fabric rdma: log in and run the paths, but serve no ublk block devices")
	f.DurationVar(&o.probeTimeout, "probe-timeout", daemon.DefaultProbeTimeout, "bound on one path's login and LU probe at start")
	f.BoolVar(&o.simWorkload, "sim-workload", false, "with --fabric sim: run a verified random I/O workload on every device")
	return cmd
}
