package codec

import "unsafe"

// Arena holds the text of many decoded records in a few shared blocks, so
// that a batch of records costs a block allocation per some hundreds of
// records instead of one per record. Text handed out is never written
// again: a block is only appended to, up to its capacity, then replaced.
// A record's strings keep their block alive; an Arena is not safe for
// concurrent use.
type Arena struct {
	block    []byte
	interned map[string]string
}

// maxInterned bounds the strings an arena interns; later ones are held
// like any other.
const maxInterned = 4096

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

// Intern returns b as a string shared by every call with the same bytes:
// symbols, exchanges and currencies repeat in nearly every record, and
// keeping one copy of each keeps them out of the blocks (and hot in cache
// when the batch is encoded).
func (a *Arena) Intern(b []byte) string {
	if s, ok := a.interned[string(b)]; ok {
		return s
	}
	if len(a.interned) >= maxInterned || len(b) > 64 {
		return a.String(b)
	}
	if a.interned == nil {
		a.interned = map[string]string{}
	}
	s := string(b)
	a.interned[s] = s
	return s
}
