package srp_test

import (
	"fmt"
	"testing"

	"github.com/srp-mpathd/srp-mpathd/internal/srp"
	"github.com/srp-mpathd/srp-mpathd/internal/srp/srptest"
)

// BenchmarkChannel measures 4 KiB reads and writes over the simulator at
// queue depths 1 and 32: the initiator's data path (and the simulated
// target) must not allocate.
// The write-rdma cases turn immediate data off, so the target RDMA-reads
// the data instead.
func BenchmarkChannel(b *testing.B) {
	for _, kind := range []string{"read", "write", "write-rdma"} {
		for _, qd := range []int{1, 32} {
			b.Run(fmt.Sprintf("%s-4KiB/qd%d", kind, qd), func(b *testing.B) {
				benchChannel(b, kind != "read", kind != "write-rdma", qd)
			})
		}
	}
}

func benchChannel(b *testing.B, write, immediate bool, qd int) {
	const bs, blocks = 512, 8
	e := newEnv(b, func(_ *srptest.Config, lc *srptest.LUConfig) { lc.Blocks = 1 << 16 })
	p := e.params()
	p.QueueDepth = qd
	p.Immediate = immediate
	c := e.dial(b, p)
	d := newDataBuf(b, e.ini, qd, blocks*bs)
	cmds := make([]srp.Command, qd)
	for i := range cmds {
		d.rw(&cmds[i], i, write, uint64(i*blocks), blocks, bs)
	}
	out := make([]srp.Result, qd)
	ready := c.Ready()
	b.SetBytes(blocks * bs)
	b.ReportAllocs()
	b.ResetTimer()
	inflight, submitted, completed := 0, 0, 0
	next := 0
	for completed < b.N {
		for inflight < qd && submitted < b.N {
			cmd := &cmds[next]
			next++
			if next == qd {
				next = 0
			}
			if err := c.Submit(cmd); err != nil {
				b.Fatalf("submit: %v", err)
			}
			inflight++
			submitted++
		}
		n := c.Poll(out)
		if n == 0 {
			if err := c.ArmNotify(); err != nil {
				b.Fatal(err)
			}
			if n = c.Poll(out); n == 0 {
				<-ready
				continue
			}
		}
		for _, r := range out[:n] {
			if r.Err != nil || r.Status != 0 {
				b.Fatalf("result %+v", r)
			}
		}
		inflight -= n
		completed += n
	}
}
