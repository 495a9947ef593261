// Package ublktest runs a ublk server for end-to-end tests and the VM lab.
//
// A test binary calls MaybeServe first in its TestMain. Start re-executes
// that binary with EnvServe set, so the child serves one device (memory,
// null or file backend) through ublk.Serve on the real kernel, prints
// "UBLKTEST READY id=N path=/dev/ublkbN recovered=BOOL" and runs until
// SIGTERM (graceful STOP+DEL, or detach with -detach). Server.Kill sends
// SIGKILL to model a crash; a second Start with the same -id recovers the
// device (START/END_USER_RECOVERY). Use -backend file:PATH when data must
// survive the server: the memory backend dies with its process.
//
// Flags: -id -queues -depth -max-io -lbs -size -backend -recover -detach
// -discard -workers -pin -log. Concurrency: Start and Server methods are for one
// test goroutine.
package ublktest
