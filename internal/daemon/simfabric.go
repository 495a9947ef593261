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
	"github.com/srp-mpathd/srp-mpathd/internal/srp/discovery"
	"github.com/srp-mpathd/srp-mpathd/internal/srp/srptest"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs/sim"
)

// The built-in simulated topology (FabricSim): SimTargets software targets,
// each with SimPathsPerTarget ports and one LU, and an initiator HCA with one
// port per path; every initiator port is joined to its target port by its
// own link, so every path can fail on its own (as the lab's veth pairs).
// Every port is InfiniBand: each link is a subnet with its own subnet
// manager (SA), and each target port has a DM agent presenting the target
// as ib_srpt does, so the discovery engine finds the targets the way
// srp_daemon would (SimTopology describes other layouts).
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
	// simSMLID is every subnet's SM LID; simIniHost the initiator's host
	// number (address and LID) on each subnet, simFirstTargetHost the
	// first target port's.
	simSMLID           = 100
	simIniHost         = 1
	simFirstTargetHost = 2
)

// SimTopology describes a simulated fabric: the initiator has one
// InfiniBand port per subnet (a link with its own subnet manager), and
// each target has ports on some of the subnets. The zero value is the
// built-in topology.
type SimTopology struct {
	// InitiatorPKeys is the P_Key table of each initiator port; its length
	// is the number of subnets (nil entries: {0xffff}).
	InitiatorPKeys [][]uint16
	Targets        []SimTargetSpec
}

// SimTargetSpec is one target of a SimTopology, with one LU.
type SimTargetSpec struct {
	Name  string
	Ports []SimPortSpec
}

// SimPortSpec is one target port: the subnet it is on (0-based, the
// initiator port number - 1), its P_Key table (nil: {0xffff}) and whether
// the subnet manager starts with it out of service (hidden from the SA
// until SimFabric.SetInService brings it in with trap 64).
type SimPortSpec struct {
	Subnet       int
	PKeys        []uint16
	OutOfService bool
}

// defaultSimTopology is the built-in layout: SimTargets targets with
// SimPathsPerTarget ports, each target port on a subnet of its own.
func defaultSimTopology() SimTopology {
	var topo SimTopology
	for t := range SimTargets {
		spec := SimTargetSpec{Name: fmt.Sprintf("tgt%c", 'A'+t)}
		for range SimPathsPerTarget {
			spec.Ports = append(spec.Ports, SimPortSpec{Subnet: len(topo.InitiatorPKeys)})
			topo.InitiatorPKeys = append(topo.InitiatorPKeys, nil)
		}
		topo.Targets = append(topo.Targets, spec)
	}
	return topo
}

// SimTarget is one software target of the simulated topology.
type SimTarget struct {
	Name   string
	Target *srptest.Target
	LU     *srptest.LU
	Ports  []*srptest.Port
	// Links are the target's paths, index = path number - 1 (the subnet
	// each target port is on).
	Links []*sim.Link
	dev   *sim.Device
	addrs []netip.Addr // target port addresses
	src   []netip.Addr // initiator port addresses
	ports []uint8      // initiator port numbers
	gids  []verbs.GID  // target port GIDs (index 0), as discovery reports them
	sms   []*sim.SubnetManager
}

// WWID is the LU's identity as VPD page 0x83 reports it (its NAA
// designator).
func (t *SimTarget) WWID() string { return "naa." + hex.EncodeToString(t.LU.NAA()) }

// SetInService brings target port p (0-based) into its subnet (true: the
// SM sends trap 64) or takes it out (false: trap 65), as a target port
// joining or leaving the fabric while its cable stays in.
func (t *SimTarget) SetInService(p int, in bool) error {
	return t.sms[p].SetInService(sim.PortRef{Device: t.Name, Port: uint8(p + 1)}, in)
}

// SimFabric is the simulated fabric the daemon runs on with FabricSim. The
// demo and the tests inject faults through it.
type SimFabric struct {
	Fabric    *sim.Fabric
	Initiator *sim.Device
	Targets   []*SimTarget
	// Subnets are the links, one per initiator port, and their SMs.
	Subnets []*sim.Link
	SMs     []*sim.SubnetManager
}

func simAddr(subnet, host int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 18, byte(subnet + 1), byte(host)})
}

// newSimFabric builds the topology (the zero SimTopology: the built-in
// one); latency is every link's one-way delay.
func newSimFabric(log *slog.Logger, latency time.Duration, topo SimTopology) (_ *SimFabric, err error) {
	if len(topo.InitiatorPKeys) == 0 && len(topo.Targets) == 0 {
		topo = defaultSimTopology()
	}
	fab := sim.New(sim.Config{Seed: 1})
	s := &SimFabric{Fabric: fab}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Close())
		}
	}()
	ib := func(subnet, host int, pkeys []uint16) sim.PortConfig {
		return sim.PortConfig{LinkLayer: verbs.LinkInfiniBand, LID: uint16(host), SMLID: simSMLID, PKeys: pkeys,
			Addrs: []netip.Addr{simAddr(subnet, host)}}
	}
	var iniPorts []sim.PortConfig
	members := make([][]sim.PortRef, len(topo.InitiatorPKeys))
	for i, pk := range topo.InitiatorPKeys {
		iniPorts = append(iniPorts, ib(i, simIniHost, pk))
		members[i] = []sim.PortRef{{Device: simInitiator, Port: uint8(i + 1)}}
	}
	if err := fab.AddDevice(simInitiator, iniPorts...); err != nil {
		return nil, err
	}
	// Add the targets' devices, each port on its subnet.
	for _, spec := range topo.Targets {
		st := &SimTarget{Name: spec.Name}
		var tp []sim.PortConfig
		for p, ps := range spec.Ports {
			if ps.Subnet < 0 || ps.Subnet >= len(members) {
				return nil, fmt.Errorf("%w: sim target %s port %d: subnet %d of %d", ErrBadOptions, spec.Name, p+1, ps.Subnet, len(members))
			}
			host := simFirstTargetHost + len(members[ps.Subnet]) - 1
			st.addrs = append(st.addrs, simAddr(ps.Subnet, host))
			st.src = append(st.src, simAddr(ps.Subnet, simIniHost))
			st.ports = append(st.ports, uint8(ps.Subnet+1))
			tp = append(tp, ib(ps.Subnet, host, ps.PKeys))
			members[ps.Subnet] = append(members[ps.Subnet], sim.PortRef{Device: spec.Name, Port: uint8(p + 1)})
		}
		if err := fab.AddDevice(st.Name, tp...); err != nil {
			return nil, err
		}
		s.Targets = append(s.Targets, st)
	}
	for _, refs := range members {
		if len(refs) < 2 {
			// A subnet without a target: the port stays down (no link).
			s.Subnets, s.SMs = append(s.Subnets, nil), append(s.SMs, nil)
			continue
		}
		l, err := fab.Connect(refs...)
		if err != nil {
			return nil, err
		}
		l.SetLatency(latency)
		sm, err := fab.AddSubnetManager(l, sim.SMConfig{LID: simSMLID})
		if err != nil {
			return nil, err
		}
		s.Subnets, s.SMs = append(s.Subnets, l), append(s.SMs, sm)
	}
	for ti, spec := range topo.Targets {
		st := s.Targets[ti]
		if st.dev, err = fab.OpenDevice(st.Name); err != nil {
			return nil, err
		}
		st.Target = srptest.New(srptest.Config{Logger: log.With("target", st.Name)})
		for p, ps := range spec.Ports {
			st.Links = append(st.Links, s.Subnets[ps.Subnet])
			st.sms = append(st.sms, s.SMs[ps.Subnet])
			port, err := st.Target.AddPort(st.dev, netip.AddrPortFrom(st.addrs[p], simTargetPort))
			if err != nil {
				return nil, err
			}
			st.Ports = append(st.Ports, port)
			gid, err := st.dev.GID(uint8(p+1), 0)
			if err != nil {
				return nil, err
			}
			st.gids = append(st.gids, gid)
		}
		// The DM agents present the target as ib_srpt does: one IOC whose
		// service is SRP.T10:<service GUID>.
		ctl := sim.SRPTController(st.Target.ServiceGUID(), srptest.DefaultMaxReqSize)
		for p, ps := range spec.Ports {
			ref := sim.PortRef{Device: st.Name, Port: uint8(p + 1)}
			if _, err := fab.AddDMAgent(ref, ctl); err != nil {
				return nil, err
			}
			if ps.OutOfService {
				if err := st.SetInService(p, false); err != nil {
					return nil, err
				}
			}
		}
		st.LU, err = st.Target.AddLU(srptest.LUConfig{
			LUN: simLUN, BlockSize: simBlockSize, Blocks: simBlocks,
			Serial: fmt.Sprintf("SRPMPATHD-SIM-%c", 'A'+ti), Product: "srp-mpathd sim",
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

// initiatorPorts are the ports discovery scans: the initiator's (the
// fabric also holds the targets' devices, which a host would not see).
func (s *SimFabric) initiatorPorts() []discovery.PortRef {
	var out []discovery.PortRef
	for i, l := range s.Subnets {
		if l != nil {
			out = append(out, discovery.PortRef{Device: simInitiator, Port: uint8(i + 1)})
		}
	}
	return out
}

// endpoints returns every path of the topology (target by target), with
// the target port ids the targets are known to have: the topology
// hard-wired, used when discovery is off.
func (s *SimFabric) endpoints(ps config.PathSettings, log *slog.Logger) []*endpoint {
	var eps []*endpoint
	for _, t := range s.Targets {
		for p := range t.Ports {
			eps = append(eps, s.endpoint(t, p, t.Target.PortID(), 0, ps, log))
		}
	}
	return eps
}

// endpointOf maps a discovered target to the path it is: the target port
// with its GID, reached from the local port it was found through. The
// login uses what discovery found (target port id, maximum IU); the
// RDMA/CM addresses are the subnet's IPoIB addresses.
func (s *SimFabric) endpointOf(dt discovery.Target, ps config.PathSettings, log *slog.Logger) (*endpoint, error) {
	for _, t := range s.Targets {
		for p, g := range t.gids {
			if g == dt.DGID && dt.Local.Device == simInitiator && dt.Local.Port == t.ports[p] {
				pid := srp.TargetPortID{IDExt: dt.IDExt, IOCGUID: dt.IOCGUID}
				return s.endpoint(t, p, pid, dt.MaxIUSize, ps, log), nil
			}
		}
	}
	return nil, fmt.Errorf("%w: no simulated target port has GID %v on %v", ErrUnknownTarget, dt.DGID, dt.Local)
}

// endpoint is path p (0-based) of target t; ps gives the RC transport
// settings.
func (s *SimFabric) endpoint(t *SimTarget, p int, pid srp.TargetPortID, maxIU int, ps config.PathSettings, log *slog.Logger) *endpoint {
	ack, retry := uint8(ps.AckTimeout), uint8(min(max(ps.RetryCount, 0), maxRetryCount))
	src, dst, port, n := t.src[p], netip.AddrPortFrom(t.addrs[p], simTargetPort), t.ports[p], p+1
	return &endpoint{
		target: t.Name, desc: fmt.Sprintf("%s.%d", t.Name, n), tport: fmt.Sprintf("%s.%d", t.Name, n),
		pathID:  func(dev string) string { return PathID(dev, t.Name, n) },
		dev:     s.Initiator,
		devName: simInitiator,
		port:    port,
		dgid:    t.gids[p],
		// The sim channels have at least their fixed depth, above
		// the runners' queue depth.
		dial: func(ctx context.Context, queue, depth int) (*srp.Channel, error) {
			return srp.Dial(ctx, s.Initiator, srp.ChannelParams{
				Src: src, Dst: dst,
				InitiatorExt: simInitiatorExt + uint64(queue), TargetPortID: pid, TargetMaxIU: maxIU,
				QueueDepth: max(depth, simChanDepth), Immediate: true, MultiChannel: true, Port: port,
				AckTimeout: ack, RetryCount: retry, Logger: log,
			})
		},
	}
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
