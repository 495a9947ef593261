package uring

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/srp-mpathd/srp-mpathd/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// newRing sets up a ring or skips with the reason the kernel gave.
func newRing(t testing.TB, entries uint32, flags SetupFlags) *Ring {
	t.Helper()
	r, err := New(entries, flags)
	if err != nil {
		if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
			t.Skipf("io_uring unavailable on this host: %v (see /proc/sys/kernel/io_uring_disabled)", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	})
	return r
}

// offHeap returns n bytes the kernel may read after Submit returns.
func offHeap(t testing.TB, n int) []byte {
	t.Helper()
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Munmap(b) })
	return b
}

func TestNop(t *testing.T) {
	r := newRing(t, 8, 0)
	for i := range 3 {
		PrepNop(r.SQE(), uint64(100+i))
	}
	n, err := r.Submit(3)
	if err != nil || n != 3 {
		t.Fatalf("Submit = %d, %v", n, err)
	}
	for i := range 3 {
		c, ok := r.Peek()
		if !ok || c.UserData != uint64(100+i) || c.Res != 0 {
			t.Fatalf("cqe %d = %+v, %v", i, c, ok)
		}
	}
	if _, ok := r.Peek(); ok {
		t.Fatal("extra cqe")
	}
}

func TestReadWriteTmpfile(t *testing.T) {
	r := newRing(t, 4, 0)
	f, err := os.Create(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := offHeap(t, 8192)
	for i := range 4096 {
		buf[i] = byte(i * 7)
	}
	PrepWrite(r.SQE(), int(f.Fd()), buf[:4096], 4096, 1)
	PrepFsync(r.SQE(), int(f.Fd()), 2)
	if _, err := r.Submit(2); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		c, _ := r.Peek()
		if (c.UserData == 1 && c.Res != 4096) || (c.UserData == 2 && c.Res != 0) {
			t.Fatalf("cqe %+v", c)
		}
	}
	PrepRead(r.SQE(), int(f.Fd()), buf[4096:], 4096, 3)
	if _, err := r.Submit(1); err != nil {
		t.Fatal(err)
	}
	if c, _ := r.Peek(); c.Res != 4096 || c.UserData != 3 {
		t.Fatalf("read cqe %+v", c)
	}
	for i := range 4096 {
		if buf[4096+i] != byte(i*7) {
			t.Fatalf("byte %d = %d", i, buf[4096+i])
		}
	}
}

func TestFullSQ(t *testing.T) {
	r := newRing(t, 4, 0)
	n := 0
	for sqe := r.SQE(); sqe != nil; sqe = r.SQE() {
		PrepNop(sqe, uint64(n))
		n++
	}
	if n != int(r.SQEntries()) {
		t.Fatalf("got %d slots, ring has %d", n, r.SQEntries())
	}
	if r.Pending() != uint32(n) {
		t.Fatalf("pending %d", r.Pending())
	}
	if _, err := r.Submit(0); err != nil {
		t.Fatal(err)
	}
	if r.SQE() == nil {
		t.Fatal("SQ still full after submit")
	}
	// The slot taken above is a NOP with user_data 0 once submitted.
	if _, err := r.Submit(uint32(n) + 1); err != nil {
		t.Fatal(err)
	}
	for i := 0; i <= n; i++ {
		if _, ok := r.Peek(); !ok {
			t.Fatalf("cqe %d missing", i)
		}
	}
}

// TestEINTR interrupts a thread sleeping in io_uring_enter with signals and
// checks that Submit retries and still returns the completion it waited for.
func TestEINTR(t *testing.T) {
	r := newRing(t, 4, 0)
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)
	PrepPollAdd(r.SQE(), efd, PollIn, 7)
	tid := make(chan int)
	done := make(chan error)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tid <- unix.Gettid()
		_, err := r.Submit(1)
		done <- err
	}()
	target := <-tid
	for r.Stats().EINTR < 3 {
		if err := unix.Tgkill(unix.Getpid(), target, unix.SIGURG); err != nil {
			t.Fatal(err)
		}
		runtime.Gosched()
	}
	if _, err := unix.Write(efd, []byte{1, 0, 0, 0, 0, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Submit after EINTR: %v", err)
	}
	c, ok := r.Peek()
	if !ok || c.UserData != 7 || c.Res&PollIn == 0 {
		t.Fatalf("cqe %+v %v", c, ok)
	}
}

// TestURingCmdSQE128 sends a URING_CMD with a full 80-byte cmd area to a file
// that has no uring_cmd handler: -EOPNOTSUPP proves the SQE128 plumbing.
func TestURingCmdSQE128(t *testing.T) {
	r := newRing(t, 4, SetupSQE128)
	if r.CmdSize() != CmdSize128 {
		t.Fatalf("cmd size %d", r.CmdSize())
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "x"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sqe := r.SQE()
	PrepURingCmd(sqe, int(f.Fd()), 0xc0207504, 9)
	cmd := r.Cmd(sqe)
	for i := range cmd {
		cmd[i] = byte(i)
	}
	if _, err := r.Submit(1); err != nil {
		t.Fatal(err)
	}
	c, _ := r.Peek()
	if c.UserData != 9 || c.Res != -int32(unix.EOPNOTSUPP) {
		t.Fatalf("cqe %+v, want res %d", c, -int32(unix.EOPNOTSUPP))
	}
}

func TestSubmitBadFD(t *testing.T) {
	r := newRing(t, 2, 0)
	PrepRead(r.SQE(), 1<<20, nil, 0, 5)
	if _, err := r.Submit(1); err != nil {
		t.Fatal(err)
	}
	if c, _ := r.Peek(); c.Res != -int32(unix.EBADF) {
		t.Fatalf("cqe %+v", c)
	}
}

func TestNopNoAlloc(t *testing.T) {
	r := newRing(t, 8, 0)
	if n := testing.AllocsPerRun(200, func() {
		PrepNop(r.SQE(), 1)
		_, _ = r.Submit(1)
		_, _ = r.Peek()
	}); n != 0 {
		t.Fatalf("%v allocs per NOP", n)
	}
}

func BenchmarkNop(b *testing.B) {
	r := newRing(b, 64, 0)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for b.Loop() {
		PrepNop(r.SQE(), 1)
		_, _ = r.Submit(1)
		_, _ = r.Peek()
	}
}

func BenchmarkNopBatch32(b *testing.B) {
	r := newRing(b, 64, 0)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for b.Loop() {
		for range 32 {
			PrepNop(r.SQE(), 1)
		}
		_, _ = r.Submit(32)
		for range 32 {
			_, _ = r.Peek()
		}
	}
}

// TestSubmitAndWaitTimeout: the bounded wait ends with ETIME when nothing
// completes, and returns the completion once there is one.
func TestSubmitAndWaitTimeout(t *testing.T) {
	r := newRing(t, 4, SetupSQE128)
	if r.Features()&FeatExtArg == 0 {
		t.Skip("kernel lacks IORING_FEAT_EXT_ARG (< 5.11)")
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)
	PrepPollAdd(r.SQE(), efd, PollIn, 3)
	n, err := r.SubmitAndWaitTimeout(1, time.Millisecond)
	if !errors.Is(err, unix.ETIME) || n != 1 {
		t.Fatalf("idle wait: n %d err %v, want the SQE submitted and ETIME", n, err)
	}
	if _, err := unix.Write(efd, []byte{1, 0, 0, 0, 0, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SubmitAndWaitTimeout(1, time.Minute); err != nil {
		t.Fatal(err)
	}
	if c, ok := r.Peek(); !ok || c.UserData != 3 {
		t.Fatalf("cqe %+v %v", c, ok)
	}
}

// TestPollRemove: POLL_REMOVE by user_data cancels an armed poll (its CQE
// is -ECANCELED, the remove's own CQE 0); a second remove finds nothing
// (-ENOENT). While the poll is armed it holds the polled file: a pipe whose
// read end's fd was closed still accepts writes, and refuses them (EPIPE)
// once the poll is removed. This is why the ublk queue removes the polls of
// fds its handler dropped.
func TestPollRemove(t *testing.T) {
	r := newRing(t, 4, 0)
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[1])
	// POLLPRI never fires on a pipe (and POLLHUP needs the writer gone).
	PrepPollAdd(r.SQE(), p[0], unix.POLLPRI, 3)
	if _, err := r.Submit(0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Close(p[0]); err != nil {
		t.Fatal(err)
	}
	one := []byte{1}
	if _, err := unix.Write(p[1], one); err != nil {
		t.Fatalf("write while a poll holds the read end: %v", err)
	}
	PrepPollRemove(r.SQE(), 3, 4)
	if _, err := r.Submit(2); err != nil {
		t.Fatal(err)
	}
	got := map[uint64]int32{}
	for {
		c, ok := r.Peek()
		if !ok {
			break
		}
		got[c.UserData] = c.Res
	}
	if got[3] != -int32(unix.ECANCELED) || got[4] != 0 || len(got) != 2 {
		t.Fatalf("remove of an armed poll: cqes %v, want 3:-ECANCELED 4:0", got)
	}
	if _, err := unix.Write(p[1], one); !errors.Is(err, unix.EPIPE) {
		t.Fatalf("write after the poll was removed: %v, want EPIPE (the ring let go of the read end)", err)
	}
	PrepPollRemove(r.SQE(), 3, 5)
	if _, err := r.Submit(1); err != nil {
		t.Fatal(err)
	}
	if c, ok := r.Peek(); !ok || c.UserData != 5 || c.Res != -int32(unix.ENOENT) {
		t.Fatalf("remove of a gone poll: %+v %v, want -ENOENT", c, ok)
	}
}

// TestSubmitAndWaitTimeoutBound: the bound holds when the call also
// submitted (the kernel then returns the count, not ETIME): the wait is not
// started over.
func TestSubmitAndWaitTimeoutBound(t *testing.T) {
	r := newRing(t, 4, 0)
	if r.Features()&FeatExtArg == 0 {
		t.Skip("kernel lacks IORING_FEAT_EXT_ARG (< 5.11)")
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)
	PrepPollAdd(r.SQE(), efd, PollIn, 1)
	const d = 50 * time.Millisecond
	start := time.Now()
	if _, err := r.SubmitAndWaitTimeout(1, d); !errors.Is(err, unix.ETIME) {
		t.Fatalf("err %v, want ETIME", err)
	}
	if el := time.Since(start); el < d {
		t.Fatalf("waited %v for a bound of %v", el, d)
	}
	// One io_uring_enter submitted and waited; the expired bound ends the
	// call without waiting again.
	if enters := r.Stats().Enters; enters != 1 {
		t.Fatalf("%d io_uring_enter calls, want 1", enters)
	}
}
