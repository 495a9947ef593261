//go:build lab

package scenarios

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/srp-mpathd/srp-mpathd/internal/srp"
	"github.com/srp-mpathd/srp-mpathd/internal/srp/scsi"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs"
	"github.com/srp-mpathd/srp-mpathd/internal/verbs/rdma"
	"github.com/srp-mpathd/srp-mpathd/test/lab/daemonlab"
	"github.com/srp-mpathd/srp-mpathd/test/lab/labkit"
	"github.com/srp-mpathd/srp-mpathd/test/lab/srplab"
)

// e2e-srp-channel (issue 7 item 3, stage 1): srp-mpathd's SRP channel
// alone (srp.Channel over internal/verbs/rdma) against the real target,
// LIO ib_srpt on the srplab fabric. The other e2e scenarios run the daemon
// itself (daemonlab, e2e_failover_lab_test.go).
//
// The channel check runs in a child process (the test binary re-executed
// with -test.run selecting the same test and envE2EChild set): librdmacm
// keeps the verbs context of every RDMA device open for the life of the
// process, and rxe cannot disassociate a context, so srplab's `rdma link
// delete` at cleanup would wait for the test process to exit. The child
// speaks to the parent in "E2E {json}" lines on stdout; its log goes to
// stderr.

const (
	envE2EChild = "LAB_E2E_CHILD"
	e2eLinePfx  = "E2E "
	e2eLUSize   = 64 << 20
	// e2eAckTimeout and e2eRetryCount: the RC QP's ACK timeout exponent
	// (4.096 µs × 2^15 ≈ 134 ms per try) and retries; silent loss is the
	// heartbeat's job, the retry budget only bounds a lost transmission.
	e2eAckTimeout = 15
	e2eRetryCount = 3
	// e2eDepth is the channel queue depth of the channel check.
	e2eDepth = 16
	// e2eVerifyBlocks 4 KiB blocks are written and read back per path.
	e2eVerifyBlocks = 64
	e2eBigIO        = 64 << 10 // one write/read pair past the immediate-data size
	e2eChildStart   = 3 * time.Minute
	e2eChildStop    = time.Minute
	e2eCmdWait      = 30 * time.Second
	e2eLineBuffer   = 64
)

// e2eModeChannel is the child's one mode: log in on every path, check,
// print the result, exit.
const e2eModeChannel = "channel"

// e2ePath is one path as the child dials it.
type e2ePath struct {
	Dev          string         `json:"dev"` // local rxe device
	Src          netip.Addr     `json:"src"`
	Dst          netip.AddrPort `json:"dst"`
	InitiatorExt uint64         `json:"initiator_ext"`
	IDExt        uint64         `json:"id_ext"`
	IOCGUID      uint64         `json:"ioc_guid"`
	LUN          uint64         `json:"lun"`
}

// e2eSpec tells the child what to do.
type e2eSpec struct {
	Mode  string    `json:"mode"`
	Paths []e2ePath `json:"paths"`
}

// e2ePathResult is what the channel check saw on one path.
type e2ePathResult struct {
	LoginMS      float64 `json:"login_ms"`
	WWID         string  `json:"wwid"`
	Vendor       string  `json:"vendor"`
	Product      string  `json:"product"`
	Blocks       uint64  `json:"blocks"`
	BlockSize    uint32  `json:"block_size"`
	MaxITIU      int     `json:"max_it_iu"`
	MaxTIIU      int     `json:"max_ti_iu"`
	InitialLim   int     `json:"initial_req_lim"`
	ReqLim       int     `json:"req_lim"`
	Immediate    bool    `json:"immediate"`
	MultiChan    string  `json:"multi_chan"`
	CredReqs     uint64  `json:"cred_reqs"`
	AERs         uint64  `json:"aers"`
	NoCredit     uint64  `json:"no_credit"`
	IOs          int     `json:"ios"`
	VerifyErrors int     `json:"verify_errors"`
	HeartbeatUS  float64 `json:"heartbeat_us"`
	ChannelErr   string  `json:"channel_err,omitempty"`
	Initiator    string  `json:"initiator"`
}

// e2eMsg is one line from the child.
type e2eMsg struct {
	Kind  string          `json:"kind"` // "result", "error"
	Err   string          `json:"err,omitempty"`
	Paths []e2ePathResult `json:"paths,omitempty"`
	At    time.Time       `json:"at"`
}

// e2ePaths describes every path of lab for the child, with initiator_ext
// ext (which must have an ACL: Options.InitiatorExts).
func e2ePaths(lab *srplab.Lab, ext uint64) []e2ePath {
	tp := lab.TargetPortID()
	var out []e2ePath
	for i := range lab.Paths {
		p := &lab.Paths[i]
		out = append(out, e2ePath{Dev: p.IniDev, Src: p.IniAddr, Dst: p.Dest(lab.Port), InitiatorExt: ext,
			IDExt: tp.IDExt, IOCGUID: tp.IOCGUID, LUN: lab.Targets[p.Target].LUs[0].LUN})
	}
	return out
}

func (p *e2ePath) params(depth int, log *slog.Logger) srp.ChannelParams {
	return srp.ChannelParams{
		Src: p.Src, Dst: p.Dst, InitiatorExt: p.InitiatorExt,
		TargetPortID: srp.TargetPortID{IDExt: p.IDExt, IOCGUID: p.IOCGUID},
		QueueDepth:   depth, Immediate: true,
		AckTimeout: e2eAckTimeout, RetryCount: e2eRetryCount, Logger: log,
	}
}

// ---- parent side -------------------------------------------------------

// e2eProc is a running child.
type e2eProc struct {
	t     *testing.T
	cmd   *exec.Cmd
	lines chan e2eMsg
	log   *e2eLog
	done  chan struct{}
	err   error // cmd.Wait's, valid after done
}

type e2eLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *e2eLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *e2eLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startE2E re-executes the test binary as the child of the calling test.
// A cleanup stops it (SIGTERM) and logs its output when t failed.
func startE2E(t *testing.T, spec e2eSpec) *e2eProc {
	t.Helper()
	js, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	p := &e2eProc{t: t, lines: make(chan e2eMsg, e2eLineBuffer), log: &e2eLog{}, done: make(chan struct{})}
	p.cmd = exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.timeout=0")
	p.cmd.Env = append(os.Environ(), envE2EChild+"="+string(js))
	p.cmd.Stderr = p.log
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			js, ok := strings.CutPrefix(line, e2eLinePfx)
			if !ok {
				fmt.Fprintln(p.log, line)
				continue
			}
			var m e2eMsg
			if err := json.Unmarshal([]byte(js), &m); err != nil {
				fmt.Fprintf(p.log, "bad line %q: %v\n", line, err)
				continue
			}
			select {
			case p.lines <- m:
			default:
				fmt.Fprintf(p.log, "dropped line %s\n", line)
			}
		}
		p.err = p.cmd.Wait()
		close(p.lines)
		close(p.done)
	}()
	t.Cleanup(func() {
		if err := p.stop(); err != nil {
			t.Error(err)
		}
		t.Logf("child %d log:\n%s", p.cmd.Process.Pid, p.log.String())
	})
	return p
}

// next waits for the child's next line of kind kind (others are skipped).
func (p *e2eProc) next(kind string, limit time.Duration) (e2eMsg, error) {
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		select {
		case m, ok := <-p.lines:
			if !ok {
				<-p.done
				return e2eMsg{}, fmt.Errorf("child exited (%v) before a %q line", p.err, kind)
			}
			if m.Kind == "error" {
				return m, fmt.Errorf("child: %s", m.Err)
			}
			if m.Kind == kind {
				return m, nil
			}
		case <-timer.C:
			return e2eMsg{}, fmt.Errorf("no %q line from the child within %v", kind, limit)
		}
	}
}

// stop sends SIGTERM and waits for the child; nil if it exited 0.
func (p *e2eProc) stop() error {
	select {
	case <-p.done:
		return p.exitErr()
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.exitErr()
	case <-time.After(e2eChildStop):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("child %d did not stop within %v of SIGTERM", p.cmd.Process.Pid, e2eChildStop)
	}
}

func (p *e2eProc) exitErr() error {
	if p.err != nil {
		return fmt.Errorf("child %d: %w", p.cmd.Process.Pid, p.err)
	}
	return nil
}

// ---- child side ----------------------------------------------------------

// e2eChild runs the child's work and exits when the process is a child
// started by startE2E; it returns false in the parent.
func e2eChild(t *testing.T) bool {
	js := os.Getenv(envE2EChild)
	if js == "" {
		return false
	}
	t.Helper()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var spec e2eSpec
	if err := json.Unmarshal([]byte(js), &spec); err != nil {
		emit(e2eMsg{Kind: "error", Err: "bad " + envE2EChild + ": " + err.Error()})
		os.Exit(2)
	}
	var err error
	switch spec.Mode {
	case e2eModeChannel:
		err = childChannel(spec, log)
	default:
		err = fmt.Errorf("unknown mode %q", spec.Mode)
	}
	if err != nil {
		log.Error("child failed", "err", err)
		emit(e2eMsg{Kind: "error", Err: err.Error()})
		os.Exit(1)
	}
	os.Exit(0)
	return true
}

var emitMu sync.Mutex

// emit prints one line for the parent.
func emit(m e2eMsg) {
	m.At = time.Now()
	b, err := json.Marshal(m)
	if err != nil {
		b, _ = json.Marshal(e2eMsg{Kind: "error", Err: "encode: " + err.Error()})
	}
	emitMu.Lock()
	defer emitMu.Unlock()
	fmt.Println(e2eLinePfx + string(b))
}

// openDevices opens the rdma device of every path (each once).
func openDevices(paths []e2ePath, log *slog.Logger) (map[string]*rdma.Device, func(), error) {
	fab, err := rdma.Open(log)
	if err != nil {
		return nil, nil, err
	}
	devs := map[string]*rdma.Device{}
	closeAll := func() {
		for name, d := range devs {
			if err := d.Close(); err != nil {
				log.Warn("close device", "device", name, "err", err)
			}
		}
	}
	for _, p := range paths {
		if devs[p.Dev] != nil {
			continue
		}
		d, err := fab.OpenDevice(p.Dev)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		devs[p.Dev] = d
	}
	return devs, closeAll, nil
}

// chanRunner submits commands on one channel and waits for their results
// (control-plane style: the caller's goroutine polls, sleeping on the
// completion fd).
type chanRunner struct {
	c   *srp.Channel
	ep  int
	res []srp.Result
}

func newChanRunner(c *srp.Channel) (*chanRunner, error) {
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	fd := c.NotifyFD()
	if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, fd, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)}); err != nil {
		syscall.Close(ep)
		return nil, err
	}
	return &chanRunner{c: c, ep: ep, res: make([]srp.Result, 64)}, nil
}

func (r *chanRunner) close() { syscall.Close(r.ep) }

// poll takes results until done returns true or limit passes.
func (r *chanRunner) poll(limit time.Duration, take func(srp.Result), done func() bool) error {
	deadline := time.Now().Add(limit)
	for !done() {
		n := r.c.Poll(r.res)
		for _, x := range r.res[:n] {
			take(x)
		}
		if n > 0 {
			continue
		}
		if err := r.c.ArmNotify(); err != nil {
			return err
		}
		if n = r.c.Poll(r.res); n > 0 {
			for _, x := range r.res[:n] {
				take(x)
			}
			continue
		}
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("%d commands still outstanding after %v (channel: %v)", r.c.Outstanding(), limit, r.c.Err())
		}
		var evs [1]syscall.EpollEvent
		if _, err := syscall.EpollWait(r.ep, evs[:], int(min(left, 100*time.Millisecond)/time.Millisecond)+1); err != nil && !errors.Is(err, syscall.EINTR) {
			return err
		}
		if err := r.c.AckNotify(); err != nil {
			return err
		}
	}
	return nil
}

// run submits cmds (at most the channel's depth at a time) and returns the
// results in cmds order. Command IDs must be the index in cmds.
func (r *chanRunner) run(cmds []srp.Command) ([]srp.Result, error) {
	out := make([]srp.Result, len(cmds))
	next, got := 0, 0
	stuckSince := time.Time{}
	for got < len(cmds) {
		for next < len(cmds) {
			err := r.c.Submit(&cmds[next])
			if errors.Is(err, srp.ErrNoTag) || errors.Is(err, srp.ErrNoCredit) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("submit %d: %w", next, err)
			}
			next++
		}
		if next == got {
			// Every result is in, yet no tag or credit: a tag is free
			// again only once its SEND completion was polled too, and a
			// response may overtake it. Poll on until one is.
			if stuckSince.IsZero() {
				stuckSince = time.Now()
			} else if time.Since(stuckSince) > e2eCmdWait {
				return nil, fmt.Errorf("no tag or credit for %v with nothing outstanding (%+v)", e2eCmdWait, r.c.Info())
			}
			r.c.Poll(r.res)
			continue
		}
		stuckSince = time.Time{}
		before := got
		err := r.poll(e2eCmdWait, func(x srp.Result) { out[x.ID] = x; got++ }, func() bool { return got > before })
		if err != nil {
			return nil, err
		}
	}
	for i := range out {
		if out[i].Err != nil {
			return out, fmt.Errorf("command %d (opcode %#x): %w", i, cmds[i].CDB[0], out[i].Err)
		}
		if out[i].Status != 0 {
			s, _ := scsi.ParseSense(out[i].Sense[:out[i].SenseLen])
			return out, fmt.Errorf("command %d (opcode %#x): status %v, sense %v", i, cmds[i].CDB[0], scsi.Status(out[i].Status), s)
		}
	}
	return out, nil
}

// dataCmd describes a command on buf[off:off+n].
func dataCmd(id uint64, lun uint64, buf verbs.Buffer, off, n int, dir srp.DataDir) srp.Command {
	return srp.Command{ID: id, LUN: lun, Dir: dir, Addr: buf.Addr() + uint64(off), RKey: buf.RKey(), Len: uint32(n),
		Local: buf.Bytes()[off : off+n], LKey: buf.LKey()}
}

// luIdentity is what the identity commands returned on one path.
type luIdentity struct {
	inq  scsi.InquiryData
	wwid string
	cap  scsi.Capacity
}

const (
	inquiryAlloc = 96
	vpdAlloc     = 255
)

// identify runs INQUIRY, INQUIRY VPD 0x83 and READ CAPACITY(16).
func identify(r *chanRunner, buf verbs.Buffer, lun uint64) (luIdentity, error) {
	cmds := []srp.Command{
		dataCmd(0, lun, buf, 0, inquiryAlloc, srp.DataIn),
		dataCmd(1, lun, buf, 4096, vpdAlloc, srp.DataIn),
		dataCmd(2, lun, buf, 8192, scsi.ReadCapacity16Len, srp.DataIn),
	}
	cmds[0].CDBLen = scsi.Inquiry(&cmds[0].CDB, inquiryAlloc)
	cmds[1].CDBLen = scsi.InquiryVPD(&cmds[1].CDB, scsi.PageDeviceID, vpdAlloc)
	cmds[2].CDBLen = scsi.ReadCapacity16(&cmds[2].CDB, scsi.ReadCapacity16Len)
	res, err := r.run(cmds)
	if err != nil {
		return luIdentity{}, err
	}
	var id luIdentity
	b := buf.Bytes()
	if id.inq, err = scsi.ParseInquiry(b[:inquiryAlloc-int(max(res[0].Residual, 0))]); err != nil {
		return id, err
	}
	did, err := scsi.ParseDeviceID(b[4096 : 4096+vpdAlloc-int(max(res[1].Residual, 0))])
	if err != nil {
		return id, err
	}
	if id.wwid, err = did.WWID(); err != nil {
		return id, err
	}
	if id.cap, err = scsi.ParseReadCapacity16(b[8192 : 8192+scsi.ReadCapacity16Len]); err != nil {
		return id, err
	}
	return id, nil
}

// pattern fills b with the content of block lba written by path w.
func pattern(b []byte, lba uint64, w int) {
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], lba<<20^uint64(i)<<4^uint64(w+1)*0x9e3779b97f4a7c15)
	}
}

// childChannel is stage 1: per path a channel, the identity, a heartbeat,
// writes of its own region and read-back of every path's region.
func childChannel(spec e2eSpec, log *slog.Logger) error {
	devs, closeDevs, err := openDevices(spec.Paths, log)
	if err != nil {
		return err
	}
	defer closeDevs()
	type pathRun struct {
		c   *srp.Channel
		r   *chanRunner
		buf verbs.Buffer
	}
	runs := make([]pathRun, len(spec.Paths))
	defer func() {
		for _, pr := range runs {
			if pr.r != nil {
				pr.r.close()
			}
			if pr.c != nil {
				_ = pr.c.Close()
			}
			if pr.buf != nil {
				_ = pr.buf.Close()
			}
		}
	}()
	results := make([]e2ePathResult, len(spec.Paths))
	const blk = 4096
	region := e2eVerifyBlocks * blk
	for i, p := range spec.Paths {
		dev := devs[p.Dev]
		ctx, cancel := context.WithTimeout(context.Background(), e2eCmdWait)
		t0 := time.Now()
		c, err := srp.Dial(ctx, dev, p.params(e2eDepth, log.With("path", i)))
		cancel()
		if err != nil {
			return fmt.Errorf("path %d (%s %v -> %v): login: %w", i, p.Dev, p.Src, p.Dst, err)
		}
		results[i].LoginMS = ms(time.Since(t0))
		runs[i].c = c
		if runs[i].r, err = newChanRunner(c); err != nil {
			return err
		}
		// identity scratch (12 KiB) + two regions + one big I/O
		if runs[i].buf, err = dev.AllocBuffer(3*blk+2*region+e2eBigIO, verbs.AccessData); err != nil {
			return err
		}
		info := c.Info()
		res := &results[i]
		res.MaxITIU, res.MaxTIIU, res.InitialLim, res.Immediate = info.MaxITIU, info.MaxTIIU, info.InitialReqLim, info.Immediate
		res.MultiChan = info.MultiChan.String()
		res.Initiator = info.InitiatorID.String()
		id, err := identify(runs[i].r, runs[i].buf, p.LUN)
		if err != nil {
			return fmt.Errorf("path %d: identity: %w", i, err)
		}
		res.WWID, res.Vendor, res.Product = id.wwid, id.inq.Vendor, id.inq.Product
		res.Blocks, res.BlockSize = id.cap.Blocks, id.cap.BlockSize
	}
	// Writes: path i writes e2eVerifyBlocks 4 KiB blocks of region i (4 KiB
	// goes as immediate data when granted), then one 64 KiB write past
	// the regions (a direct descriptor: the target RDMA-reads it).
	bsz := int(results[0].BlockSize)
	regionLBA := func(w int) uint64 { return uint64(w*region) / uint64(bsz) }
	bigLBA := func(w int) uint64 { return uint64(len(spec.Paths)*region+w*e2eBigIO) / uint64(bsz) }
	for i, p := range spec.Paths {
		pr := runs[i]
		b := pr.buf.Bytes()
		var cmds []srp.Command
		for k := range e2eVerifyBlocks {
			off := 3*blk + k*blk
			lba := regionLBA(i) + uint64(k*blk/bsz)
			pattern(b[off:off+blk], lba, i)
			c := dataCmd(uint64(len(cmds)), p.LUN, pr.buf, off, blk, srp.DataOut)
			c.CDBLen = scsi.RW(&c.CDB, true, lba, uint32(blk/bsz), false)
			cmds = append(cmds, c)
		}
		off := 3*blk + 2*region
		pattern(b[off:off+e2eBigIO], bigLBA(i), i)
		c := dataCmd(uint64(len(cmds)), p.LUN, pr.buf, off, e2eBigIO, srp.DataOut)
		c.CDBLen = scsi.RW(&c.CDB, true, bigLBA(i), uint32(e2eBigIO/bsz), false)
		cmds = append(cmds, c)
		if _, err := pr.r.run(cmds); err != nil {
			return fmt.Errorf("path %d: writes: %w", i, err)
		}
		results[i].IOs += len(cmds)
	}
	// Reads: every path reads every path's region and big block back.
	want := make([]byte, e2eBigIO)
	for i, p := range spec.Paths {
		pr := runs[i]
		b := pr.buf.Bytes()
		for w := range spec.Paths {
			var cmds []srp.Command
			for k := range e2eVerifyBlocks {
				off := 3*blk + region + k*blk
				clear(b[off : off+blk])
				c := dataCmd(uint64(len(cmds)), p.LUN, pr.buf, off, blk, srp.DataIn)
				c.CDBLen = scsi.RW(&c.CDB, false, regionLBA(w)+uint64(k*blk/bsz), uint32(blk/bsz), false)
				cmds = append(cmds, c)
			}
			off := 3*blk + 2*region
			clear(b[off : off+e2eBigIO])
			c := dataCmd(uint64(len(cmds)), p.LUN, pr.buf, off, e2eBigIO, srp.DataIn)
			c.CDBLen = scsi.RW(&c.CDB, false, bigLBA(w), uint32(e2eBigIO/bsz), false)
			cmds = append(cmds, c)
			if _, err := pr.r.run(cmds); err != nil {
				return fmt.Errorf("path %d: reads of region %d: %w", i, w, err)
			}
			results[i].IOs += len(cmds)
			for k := range e2eVerifyBlocks {
				off := 3*blk + region + k*blk
				pattern(want[:blk], regionLBA(w)+uint64(k*blk/bsz), w)
				if !bytes.Equal(b[off:off+blk], want[:blk]) {
					results[i].VerifyErrors++
				}
			}
			pattern(want, bigLBA(w), w)
			if !bytes.Equal(b[off:off+e2eBigIO], want) {
				results[i].VerifyErrors++
			}
		}
	}
	// Heartbeat: a zero-length RDMA WRITE, acked by the target's RC QP.
	for i := range spec.Paths {
		pr := runs[i]
		t0 := time.Now()
		seq, err := pr.c.Heartbeat()
		if err != nil {
			return fmt.Errorf("path %d: heartbeat: %w", i, err)
		}
		err = pr.r.poll(e2eCmdWait, func(srp.Result) {}, func() bool { return pr.c.HeartbeatAcked() >= seq })
		if err != nil {
			return fmt.Errorf("path %d: heartbeat %d not acked: %w", i, seq, err)
		}
		results[i].HeartbeatUS = float64(time.Since(t0).Microseconds())
		info := pr.c.Info()
		results[i].ReqLim, results[i].CredReqs, results[i].AERs, results[i].NoCredit = info.ReqLim, info.CredReqs, info.AERs, info.NoCredit
		if err := pr.c.Err(); err != nil {
			results[i].ChannelErr = err.Error()
		}
	}
	emit(e2eMsg{Kind: "result", Paths: results})
	return nil
}

// ---- stage 1 -------------------------------------------------------------

// TestE2ESRPChannel (e2e-srp-channel): srp.Dial over internal/verbs/rdma on
// both paths to LIO ib_srpt; INQUIRY, VPD 0x83 and READ CAPACITY(16) on
// each; 4 KiB writes (immediate data) and a 64 KiB write per path, every
// path reads every path's blocks back; a heartbeat per path.
//
// Figures: login_ms_p<i>, wwid_equal (1: both paths report the LU's WWID),
// capacity_equal, verify_errors, ios, heartbeat_us_p<i>, max_it_iu,
// max_ti_iu, req_lim (initial), immediate (1: granted), cred_reqs, aers.
func TestE2ESRPChannel(t *testing.T) {
	if e2eChild(t) {
		return
	}
	labkit.RequireVM(t)
	sc := labkit.Begin(t, "e2e-srp-channel")
	lab := srplab.Setup(t, srplab.Options{Paths: 2, LUs: 1, LUSize: e2eLUSize, InitiatorExts: []uint64{daemonlab.InitiatorExt}})
	lu := lab.Targets[0].LUs[0]
	if v, err := os.ReadFile("/sys/module/ib_srpt/parameters/srp_max_req_size"); err == nil {
		sc.Notef("ib_srpt srp_max_req_size=%s, srpt_service_guid=%#x, target port id %v", strings.TrimSpace(string(v)), lab.ServiceGUID, lab.TargetPortID())
	}
	if err := srplab.Mark("e2e-srp-channel start"); err != nil {
		t.Fatal(err)
	}
	p := startE2E(t, e2eSpec{Mode: e2eModeChannel, Paths: e2ePaths(lab, daemonlab.InitiatorExt)})
	m, err := p.next("result", e2eChildStart)
	sc.Notef("kernel log: %s", oneLine(srplab.KernelLog("e2e-srp-channel start", "srpt", "rxe", "target")))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Paths) != len(lab.Paths) {
		t.Fatalf("child reported %d paths, want %d", len(m.Paths), len(lab.Paths))
	}
	wwidEqual, capEqual, verify, ios := 1.0, 1.0, 0, 0
	for i, r := range m.Paths {
		sc.Notef("path %d (%s): initiator %s, login %.1f ms, %s %s WWID %s, %d blocks of %d, it_iu %d ti_iu %d req_lim %d->%d imm %v multichan %s, %d I/Os, %d verify errors, heartbeat %.0f µs, cred_req %d aer %d no_credit %d, channel err %q",
			i, lab.Paths[i].IniDev, r.Initiator, r.LoginMS, r.Vendor, r.Product, r.WWID, r.Blocks, r.BlockSize, r.MaxITIU, r.MaxTIIU,
			r.InitialLim, r.ReqLim, r.Immediate, r.MultiChan, r.IOs, r.VerifyErrors, r.HeartbeatUS, r.CredReqs, r.AERs, r.NoCredit, r.ChannelErr)
		sc.Figure(fmt.Sprintf("login_ms_p%d", i), r.LoginMS)
		sc.Figure(fmt.Sprintf("heartbeat_us_p%d", i), r.HeartbeatUS)
		if r.WWID != lu.MultipathWWID() {
			wwidEqual = 0
			t.Errorf("path %d: WWID %q, want the LU's %q", i, r.WWID, lu.MultipathWWID())
		}
		if r.Blocks*uint64(r.BlockSize) != uint64(lu.Size) || int(r.BlockSize) != lu.BlockSize {
			capEqual = 0
			t.Errorf("path %d: %d blocks of %d, want %d bytes in blocks of %d", i, r.Blocks, r.BlockSize, lu.Size, lu.BlockSize)
		}
		if r.ChannelErr != "" {
			t.Errorf("path %d: channel failed: %s", i, r.ChannelErr)
		}
		verify += r.VerifyErrors
		ios += r.IOs
	}
	r0 := m.Paths[0]
	sc.Figures(map[string]float64{
		"wwid_equal": wwidEqual, "capacity_equal": capEqual, "verify_errors": float64(verify), "ios": float64(ios),
		"max_it_iu": float64(r0.MaxITIU), "max_ti_iu": float64(r0.MaxTIIU), "req_lim": float64(r0.InitialLim),
		"immediate": b2f(r0.Immediate), "cred_reqs": float64(r0.CredReqs + m.Paths[1].CredReqs), "aers": float64(r0.AERs + m.Paths[1].AERs),
	})
	if verify != 0 {
		t.Errorf("%d verify errors", verify)
	}
	if err := p.stop(); err != nil {
		t.Error(err)
	}
}
