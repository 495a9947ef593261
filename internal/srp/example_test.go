package srp_test

import (
	"fmt"

	"github.com/srp-mpathd/srp-mpathd/internal/srp"
)

// A channel builds each SRP_CMD in place in its registered transmit buffer;
// Encode never grows the buffer, so the bytes posted are the bytes written.
func ExampleCmd_Encode() {
	txIU := make([]byte, 8260) // one preallocated, registered TX IU
	cmd := srp.Cmd{
		Tag: 7,
		LUN: srp.LUNFromInt(1),
		CDB: []byte{0x28, 0, 0, 0, 0, 0x10, 0, 0, 0x08, 0}, // READ(10)
		DataIn: srp.DataDesc{Format: srp.DescDirect,
			Direct: srp.DirectBuf{Addr: 0x7f0000001000, Key: 0x1234, Len: 4096}},
	}
	n, err := cmd.Encode(txIU)
	if err != nil {
		panic(err)
	}
	fmt.Printf("send %d bytes, buf_fmt %#02x\n", n, txIU[5])
	// Output: send 64 bytes, buf_fmt 0x01
}

// A receive path peeks at the opcode, then decodes into a value it reuses.
func ExampleRsp_Decode() {
	rxIU := []byte{
		0xc1, 0, 0, 0, 0, 0, 0, 1, 7, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0x02, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3,
		0, 0, 0, 0, 0x70, 0, 0x05,
	}
	var rsp srp.Rsp // one per receive slot
	if op, _ := srp.PeekOpcode(rxIU); op != srp.OpRsp {
		return
	}
	if err := rsp.Decode(rxIU); err != nil {
		panic(err)
	}
	fmt.Println(rsp.Tag, rsp.Flags, rsp.Status, rsp.ReqLimDelta, len(rsp.ValidSense()))
	// Output: 0x7 SNSVALID 2 1 3
}
