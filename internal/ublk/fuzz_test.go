package ublk_test

import (
	"bytes"
	"context"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/srp-mpathd/srp-mpathd/internal/ublk"
	"github.com/srp-mpathd/srp-mpathd/internal/ublk/uapi"
	"github.com/srp-mpathd/srp-mpathd/internal/ublk/ublkfake"
)

// FuzzRunner drives the queue runner through the fake with a sequence of
// requests and kill/recover events decoded from the input, checking every
// result against a model of the disk and that no driver rule is broken.
// Each step is 4 bytes: kind, offset (in 4 KiB blocks), length (blocks),
// queue.
func FuzzRunner(f *testing.F) {
	f.Add([]byte{0, 1, 2, 0, 1, 1, 2, 1})
	f.Add([]byte{0, 3, 1, 1, 5, 0, 0, 0, 1, 3, 1, 0})
	f.Add([]byte{2, 0, 4, 1, 3, 0, 0, 0, 6, 9, 9, 9, 1, 0, 4, 0})
	f.Fuzz(func(t *testing.T, steps []byte) {
		const (
			block    = 4096
			blocks   = 64
			size     = blocks * block
			maxSteps = 40
		)
		if len(steps) > 4*maxSteps {
			steps = steps[:4*maxSteps]
		}
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		k := ublkfake.New(ublkfake.Config{NoPartitionScan: true})
		mem := ublk.NewMemory(size, 512)
		spec := ublk.DeviceSpec{ID: 1, Queues: 2, Depth: 2, MaxIO: 2 * block, Size: size, Recovery: true,
			Discard: true, Handler: ublk.NewBackendHandler(mem, 1)}
		pid := int32(1)
		ctl, err := ublk.NewControl(k.Process(pid), nil)
		if err != nil {
			t.Fatal(err)
		}
		d, err := ublk.Create(ctx, ctl, spec)
		if err != nil {
			t.Fatal(err)
		}
		model := make([]byte, size)
		for i := 0; i+4 <= len(steps); i += 4 {
			kind, off, n, q := steps[i]%7, int64(steps[i+1]%blocks)*block, int(steps[i+2]%4+1)*block, int(steps[i+3])
			if off+int64(n) > size {
				n = int(size - off)
			}
			var r *ublkfake.BlockRequest
			want := int32(0)
			switch kind {
			case 0:
				data := bytes.Repeat([]byte{byte(i + 1)}, n)
				r = ublkfake.NewBlockRequest(uapi.OpWrite, off, data)
				want = int32(n)
			case 1:
				r = ublkfake.NewBlockRequest(uapi.OpRead, off, make([]byte, n))
				want = int32(n)
			case 2:
				r = ublkfake.NewBlockRequest(uapi.OpWriteZeroes, off, nil)
				r.Len = n
			case 3:
				r = ublkfake.NewBlockRequest(uapi.OpFlush, 0, nil)
			case 4:
				r = ublkfake.NewBlockRequest(uapi.OpZoneReset, off, nil)
				r.Len = n
				want = -int32(unix.EOPNOTSUPP)
			case 5:
				r = ublkfake.NewBlockRequest(uapi.OpRead, size, make([]byte, block)) // past the end
				want = -int32(unix.EINVAL)
			case 6:
				k.Kill(pid)
				<-d.Done()
				_ = ctl.Close()
				pid++
				if ctl, err = ublk.NewControl(k.Process(pid), nil); err != nil {
					t.Fatal(err)
				}
				spec.Handler = ublk.NewBackendHandler(mem, 1)
				if d, err = ublk.Open(ctx, ctl, spec); err != nil || !d.Recovered() {
					t.Fatalf("recover: %v", err)
				}
				continue
			}
			r.Queue = q
			res, err := k.Do(ctx, 1, r)
			if err != nil {
				t.Fatal(err)
			}
			if res != want {
				t.Fatalf("step %d %v off %d len %d: res %d, want %d", i/4, r.Op, r.Off, n, res, want)
			}
			switch kind {
			case 0:
				copy(model[off:], r.Data)
			case 1:
				if !bytes.Equal(r.Data, model[off:off+int64(n)]) {
					t.Fatalf("step %d: read differs from model", i/4)
				}
			case 2:
				clear(model[off : off+int64(n)])
			}
		}
		if err := d.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		_ = ctl.Close()
		if v := k.Violations(); len(v) > 0 {
			t.Fatalf("violations: %v", v)
		}
	})
}
