package ublk_test

import (
	"context"
	"fmt"

	"github.com/srp-mpathd/srp-mpathd/internal/ublk"
	"github.com/srp-mpathd/srp-mpathd/internal/ublk/uapi"
	"github.com/srp-mpathd/srp-mpathd/internal/ublk/ublkfake"
)

// Serve one memory-backed device until the context ends. On a real host
// leave Driver nil (the kernel's ublk_drv); here the fake stands in.
func ExampleServe() {
	k := ublkfake.New(ublkfake.Config{})
	ctx, stop := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- ublk.Serve(ctx, ublk.ServeSpec{
			ID: 3, Backend: ublk.NewMemory(16<<20, 4096), Queues: 2, Depth: 32, Recover: true,
			Driver: k.Process(4242),
			OnReady: func(d *ublk.Device) {
				fmt.Println("serving", d.BlockPath(), "recovered:", d.Recovered())
				stop()
			},
		})
	}()
	fmt.Println("serve:", <-errc)
	_, exists := k.Info(3)
	fmt.Println("device left behind:", exists)
	// Output:
	// serving /dev/ublkb3 recovered: false
	// serve: <nil>
	// device left behind: false
}

// echoHandler shows the non-blocking Handler seam: requests are finished on
// the queue thread, here at once.
type echoHandler struct{}

func (echoHandler) Start(q *ublk.Queue, r *ublk.Request) {
	if r.Op == ublk.OpRead {
		for i := range r.Buf {
			r.Buf[i] = 0xab
		}
	}
	q.Complete(r.Tag, int32(len(r.Buf)))
}
func (echoHandler) Poll(*ublk.Queue) int      { return 0 }
func (echoHandler) PollFDs(*ublk.Queue) []int { return nil }

func ExampleHandler() {
	k := ublkfake.New(ublkfake.Config{})
	ctx := context.Background()
	ctl, err := ublk.NewControl(k.Process(1), nil)
	if err != nil {
		panic(err)
	}
	defer ctl.Close()
	d, err := ublk.Open(ctx, ctl, ublk.DeviceSpec{ID: 0, Queues: 1, Depth: 8, MaxIO: 64 << 10, Size: 1 << 20, Handler: echoHandler{}})
	if err != nil {
		panic(err)
	}
	r := ublkfake.NewBlockRequest(uapi.OpRead, 4096, make([]byte, 512))
	res, err := k.Do(ctx, 0, r)
	fmt.Printf("read %d bytes (%v): %#x\n", res, err, r.Data[0])
	fmt.Println("stop:", d.Stop(ctx))
	// Output:
	// read 512 bytes (<nil>): 0xab
	// stop: <nil>
}
