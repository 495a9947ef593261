package sim

import (
	"fmt"
	"slices"

	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
)

// SetPKeys replaces a port's P_Key table, as the SM reprogramming
// partitions: indexes may move, so users must resolve a P_Key to its index
// again. Every handle of the device gets EventPKeyChange.
func (f *Fabric) SetPKeys(ref PortRef, pkeys ...uint16) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := f.portByRef(ref)
	if err != nil {
		return err
	}
	if len(pkeys) == 0 {
		return fmt.Errorf("set pkeys %s: empty table: %w", ref, ErrBadConfig)
	}
	p.pkeys = slices.Clone(pkeys)
	p.emit(verbs.EventPKeyChange, f.clk.Now())
	return nil
}
