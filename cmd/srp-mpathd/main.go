// Command srp-mpathd is a user-space SRP initiator, fabric discovery and
// multipath daemon that serves each SCSI logical unit as one persistent ublk
// block device.
package main

import (
	"os"

	"github.com/srp-mpathd/srp-mpathd/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
