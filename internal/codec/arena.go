package codec

import "unsafe"

// Arena holds the text of many decoded records in a few shared blocks, so
// that a batch of records costs a block allocation per some hundreds of
// records instead of one per record. Text handed out is never written
// again: a block is only appended to, up to its capacity, then replaced.
// A record's strings keep their block alive; an Arena is not safe for
// concurrent use.
type Arena struct {
	block []byte
}

// arenaBlock is a block's size: large enough that allocations are rare,
// small enough that a string kept longer than its batch (a map key) keeps
// little memory alive.
const arenaBlock = 64 << 10

// String returns b as a string held in the arena (nil: b copied on its own).
func (a *Arena) String(b []byte) string {
	if a == nil || len(b) > arenaBlock/8 {
		return string(b)
	}
	if len(b) == 0 {
		return ""
	}
	if len(b) > cap(a.block)-len(a.block) {
		a.block = make([]byte, 0, arenaBlock)
	}
	n := len(a.block)
	a.block = append(a.block, b...)
	return unsafe.String(&a.block[n], len(b))
}
