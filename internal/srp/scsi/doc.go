// Package scsi builds SCSI CDBs and parses the structures an SRP initiator needs (sense data, VPD pages, READ CAPACITY, REPORT LUNS) and classifies a SCSI status with its sense into one retry decision.
//
// TODO(owner): concurrency contract and order of effects.
package scsi
