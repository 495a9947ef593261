package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/srp-mpathd/srp-mpathd/internal/daemon"
)

func newPathsCmd() *cobra.Command {
	var o clientOpts
	cmd := &cobra.Command{
		Use:   "paths [DEVICE]",
		Short: "Show devices with their path groups and paths (like multipath -ll)",
		Long: `Show every device (or DEVICE: ublkbN, /dev/ublkbN or its WWID) with its WWID,
size and policy, its path groups and, for each path, its state, time in state,
I/O in flight, latency EWMA and the reason of its last failure.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dev := ""
			if len(args) == 1 {
				dev = args[0]
			}
			ctx, cancel := apiContext(cmd)
			defer cancel()
			topo, err := o.client().Topology(ctx, dev)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if o.asJSON {
				return printJSON(w, topo)
			}
			for i, d := range topo {
				if i > 0 {
					fmt.Fprintln(w)
				}
				printTopology(w, d)
			}
			return nil
		},
	}
	o.addFlags(cmd, true)
	return cmd
}

// printTopology prints one device the way multipath -ll does.
func printTopology(w io.Writer, d daemon.TopologyView) {
	fmt.Fprintf(w, "%s (%s) %s %s\n", d.Name, d.WWID, d.Vendor, d.Product)
	fmt.Fprintf(w, "size=%s grouping=%s selector=%s failback=%s no_path_retry=%s queued=%d\n",
		humanBytes(d.SizeBytes), d.Grouping, d.Selector, d.Failback, d.NoPathRetry, d.Queued)
	for gi, g := range d.Groups {
		status := "enabled"
		if g.Active {
			status = "active"
		}
		branch, indent := "|-", "| "
		if gi == len(d.Groups)-1 {
			branch, indent = "`-", "  "
		}
		fmt.Fprintf(w, "%s+- policy='%s' prio=%d status=%s\n", branch, d.Selector, g.Priority, status)
		for pi, p := range g.Paths {
			pb := "|-"
			if pi == len(g.Paths)-1 {
				pb = "`-"
			}
			line := fmt.Sprintf("%s %s %s %s %-9s for %-8s inflight=%d ewma=%.0fus", indent, pb, p.ID, p.Target, p.State,
				humanSeconds(p.SecondsInState), p.InFlight, p.LatencyEWMAUs)
			if p.Reason != "" {
				line += " last_error=" + fmt.Sprintf("%q", p.Reason)
			}
			fmt.Fprintln(w, line)
		}
	}
}
