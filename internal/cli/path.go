package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/srp-mpathd/srp-mpathd/internal/daemon"
)

func newPathCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "path",
		Short: "Take a path out of service or return it (persisted in the store)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return &UsageError{Err: fmt.Errorf("path needs a subcommand: fail or reinstate")}
		},
	}
	cmd.AddCommand(newPathFailCmd(), newPathReinstateCmd())
	return cmd
}

func printPathResult(cmd *cobra.Command, asJSON bool, r daemon.PathResult) error {
	if asJSON {
		return printJSON(cmd.OutOrStdout(), r)
	}
	_, err := fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", r.Path, r.State)
	return err
}

func newPathFailCmd() *cobra.Command {
	var (
		o      clientOpts
		reason string
	)
	cmd := &cobra.Command{
		Use:   "fail PATH",
		Short: "Fail a path (its I/O moves to the other paths) until reinstated",
		Long: `Fail a path: its in-flight I/O is reissued on the other paths and it carries
no I/O until "path reinstate". The admin state is stored, so it survives a
restart. PATH is an id as "srp-mpathd paths" prints it (DEVICE:TARGET.N).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := apiContext(cmd)
			defer cancel()
			r, err := o.client().FailPath(ctx, args[0], reason)
			if err != nil {
				return err
			}
			return printPathResult(cmd, o.asJSON, r)
		},
	}
	o.addFlags(cmd, true)
	cmd.Flags().StringVar(&reason, "reason", "", "why (shown in status and logs)")
	return cmd
}

func newPathReinstateCmd() *cobra.Command {
	var o clientOpts
	cmd := &cobra.Command{
		Use:   "reinstate PATH",
		Short: "Return a failed path to service (reconnecting it if needed)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := apiContext(cmd)
			defer cancel()
			r, err := o.client().ReinstatePath(ctx, args[0])
			if err != nil {
				return err
			}
			return printPathResult(cmd, o.asJSON, r)
		},
	}
	o.addFlags(cmd, true)
	return cmd
}
