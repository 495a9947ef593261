// Package store keeps LU identity (WWID to ublk device id), admin state and policy overrides in bbolt.
//
// TODO(owner): concurrency contract and order of effects.
package store
