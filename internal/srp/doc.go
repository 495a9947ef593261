// Package srp owns the SCSI RDMA Protocol: the information-unit codecs, the initiator Channel (login, credits, tags, commands, task management, disconnect) and fabric discovery (SA/DM MADs).
//
// TODO(owner): concurrency contract and order of effects.
package srp
