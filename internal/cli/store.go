package cli

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/srp-mpathd/srp-mpathd/internal/daemon"
	"github.com/srp-mpathd/srp-mpathd/internal/store"
)

func newStoreCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Check or dump the identity store (WWID to device id, admin state, policies)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return &UsageError{Err: fmt.Errorf("store needs a subcommand: check or dump")}
		},
	}
	cmd.AddCommand(newStoreCheckCmd(), newStoreDumpCmd())
	return cmd
}

// storeCheckResult is `store check --json`.
type storeCheckResult struct {
	Path       string `json:"path"`
	OK         bool   `json:"ok"`
	Identities int    `json:"identities"`
	Error      string `json:"error,omitempty"`
}

func newStoreCheckCmd() *cobra.Command {
	var (
		path   string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Verify the store (bbolt pages, schema, records, device id reservations)",
		Long: `Verify the identity store read-only: bbolt's page check, the schema version,
that every record decodes and that device ids are unique. Exits 1 if the store
is damaged, foreign, newer than this build, or in use by a running daemon.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res := storeCheckResult{Path: path}
			s, err := store.Open(path, store.Options{ReadOnly: true})
			if err == nil {
				ids, lerr := s.List()
				res.Identities = len(ids)
				err = errors.Join(lerr, s.Close())
			}
			res.OK = err == nil
			if err != nil {
				res.Error = err.Error()
			}
			w := cmd.OutOrStdout()
			if asJSON {
				if perr := printJSON(w, res); perr != nil {
					return perr
				}
			} else if err == nil {
				fmt.Fprintf(w, "%s: ok (%d identities)\n", path, res.Identities)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&path, "store", daemon.DefaultStorePath, "the store file")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

func newStoreDumpCmd() *cobra.Command {
	var (
		path   string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "dump",
		Short: "Print everything in the store (damaged records listed as problems)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			s, err := store.Open(path, store.Options{ReadOnly: true, SkipCheck: true})
			if err != nil {
				return err
			}
			defer func() { err = errors.Join(err, s.Close()) }()
			w := cmd.OutOrStdout()
			if asJSON {
				return s.Dump(w)
			}
			d, err := s.Snapshot()
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "store %s, schema %d, created %s\n\n", d.Path, d.SchemaVersion, d.Created)
			t := newTable(w, "DEVICE", "WWID", "SIZE", "BLOCK", "VENDOR", "PRODUCT", "LAST SEEN")
			for _, id := range d.Identities {
				t.row(fmt.Sprintf("ublkb%d", id.DevID), id.WWID, humanBytes(id.Capacity), fmt.Sprint(id.LogicalBlockSize),
					id.Vendor, id.Product, id.LastSeen.Format("2006-01-02 15:04:05"))
			}
			if err := t.flush(); err != nil {
				return err
			}
			for _, r := range d.Reservations {
				if r.Forgotten {
					fmt.Fprintf(w, "reserved: ublkb%d for %s (forgotten)\n", r.DevID, r.WWID)
				}
			}
			for _, a := range d.PathAdmin {
				if a.Failed {
					fmt.Fprintf(w, "path %s: failed by the admin since %s: %s\n", a.PathID, a.Since.Format("2006-01-02 15:04:05"), a.Reason)
				}
			}
			for _, wwid := range slices.Sorted(maps.Keys(d.Policies)) {
				p := d.Policies[wwid]
				var kv []string
				for _, f := range [][2]string{{"grouping", p.Grouping}, {"selector", p.Selector}, {"failback", p.Failback}, {"no_path_retry", p.NoPathRetry}} {
					if f[1] != "" {
						kv = append(kv, f[0]+"="+f[1])
					}
				}
				fmt.Fprintf(w, "policy %s: %s\n", wwid, strings.Join(kv, " "))
			}
			for _, p := range d.Problems {
				fmt.Fprintf(w, "problem: %s\n", p)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "store", daemon.DefaultStorePath, "the store file")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}
