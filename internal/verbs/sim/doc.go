// Package sim is a deterministic in-memory RDMA fabric with fault injection implementing the verbs seam.
//
// TODO(owner): concurrency contract and order of effects.
package sim
