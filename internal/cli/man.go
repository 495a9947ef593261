package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// manSection is the man section of every page (system administration).
const manSection = "8"

func newManCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "man [COMMAND...]",
		Short: "Print a command's man page, or write every page with --dir",
		Long: `Generate man pages (roff, section 8) from the command tree: with --dir, one
page per command is written there (srp-mpathd.8, srp-mpathd-paths.8, ...);
otherwise the page of COMMAND (default: srp-mpathd) is printed.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			root := cmd.Root()
			if dir != "" {
				if len(args) > 0 {
					return &UsageError{Err: fmt.Errorf("man: give either --dir or a command, not both")}
				}
				return writeManPages(root, dir)
			}
			target, rest, err := root.Find(args)
			if err != nil || len(rest) > 0 {
				return &UsageError{Err: fmt.Errorf("man: no command %q", strings.Join(args, " "))}
			}
			return manPage(cmd.OutOrStdout(), target)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "write every page into this directory")
	return cmd
}

// manName is a command's page name: its path joined by dashes.
func manName(c *cobra.Command) string { return strings.ReplaceAll(c.CommandPath(), " ", "-") }

// writeManPages writes the page of c and of every subcommand into dir.
func writeManPages(c *cobra.Command, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := manPage(&buf, c); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, manName(c)+"."+manSection), buf.Bytes(), 0o644); err != nil {
		return err
	}
	for _, sub := range c.Commands() {
		if !sub.IsAvailableCommand() {
			continue
		}
		if err := writeManPages(sub, dir); err != nil {
			return err
		}
	}
	return nil
}

// roffEscape escapes text for roff: backslashes, and a leading dot or
// quote that would start a request.
func roffEscape(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, ".") || strings.HasPrefix(line, "'") {
			line = `\&` + line
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// manPage writes c's page in man(7) roff.
func manPage(w io.Writer, c *cobra.Command) error {
	var b strings.Builder
	name := manName(c)
	fmt.Fprintf(&b, ".TH %q %s \"\" \"srp-mpathd %s\" \"System Administration\"\n", strings.ToUpper(name), manSection, Version)
	fmt.Fprintf(&b, ".SH NAME\n%s \\- %s\n", roffEscape(name), roffEscape(c.Short))
	fmt.Fprintf(&b, ".SH SYNOPSIS\n.B %s\n", roffEscape(c.UseLine()))
	long := c.Long
	if long == "" {
		long = c.Short
	}
	b.WriteString(".SH DESCRIPTION\n")
	for _, para := range strings.Split(long, "\n\n") {
		fmt.Fprintf(&b, ".PP\n%s\n", roffEscape(para))
	}
	writeFlags := func(title string, fs *pflag.FlagSet) {
		if !fs.HasAvailableFlags() {
			return
		}
		fmt.Fprintf(&b, ".SH %s\n", title)
		fs.VisitAll(func(f *pflag.Flag) {
			if f.Hidden {
				return
			}
			head := "\\-\\-" + roffEscape(f.Name)
			if f.Shorthand != "" {
				head = "\\-" + f.Shorthand + ", " + head
			}
			if f.Value.Type() != "bool" {
				head += " " + strings.ToUpper(f.Value.Type())
			}
			usage := f.Usage
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "[]" {
				usage += " (default " + f.DefValue + ")"
			}
			fmt.Fprintf(&b, ".TP\n.B %s\n%s\n", head, roffEscape(usage))
		})
	}
	writeFlags("OPTIONS", c.NonInheritedFlags())
	writeFlags("INHERITED OPTIONS", c.InheritedFlags())
	var subs []string
	for _, sub := range c.Commands() {
		if sub.IsAvailableCommand() {
			subs = append(subs, fmt.Sprintf(".TP\n.B %s\n%s\n", roffEscape(sub.Name()), roffEscape(sub.Short)))
		}
	}
	if len(subs) > 0 {
		b.WriteString(".SH COMMANDS\n" + strings.Join(subs, ""))
	}
	var see []string
	if c.HasParent() {
		see = append(see, fmt.Sprintf("%s(%s)", manName(c.Parent()), manSection))
	}
	for _, sub := range c.Commands() {
		if sub.IsAvailableCommand() {
			see = append(see, fmt.Sprintf("%s(%s)", manName(sub), manSection))
		}
	}
	if len(see) > 0 {
		fmt.Fprintf(&b, ".SH SEE ALSO\n%s\n", roffEscape(strings.Join(see, ", ")))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
