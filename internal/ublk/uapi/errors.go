package uapi

import "strconv"

// DecodeError reports a kernel struct given fewer bytes than its size.
type DecodeError struct {
	Struct string
	Need   int
	Have   int
}

func (e *DecodeError) Error() string {
	return "uapi: decode " + e.Struct + ": need " + strconv.Itoa(e.Need) + " bytes, have " + strconv.Itoa(e.Have)
}
