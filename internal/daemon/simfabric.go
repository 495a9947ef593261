package daemon

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/config"
	"github.com/srp-mpathd/srp-mpathd/internal/srp"
	"github.com/srp-mpathd/srp-mpathd/internal/srp/srptest"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs/sim"
)

// The built-in simulated topology (FabricSim): SimTargets software targets,
// each with SimPathsPerTarget ports and one LU, and an initiator HCA with one
// port per path; every initiator port is joined to its target port by its
// own link, so every path can fail on its own (as the lab's veth pairs).
const (
	SimTargets        = 2
	SimPathsPerTarget = 2

	simInitiator  = "ini0"
	simTargetPort = 5555
	simLUN        = 1
	simBlockSize  = 512
	simBlocks     = 16384 // 8 MiB per LU
	// simChanDepth is each channel's tag count; the queue depth above it
	// stays below it, so a channel never runs out of tags.
	simChanDepth = 32
	// simInitiatorExt is the id_ext half of the initiator port id; the
	// queue number is added so every channel has its own I_T nexus
	// channel (MULTI login anyway).
	simInitiatorExt = 0x5352504d50415448 // "SRPMPATH"
	// maxRetryCount is the largest RC retry_cnt (a 3-bit field).
	maxRetryCount = 7
)

// SimTarget is one software target of the simulated topology.
type SimTarget struct {
	Name   string
	Target *srptest.Target
	LU     *srptest.LU
	Ports  []*srptest.Port
	// Links are the target's paths, index = path number - 1.
	Links []*sim.Link
	dev   *sim.Device
	addrs []netip.Addr // target port addresses
	src   []netip.Addr // initiator port addresses
	ports []uint8      // initiator port numbers
}

// WWID is the LU's identity as VPD page 0x83 reports it (its NAA
// designator).
func (t *SimTarget) WWID() string { return "naa." + hex.EncodeToString(t.LU.NAA()) }

// SimFabric is the simulated fabric the daemon runs on with FabricSim. The
// demo and the tests inject faults through it.
type SimFabric struct {
	Fabric    *sim.Fabric
	Initiator *sim.Device
	Targets   []*SimTarget
}

func simAddr(path int, host byte) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 18, byte(path + 1), host})
}

// newSimFabric builds the topology; latency is every link's one-way delay.
func newSimFabric(log *slog.Logger, latency time.Duration) (_ *SimFabric, err error) {
	fab := sim.New(sim.Config{Seed: 1})
	s := &SimFabric{Fabric: fab}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Close())
		}
	}()
	var iniPorts []sim.PortConfig
	for i := range SimTargets * SimPathsPerTarget {
		iniPorts = append(iniPorts, sim.PortConfig{Addrs: []netip.Addr{simAddr(i, 1)}})
	}
	if err := fab.AddDevice(simInitiator, iniPorts...); err != nil {
		return nil, err
	}
	for t := range SimTargets {
		st := &SimTarget{Name: fmt.Sprintf("tgt%c", 'A'+t)}
		var tp []sim.PortConfig
		for p := range SimPathsPerTarget {
			i := t*SimPathsPerTarget + p
			st.addrs = append(st.addrs, simAddr(i, 2))
			st.src = append(st.src, simAddr(i, 1))
			st.ports = append(st.ports, uint8(i+1))
			tp = append(tp, sim.PortConfig{Addrs: []netip.Addr{simAddr(i, 2)}})
		}
		if err := fab.AddDevice(st.Name, tp...); err != nil {
			return nil, err
		}
		for p := range SimPathsPerTarget {
			l, err := fab.Connect(sim.PortRef{Device: simInitiator, Port: st.ports[p]}, sim.PortRef{Device: st.Name, Port: uint8(p + 1)})
			if err != nil {
				return nil, err
			}
			l.SetLatency(latency)
			st.Links = append(st.Links, l)
		}
		if st.dev, err = fab.OpenDevice(st.Name); err != nil {
			return nil, err
		}
		st.Target = srptest.New(srptest.Config{Logger: log.With("target", st.Name)})
		s.Targets = append(s.Targets, st)
		for p := range SimPathsPerTarget {
			port, err := st.Target.AddPort(st.dev, netip.AddrPortFrom(st.addrs[p], simTargetPort))
			if err != nil {
				return nil, err
			}
			st.Ports = append(st.Ports, port)
		}
		st.LU, err = st.Target.AddLU(srptest.LUConfig{
			LUN: simLUN, BlockSize: simBlockSize, Blocks: simBlocks,
			Serial: fmt.Sprintf("SRPMPATHD-SIM-%c", 'A'+t), Product: "srp-mpathd sim",
			WriteCache: true, ThinProvisioning: true,
		})
		if err != nil {
			return nil, err
		}
	}
	if s.Initiator, err = fab.OpenDevice(simInitiator); err != nil {
		return nil, err
	}
	return s, nil
}

// endpoints returns every path of the topology (target by target); ps
// gives the RC transport settings.
func (s *SimFabric) endpoints(ps config.PathSettings, log *slog.Logger) []*endpoint {
	ack, retry := uint8(ps.AckTimeout), uint8(min(max(ps.RetryCount, 0), maxRetryCount))
	var eps []*endpoint
	for _, t := range s.Targets {
		for p := range t.Ports {
			src, dst, port, n := t.src[p], netip.AddrPortFrom(t.addrs[p], simTargetPort), t.ports[p], p+1
			eps = append(eps, &endpoint{
				target: t.Name, desc: fmt.Sprintf("%s.%d", t.Name, n), tport: fmt.Sprintf("%s.%d", t.Name, n),
				pathID:  func(dev string) string { return PathID(dev, t.Name, n) },
				dev:     s.Initiator,
				devName: simInitiator,
				port:    port,
				// The sim channels have at least their fixed depth, above
				// the runners' queue depth.
				dial: func(ctx context.Context, queue, depth int) (*srp.Channel, error) {
					return srp.Dial(ctx, s.Initiator, srp.ChannelParams{
						Src: src, Dst: dst,
						InitiatorExt: simInitiatorExt + uint64(queue), TargetPortID: t.Target.PortID(),
						QueueDepth: max(depth, simChanDepth), Immediate: true, MultiChannel: true, Port: port,
						AckTimeout: ack, RetryCount: retry, Logger: log,
					})
				},
			})
		}
	}
	return eps
}

// PathID names path number n (1-based) of device dev through target: the
// name the CLI's `path fail|reinstate` takes.
func PathID(dev, target string, n int) string { return fmt.Sprintf("%s:%s.%d", dev, target, n) }

// Close stops the targets and the fabric.
func (s *SimFabric) Close() error {
	var errs []error
	for _, t := range s.Targets {
		if t.Target != nil {
			errs = append(errs, t.Target.Close())
		}
	}
	errs = append(errs, s.Fabric.Close())
	return errors.Join(errs...)
}
