// Package rdma implements the verbs seam with cgo over rdma-core (libibverbs, librdmacm, libibumad).
//
// TODO(owner): concurrency contract and order of effects.
package rdma
