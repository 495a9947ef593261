package srp

import "fmt"

// TMFunc is the task management function of SRP_TSK_MGMT.
type TMFunc uint8

const (
	TMAbortTask    TMFunc = 0x01 // SRP_TSK_ABORT_TASK
	TMAbortTaskSet TMFunc = 0x02 // SRP_TSK_ABORT_TASK_SET
	TMClearTaskSet TMFunc = 0x04 // SRP_TSK_CLEAR_TASK_SET
	TMLUNReset     TMFunc = 0x08 // SRP_TSK_LUN_RESET
	TMClearACA     TMFunc = 0x40 // SRP_TSK_CLEAR_ACA
)

func (f TMFunc) String() string {
	switch f {
	case TMAbortTask:
		return "ABORT_TASK"
	case TMAbortTaskSet:
		return "ABORT_TASK_SET"
	case TMClearTaskSet:
		return "CLEAR_TASK_SET"
	case TMLUNReset:
		return "LUN_RESET"
	case TMClearACA:
		return "CLEAR_ACA"
	}
	return fmt.Sprintf("TMFunc(%#02x)", uint8(f))
}

// TskMgmt is SRP_TSK_MGMT (48 bytes). The target answers with an SRP_RSP
// whose tag is Tag (see Rsp.TMResponse).
type TskMgmt struct {
	SolNot uint8
	// Tag identifies this request; ib_srp sets TagTskMgmt in it.
	Tag  Tag
	LUN  LUN
	Func TMFunc
	// TaskTag is the tag of the command to abort (ABORT_TASK), encoded
	// like every Tag; ib_srp sends TagNoReq for a LUN reset.
	TaskTag Tag
}

const (
	tmSolNot  = 1
	tmTag     = 8
	tmLUN     = 20
	tmFunc    = 30
	tmTaskTag = 32
)

func (*TskMgmt) Opcode() Opcode { return OpTskMgmt }
func (*TskMgmt) Len() int       { return TskMgmtLen }

func (t *TskMgmt) Encode(b []byte) (int, error) {
	if err := prepDst(b, OpTskMgmt, TskMgmtLen); err != nil {
		return 0, err
	}
	b[0] = byte(OpTskMgmt)
	b[tmSolNot] = t.SolNot
	putTag(b[tmTag:], t.Tag)
	copy(b[tmLUN:], t.LUN[:])
	b[tmFunc] = byte(t.Func)
	putTag(b[tmTaskTag:], t.TaskTag)
	return TskMgmtLen, nil
}

func (t *TskMgmt) AppendTo(b []byte) ([]byte, error) {
	all, tail := grow(b, TskMgmtLen)
	n, err := t.Encode(tail)
	return appendEnc(b, all, n, err)
}

func (t *TskMgmt) Decode(b []byte) error {
	if err := checkIU(b, OpTskMgmt, TskMgmtLen); err != nil {
		return err
	}
	*t = TskMgmt{
		SolNot:  b[tmSolNot],
		Tag:     getTag(b[tmTag:]),
		Func:    TMFunc(b[tmFunc]),
		TaskTag: getTag(b[tmTaskTag:]),
	}
	copy(t.LUN[:], b[tmLUN:])
	return nil
}
