package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

func newTargetsCmd() *cobra.Command {
	var o clientOpts
	cmd := &cobra.Command{
		Use:   "targets",
		Short: "List the SRP targets, their ports and logical units",
		Long: `List the SRP targets the daemon logs in to, their ports, paths and logical units.
SOURCE says where the daemon learnt each target: discovered (fabric discovery),
static (the config's targets) or built-in (the simulated topology).

Subcommands: "targets discovered" lists what fabric discovery found (like
ibsrpdm -c, with the target port each became); "targets rescan" asks for a
full rescan of every port.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := apiContext(cmd)
			defer cancel()
			ts, err := o.client().Targets(ctx)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if o.asJSON {
				return printJSON(w, ts)
			}
			t := newTable(w, "TARGET", "SOURCE", "PORT ID", "ADDRESS", "PATHS", "STATES", "LUS")
			for _, tg := range ts {
				var lus []string
				for _, lu := range tg.LUs {
					lus = append(lus, lu.Device+"="+lu.WWID)
				}
				for i, p := range tg.Ports {
					name, src, pid, lu := tg.Name, tg.Source, tg.PortID, strings.Join(lus, ",")
					if i > 0 {
						name, src, pid, lu = "", "", "", ""
					}
					t.row(name, src, pid, p.Address, strings.Join(p.Paths, ","), strings.Join(p.States, ","), lu)
				}
			}
			return t.flush()
		},
	}
	o.addFlags(cmd, true)
	cmd.AddCommand(newTargetsDiscoveredCmd(), newTargetsRescanCmd())
	return cmd
}

func newTargetsDiscoveredCmd() *cobra.Command {
	var o clientOpts
	cmd := &cobra.Command{
		Use:   "discovered",
		Short: "List what fabric discovery found, and the target port each became",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := apiContext(cmd)
			defer cancel()
			v, err := o.client().Discovery(ctx)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if o.asJSON {
				return printJSON(w, v)
			}
			if !v.Active {
				_, err := fmt.Fprintf(w, "fabric discovery is not running (discovery.enabled: %s)\n", v.Mode)
				return err
			}
			if _, err := fmt.Fprintf(w, "ports %s, rescan every %s: %d scans (%d failed), traps 64: %d, 65: %d\n",
				strings.Join(v.Ports, ","), v.RescanInterval, v.Scans, v.ScanErrors, v.Trap64, v.Trap65); err != nil {
				return err
			}
			t := newTable(w, "LOCAL PORT", "PKEY", "TARGET PORT", "TARGET")
			for _, tg := range v.Targets {
				tp := tg.TargetPort
				if tp == "" {
					tp = "-"
				}
				t.row(tg.LocalPort, tg.PKey, tp, tg.Target)
			}
			return t.flush()
		},
	}
	o.addFlags(cmd, true)
	return cmd
}

func newTargetsRescanCmd() *cobra.Command {
	var o clientOpts
	cmd := &cobra.Command{
		Use:   "rescan",
		Short: "Ask fabric discovery for a full rescan of every port now",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := apiContext(cmd)
			defer cancel()
			r, err := o.client().Rescan(ctx)
			if err != nil {
				return err
			}
			if o.asJSON {
				return printJSON(cmd.OutOrStdout(), r)
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), "rescan requested")
			return err
		},
	}
	o.addFlags(cmd, true)
	return cmd
}
