package cli

import (
	"strings"

	"github.com/spf13/cobra"
)

func newTargetsCmd() *cobra.Command {
	var o clientOpts
	cmd := &cobra.Command{
		Use:   "targets",
		Short: "List the SRP targets, their ports and logical units",
		Args:  cobra.NoArgs,
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
			t := newTable(w, "TARGET", "PORT ID", "ADDRESS", "PATHS", "STATES", "LUS")
			for _, tg := range ts {
				var lus []string
				for _, lu := range tg.LUs {
					lus = append(lus, lu.Device+"="+lu.WWID)
				}
				for i, p := range tg.Ports {
					name, pid, lu := tg.Name, tg.PortID, strings.Join(lus, ",")
					if i > 0 {
						name, pid, lu = "", "", ""
					}
					t.row(name, pid, p.Address, strings.Join(p.Paths, ","), strings.Join(p.States, ","), lu)
				}
			}
			return t.flush()
		},
	}
	o.addFlags(cmd, true)
	return cmd
}
