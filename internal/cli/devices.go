package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newDevicesCmd() *cobra.Command {
	var o clientOpts
	cmd := &cobra.Command{
		Use:   "devices",
		Short: "List the devices (one per logical unit)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := apiContext(cmd)
			defer cancel()
			devs, err := o.client().Devices(ctx)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if o.asJSON {
				return printJSON(w, devs)
			}
			t := newTable(w, "DEVICE", "WWID", "SIZE", "PATHS", "QUEUED", "FAILOVERS", "TARGET")
			for _, d := range devs {
				t.row(d.Name, d.WWID, humanBytes(d.SizeBytes), fmt.Sprintf("%d/%d", d.PathsUsable, d.Paths),
					fmt.Sprint(d.Queued), fmt.Sprint(d.Failovers), d.Target)
			}
			return t.flush()
		},
	}
	o.addFlags(cmd, true)
	return cmd
}
