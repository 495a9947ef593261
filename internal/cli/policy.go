package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/srp-mpathd/srp-mpathd/internal/daemon"
)

// policyKeys are the settings `policy set` accepts, with dm-multipath's
// long names as aliases.
var policyKeys = map[string]func(*daemon.PolicyRequest, string){
	"grouping":             func(r *daemon.PolicyRequest, v string) { r.Grouping = v },
	"path_grouping_policy": func(r *daemon.PolicyRequest, v string) { r.Grouping = v },
	"selector":             func(r *daemon.PolicyRequest, v string) { r.Selector = v },
	"path_selector":        func(r *daemon.PolicyRequest, v string) { r.Selector = v },
	"failback":             func(r *daemon.PolicyRequest, v string) { r.Failback = v },
	"no_path_retry":        func(r *daemon.PolicyRequest, v string) { r.NoPathRetry = v },
}

const policyKeysHelp = "grouping (failover, multibus, group_by_prio), selector (service-time, round-robin, queue-length), failback (immediate, manual, seconds), no_path_retry (queue, fail, seconds)"

func newPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Show or change a device's multipath policy (persisted in the store)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return &UsageError{Err: fmt.Errorf("policy needs a subcommand: get or set")}
		},
	}
	cmd.AddCommand(newPolicyGetCmd(), newPolicySetCmd())
	return cmd
}

func printPolicy(cmd *cobra.Command, asJSON bool, p daemon.PolicyView) error {
	w := cmd.OutOrStdout()
	if asJSON {
		return printJSON(w, p)
	}
	mark := func(override string) string {
		if override != "" {
			return " (override)"
		}
		return ""
	}
	t := newTable(w)
	t.row("device:", p.Device)
	t.row("wwid:", p.WWID)
	t.row("grouping:", p.Grouping+mark(p.Override.Grouping))
	t.row("selector:", p.Selector+mark(p.Override.Selector))
	t.row("failback:", p.Failback+mark(p.Override.Failback))
	t.row("no_path_retry:", p.NoPathRetry+mark(p.Override.NoPathRetry))
	t.row("effective:", p.Effective)
	return t.flush()
}

func newPolicyGetCmd() *cobra.Command {
	var o clientOpts
	cmd := &cobra.Command{
		Use:   "get DEVICE",
		Short: "Show a device's policy and its stored overrides",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := apiContext(cmd)
			defer cancel()
			p, err := o.client().Policy(ctx, args[0])
			if err != nil {
				return err
			}
			return printPolicy(cmd, o.asJSON, p)
		},
	}
	o.addFlags(cmd, true)
	return cmd
}

func newPolicySetCmd() *cobra.Command {
	var o clientOpts
	cmd := &cobra.Command{
		Use:   "set DEVICE KEY=VALUE...",
		Short: "Override a device's policy; VALUE default removes an override",
		Long: `Override settings of a device's multipath policy. The change is validated,
stored in the identity store (it survives restarts) and applied at once without
dropping I/O; on a bad value nothing changes.

Keys: ` + policyKeysHelp + `.
The value "default" removes the override of a key.`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := daemon.PolicyRequest{Device: args[0]}
			for _, kv := range args[1:] {
				k, v, ok := strings.Cut(kv, "=")
				set, known := policyKeys[k]
				switch {
				case !ok || v == "":
					return &UsageError{Err: fmt.Errorf("policy set: %q is not KEY=VALUE", kv)}
				case !known:
					return &UsageError{Err: fmt.Errorf("policy set: unknown key %q; keys: %s", k, policyKeysHelp)}
				}
				set(&req, v)
			}
			ctx, cancel := apiContext(cmd)
			defer cancel()
			p, err := o.client().SetPolicy(ctx, req)
			if err != nil {
				return err
			}
			return printPolicy(cmd, o.asJSON, p)
		},
	}
	o.addFlags(cmd, true)
	return cmd
}
