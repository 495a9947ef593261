package ublk

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// allocOffHeap maps n bytes of anonymous, page-aligned memory outside the Go
// heap: the kernel keeps its address (control payloads read late by io-wq,
// per-tag buffers copied in task_work, RDMA registrations). free unmaps it.
func allocOffHeap(n int) (mem []byte, free func() error, err error) {
	mem, err = unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return nil, nil, &OpError{Op: "mmap buffers", DevID: 0, Err: err}
	}
	return mem, func() error { return unix.Munmap(mem) }, nil
}

// AllocQueueMemory maps size bytes of page-aligned, pre-faulted memory
// outside the Go heap for DeviceSpec.QueueMemory. free unmaps it.
func AllocQueueMemory(size int) (mem []byte, free func() error, err error) {
	return allocOffHeap(size)
}

// bufAddr is the address the kernel copies through for a tag buffer.
func bufAddr(b []byte) uint64 {
	if cap(b) == 0 {
		return 0
	}
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}
