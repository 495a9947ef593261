package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/srp-mpathd/srp-mpathd/internal/config"
	"github.com/srp-mpathd/srp-mpathd/internal/srp/discovery"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs/rdma"
)

// discoverOpts are the flags of `discover`.
type discoverOpts struct {
	ports      []string
	pkeys      []string
	configFile string
	rulesFile  string
	asJSON     bool
}

func newDiscoverCmd() *cobra.Command {
	var o discoverOpts
	cmd := &cobra.Command{
		Use:   "discover",
		Short: "Scan the fabric for SRP targets (like ibsrpdm -c) without logging in",
		Long: `Scan every InfiniBand port (or the --port ones) through every P_Key it shares
with a DM-capable port (or the --pkey ones) and print the SRP targets found,
one per line in ib_srp's add_target form. RoCE has no subnet administrator:
its targets come from the configuration's static targets (--config).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts, err := o.options(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			fab, err := rdma.Open(opts.Logger)
			if err != nil {
				return fmt.Errorf("open the RDMA fabric: %w", err)
			}
			return runDiscover(cmd, fab, opts, o.asJSON)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.ports, "port", nil, "scan only this local port, DEV:PORT (repeatable)")
	f.StringArrayVar(&o.pkeys, "pkey", nil, "scan only this P_Key, 0xNNNN (repeatable)")
	f.StringVar(&o.configFile, "config", "", "add the static targets of this configuration file")
	f.StringVar(&o.rulesFile, "rules", "", "allow/deny rules file in srp_daemon.conf syntax")
	f.BoolVar(&o.asJSON, "json", false, "print as JSON")
	return cmd
}

// options turns the flags into discovery options; every bad value is a
// usage error naming the flag.
func (o *discoverOpts) options(logw io.Writer) (discovery.Options, error) {
	opts := discovery.Options{Logger: slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	for _, p := range o.ports {
		ref, err := discovery.ParsePortRef(p)
		if err != nil {
			return opts, &UsageError{Err: fmt.Errorf("--port: %w", err)}
		}
		opts.Ports = append(opts.Ports, ref)
	}
	for _, s := range o.pkeys {
		v, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(s), "0x"), 16, 16)
		if err != nil || v == 0 {
			return opts, &UsageError{Err: fmt.Errorf("--pkey %q: want a P_Key 0x0001..0xffff", s)}
		}
		opts.PKeys = append(opts.PKeys, uint16(v))
	}
	if o.rulesFile != "" {
		f, err := os.Open(o.rulesFile)
		if err != nil {
			return opts, fmt.Errorf("--rules: %w", err)
		}
		defer f.Close()
		if opts.Rules, err = discovery.ParseRules(f); err != nil {
			return opts, &UsageError{Err: fmt.Errorf("--rules %s: %w", o.rulesFile, err)}
		}
	}
	if o.configFile != "" {
		c, err := config.Load(o.configFile)
		var cerr *config.Error
		switch {
		case errors.As(err, &cerr):
			return opts, &UsageError{Err: err}
		case err != nil:
			return opts, err
		}
		opts.Static = staticTargets(c.Targets)
	}
	return opts, nil
}

// staticTargets converts the configuration's targets into discovery's form.
func staticTargets(ts []config.Target) []discovery.Target {
	out := make([]discovery.Target, 0, len(ts))
	for _, t := range ts {
		out = append(out, discovery.Target{
			IDExt:     uint64(t.IDExt),
			IOCGUID:   uint64(t.IOCGUID),
			ServiceID: uint64(t.ServiceID),
			Dest:      netip.AddrPortFrom(t.Address, t.Port),
			PKey:      uint16(t.PKey),
			Static:    true,
		})
	}
	return out
}

func runDiscover(cmd *cobra.Command, fab verbs.Fabric, opts discovery.Options, asJSON bool) error {
	ts, err := discovery.Discover(cmd.Context(), fab, opts)
	if err != nil && len(ts) == 0 {
		return fmt.Errorf("discover: %w", err)
	}
	w := cmd.OutOrStdout()
	if asJSON {
		if ts == nil {
			ts = []discovery.Target{}
		}
		if perr := printJSON(w, ts); perr != nil {
			return perr
		}
	} else {
		for _, t := range ts {
			if _, perr := fmt.Fprintln(w, t.String()); perr != nil {
				return perr
			}
		}
	}
	// Partial results were printed; the failures still decide the exit code.
	if err != nil {
		return fmt.Errorf("discover: some ports failed: %w", err)
	}
	return nil
}
