package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/srp-mpathd/srp-mpathd/internal/daemon"
)

// Exit codes returned by Main. They are documented in the root command's help.
const (
	ExitOK       = 0 // success
	ExitFailure  = 1 // the operation failed (daemon error, I/O error, check failed)
	ExitUsage    = 2 // bad command line or bad input
	ExitNoDaemon = 3 // the daemon's control socket could not be reached
)

// UsageError marks an error caused by bad user input; Main exits with ExitUsage.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

const exitCodesHelp = `Exit codes:
  0  success
  1  the operation failed
  2  bad command line or bad input (including an unknown device or path,
     or a policy value the daemon refused)
  3  the daemon's control socket could not be reached`

// NewRoot builds the command tree. It is cheap and side-effect free.
func NewRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "srp-mpathd",
		Short: "SRP initiator, discovery and multipath daemon serving ublk block devices",
		Long: `srp-mpathd logs in to SRP targets over several RDMA paths, runs a state machine
per path, chooses the path for every I/O and serves each logical unit as one
persistent block device /dev/ublkbN.

` + exitCodesHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &UsageError{Err: err} })
	root.AddCommand(newVersionCmd(), newDiscoverCmd(), newDaemonCmd(), newStatusCmd(), newDevicesCmd(), newPathsCmd(),
		newPolicyCmd(), newPathCmd(), newTargetsCmd(), newConfigCmd(), newStoreCmd(), newManCmd(), newDemoCmd())
	documentExitCodes(root)
	return root
}

// documentExitCodes ends every subcommand's help with the exit codes.
func documentExitCodes(c *cobra.Command) {
	for _, sub := range c.Commands() {
		long := sub.Long
		if long == "" {
			long = sub.Short + "."
		}
		sub.Long = long + "\n\n" + exitCodesHelp
		documentExitCodes(sub)
	}
}

// Main runs the command line and returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := NewRoot()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return ExitOK
	}
	fmt.Fprintf(stderr, "srp-mpathd: %v\n", err)
	return exitCode(err)
}

func exitCode(err error) int {
	var (
		ue *UsageError
		ae *daemon.APIError
	)
	switch {
	case errors.As(err, &ue), isCobraUsage(err):
		return ExitUsage
	case errors.Is(err, daemon.ErrNoDaemon):
		return ExitNoDaemon
	case errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500:
		// The daemon refused the request's content (unknown device or
		// path, bad policy value): bad input.
		return ExitUsage
	default:
		return ExitFailure
	}
}
