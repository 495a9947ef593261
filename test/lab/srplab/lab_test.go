//go:build lab

package srplab

import (
	"os"
	"path/filepath"
	"testing"
)

// TestLabTwoTargets checks the topology with two targets inside the lab VM:
// one path each, two LUs of 4 KiB blocks per target, extra ACLs. It is run
// by hand (the lab runner builds test/lab/scenarios only):
//
//	go test -c -tags lab -o /tmp/srplab.test ./test/lab/srplab
//	test/lab/vm/vm-run.sh -- /tmp/srplab.test -test.v
func TestLabTwoTargets(t *testing.T) {
	const ext = 0x5250
	l := Setup(t, Options{Paths: 1, Targets: 2, LUs: 2, BlockSize: 4096, InitiatorExts: []uint64{0, ext}})
	if len(l.Paths) != 2 || len(l.Targets) != 2 || l.Targets[1].Paths[0] != 1 || len(l.Targets[1].LUs) != 2 {
		t.Fatalf("topology: %+v", l)
	}
	if err := l.AddACL(1, l.Paths[1].InitiatorPortID(0x77)); err != nil {
		t.Fatal(err)
	}
	for i := range l.Paths {
		p := &l.Paths[i]
		for _, x := range []uint64{0, ext, 0x77} {
			_, err := os.Stat(filepath.Join(l.tpgDir(p), "acls", p.InitiatorPortID(x).String(), "lun_1"))
			if want := x != 0x77 || i == 1; (err == nil) != want {
				t.Errorf("path %d ACL %s: %v, want present=%v", i, p.InitiatorPortID(x), err, want)
			}
		}
		kp, err := l.KernelLogin(i, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, lu := range l.Targets[p.Target].LUs {
			bs, err := readTrim(filepath.Join("/sys/block", kp.Disks[lu.NAA], "queue/logical_block_size"))
			if err != nil || bs != "4096" {
				t.Errorf("path %d %s: logical block size %q, %v", i, kp.Disk(lu), bs, err)
			}
			t.Logf("path %d: %s = target %d LUN %d %s", i, kp.Disk(lu), lu.Target, lu.LUN, lu.WWID())
		}
	}
	if err := l.KillSessions(1); err != nil {
		t.Fatal(err)
	}
	t.Logf("after KillSessions(1):\n%s", KernelLog("", "srp"))
}
