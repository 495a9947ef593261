// Package ublk serves block devices through the Linux ublk driver on io_uring, implemented on golang.org/x/sys/unix.
//
// TODO(owner): concurrency contract and order of effects.
package ublk
