//go:build lab

package scenarios

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/srp-mpathd/srp-mpathd/test/lab/labkit"
)

// labKernelSeries is the kernel line the lab boots (test/lab/vm/fetch-kernel.sh).
const labKernelSeries = "6.12."

// labModules are the modules the issue names: everything the lab's scenarios
// load, probed up front so a kernel without one fails here, with its name.
var labModules = []string{"ublk_drv", "rdma_rxe", "ib_srpt", "ib_srp", "dm_multipath", "raid1", "null_blk"}

// TestLabSmoke proves the lab itself: the right kernel booted, every module
// the scenarios need loads, and ublk's control device appears.
func TestLabSmoke(t *testing.T) {
	labkit.RequireVM(t)
	sc := labkit.Begin(t, "lab-smoke")

	boot, err := labkit.BootTime()
	if err != nil {
		t.Fatal(err)
	}
	sc.Figure("boot_ms", float64(boot/time.Millisecond))

	rel := strings.TrimSpace(labkit.Run(t, "uname", "-r"))
	sc.Notef("kernel %s", rel)
	if !strings.HasPrefix(rel, labKernelSeries) {
		t.Errorf("uname -r = %q, want the %sx lab kernel", rel, labKernelSeries)
	}

	start := time.Now()
	for _, m := range labModules {
		labkit.RequireModule(t, m)
	}
	sc.Figure("modprobe_ms", float64(time.Since(start)/time.Millisecond))

	fi, err := os.Stat("/dev/ublk-control")
	if err != nil {
		t.Fatalf("after modprobe ublk_drv: %v", err)
	}
	if fi.Mode()&os.ModeCharDevice == 0 {
		t.Errorf("/dev/ublk-control is %v, want a character device", fi.Mode())
	}
}
