package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newStatusCmd() *cobra.Command {
	var o clientOpts
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the daemon's state: fabric, ublk, devices and paths",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := apiContext(cmd)
			defer cancel()
			st, err := o.client().Status(ctx)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if o.asJSON {
				return printJSON(w, st)
			}
			t := newTable(w)
			t.row("version:", st.Version)
			t.row("fabric:", st.Fabric)
			t.row("ublk:", st.Ublk)
			t.row("uptime:", humanSeconds(st.UptimeSeconds))
			t.row("store:", st.Store)
			t.row("socket:", st.Socket)
			if st.Metrics != "" {
				t.row("metrics:", "http://"+st.Metrics+"/metrics (dashboard at /)")
			}
			t.row("devices:", fmt.Sprintf("%d (%d without a usable path)", st.Devices, st.DevicesWithoutPath))
			t.row("paths:", fmt.Sprintf("%d (%d running)", st.Paths, st.PathsRunning))
			t.row("policy:", st.Policy)
			return t.flush()
		},
	}
	o.addFlags(cmd, true)
	return cmd
}
