package sim

import "github.com/srp-mpathd/srp-mpathd/internal/verbs"

// SetPortUp takes the link of one port down (false) or up (true), as a
// pulled target cable — unlike Link.Down, which takes the whole segment
// and every port on it. The port reports PortError (PortActive) to its
// device's handles; traffic to and from it is lost while it is down (RC
// requests are retried until their budget is spent, connects fail with
// verbs.ErrUnreachable); and the subnet manager of its link, if any, takes
// it out of service with trap 65 (back in with trap 64). Idempotent.
func (f *Fabric) SetPortUp(ref PortRef, up bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := f.portByRef(ref)
	if err != nil {
		return err
	}
	if p.down == !up {
		return nil
	}
	p.down = !up
	kind := verbs.EventPortActive
	if !up {
		kind = verbs.EventPortError
	}
	p.emit(kind, f.clk.Now())
	if p.link == nil {
		return nil
	}
	if sm := f.mad.sms[p.link]; sm != nil {
		sm.setInServiceLocked(p, up)
	}
	p.link.progressAll()
	return nil
}
