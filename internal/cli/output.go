package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/srp-mpathd/srp-mpathd/internal/daemon"
)

// requestTimeout bounds one control API call.
const requestTimeout = 10 * time.Second

// clientOpts are the flags of every command that talks to the daemon.
type clientOpts struct {
	socket string
	asJSON bool
}

// addClientFlags adds --socket (and --json for read commands).
func (o *clientOpts) addFlags(cmd *cobra.Command, read bool) {
	cmd.Flags().StringVar(&o.socket, "socket", daemon.DefaultSocketPath, "the daemon's control socket")
	if read {
		cmd.Flags().BoolVar(&o.asJSON, "json", false, "print as JSON")
	}
}

func (o *clientOpts) client() *daemon.Client { return daemon.NewClient(o.socket) }

// apiContext is the context of one control API call.
func apiContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	return context.WithTimeout(ctx, requestTimeout)
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes aligned columns.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

func (t *table) row(cols ...string) { fmt.Fprintln(t.tw, strings.Join(cols, "\t")) }
func (t *table) flush() error       { return t.tw.Flush() }

// humanBytes prints a size in binary units.
func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// humanSeconds prints a duration in seconds compactly.
func humanSeconds(s float64) string {
	return (time.Duration(s * float64(time.Second))).Round(100 * time.Millisecond).String()
}
