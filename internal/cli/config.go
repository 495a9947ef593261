package cli

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/spf13/cobra"

	"github.com/srp-mpathd/srp-mpathd/internal/config"
	"github.com/srp-mpathd/srp-mpathd/internal/daemon"
)

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Work with the configuration file",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return &UsageError{Err: fmt.Errorf("config needs a subcommand: check")}
		},
	}
	cmd.AddCommand(newConfigCheckCmd())
	return cmd
}

// configCheckResult is `config check --json`.
type configCheckResult struct {
	File     string   `json:"file"`
	OK       bool     `json:"ok"`
	Problems []string `json:"problems"`
	Targets  int      `json:"targets"`
	Devices  int      `json:"devices"`
}

func newConfigCheckCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "check [FILE]",
		Short: "Validate a configuration file and list every problem (default " + config.DefaultPath + ")",
		Long: `Parse and validate a configuration file without starting anything. Every
problem is listed with its line, the field and the accepted values; the exit
code is 2 if the file has problems, 1 if it cannot be read.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := config.DefaultPath
			if len(args) == 1 {
				file = args[0]
			}
			res := configCheckResult{File: file, Problems: []string{}}
			c, err := config.Load(file)
			var cerr *config.Error
			switch {
			case errors.As(err, &cerr):
				for _, fe := range cerr.Problems {
					res.Problems = append(res.Problems, fe.Error())
				}
				err = &UsageError{Err: err}
			case err != nil:
				res.Problems = append(res.Problems, err.Error())
			default:
				res.OK, res.Targets, res.Devices = true, len(c.Targets), len(c.Devices)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				if perr := printJSON(w, res); perr != nil {
					return perr
				}
			} else if err == nil {
				fmt.Fprintf(w, "%s: ok (%d targets, %d device overrides)\n", file, res.Targets, res.Devices)
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

// applyConfigFile loads the daemon's configuration: file "" means the
// default path if it exists, else the built-in defaults. Bad content is a
// usage error; a reload reads the same file again.
func applyConfigFile(opts *daemon.Options, file string, _ *cobra.Command) error {
	explicit := file != ""
	if !explicit {
		file = config.DefaultPath
	}
	load := func() (*config.Config, error) {
		c, err := config.Load(file)
		if err != nil && !explicit && errors.Is(err, fs.ErrNotExist) {
			return config.Default(), nil
		}
		return c, err
	}
	c, err := load()
	if err != nil {
		var cerr *config.Error
		if errors.As(err, &cerr) {
			return &UsageError{Err: err}
		}
		return err
	}
	opts.Config, opts.ReloadConfig = c, load
	return nil
}
