package tail

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"

	"github.com/k2-market-data/k2/internal/record"
)

// Event is one record of a subscription, with the stream position after
// it: a subscriber that resumes from ID receives what followed it.
type Event struct {
	Row record.Row
	ID  string
}

// Sub follows a kind's records as the tail receives them.
type Sub struct {
	t       *Tail
	kt      *kindTail
	symbols []string
	pos     map[tp]int64 // next offset to send, per partition
	wake    chan struct{}
}

// Subscribe follows k's records of symbols (none: all). resume is an
// event ID from an earlier subscription (Last-Event-ID): the records
// after it are sent first; "" starts with the next record to arrive.
func (t *Tail) Subscribe(k record.Any, symbols []string, resume string) (*Sub, error) {
	kt := t.kinds[k.Describe().Index()]
	if kt == nil {
		return nil, fmt.Errorf("%s has no stream of events", k.Describe().Table.Name)
	}
	s := &Sub{t: t, kt: kt, symbols: symbols, pos: map[tp]int64{}, wake: make(chan struct{}, 1)}
	var from map[tp]int64
	if resume != "" {
		t.mu.Lock()
		topics := map[uint32]string{}
		for key := range t.parts {
			topics[topicHash(key.topic)] = key.topic
		}
		t.mu.Unlock()
		var err error
		if from, err = parseID(resume, topics); err != nil {
			return nil, err
		}
	}
	kt.mu.RLock()
	t.mu.Lock()
	for key, pt := range t.parts {
		if pt.kind != kt {
			continue
		}
		switch off, ok := from[key]; {
		case ok:
			s.pos[key] = off
		case resume != "": // a partition the earlier subscription did not know
			s.pos[key] = pt.low
		default:
			s.pos[key] = pt.next
		}
	}
	t.mu.Unlock()
	kt.mu.RUnlock()
	t.subsMu.Lock()
	t.subs[s] = struct{}{}
	t.subsMu.Unlock()
	s.wake <- struct{}{} // send what a resume asks for at once
	return s, nil
}

// Close ends the subscription.
func (s *Sub) Close() {
	s.t.subsMu.Lock()
	delete(s.t.subs, s)
	s.t.subsMu.Unlock()
}

// ErrGap is returned (with the events that follow it) when records a
// resumed subscription asked for were already evicted.
var ErrGap = errors.New("records after the resume point were evicted from memory; read them from the lake")

// Next waits for records and returns them, each with its ID, in offset
// order per partition (partitions interleaved by event time).
func (s *Sub) Next(ctx context.Context) ([]Event, error) {
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.wake:
		}
		evs, gap := s.collect(ctx)
		if gap {
			return evs, ErrGap
		}
		if len(evs) > 0 {
			return evs, nil
		}
	}
}

func (s *Sub) collect(ctx context.Context) ([]Event, bool) {
	kt, t := s.kt, s.t
	kt.mu.RLock()
	defer kt.mu.RUnlock()
	// New partitions start with their first held record.
	t.mu.Lock()
	var gap bool
	for key, pt := range t.parts {
		if pt.kind != kt {
			continue
		}
		off, ok := s.pos[key]
		if !ok {
			off = pt.low
		}
		if off < pt.low {
			gap, off = true, pt.low
		}
		s.pos[key] = off
	}
	t.mu.Unlock()
	type pending struct {
		key  tp
		rows []record.Row
		offs []int64
		next int64
	}
	byPart := map[tp]*pending{}
	for _, g := range kt.of(s.symbols) {
		for _, sr := range g {
			key := sr.part.tp
			p := byPart[key]
			if p == nil {
				p = &pending{key: key, next: sr.part.next}
				byPart[key] = p
			}
			from := s.pos[key]
			i, _ := slices.BinarySearchFunc(sr.entries, from, func(e entry, off int64) int {
				return int(min(max(e.off-off, -1), 1))
			})
			for ; i < len(sr.entries) && sr.entries[i].off < p.next; i++ {
				if row, ok := t.decode(ctx, kt, &sr.entries[i]); ok {
					p.rows, p.offs = append(p.rows, row), append(p.offs, sr.entries[i].off)
				}
			}
		}
	}
	// Order each partition's records by offset, then interleave the
	// partitions by event time, numbering each event with the position
	// after it.
	var parts []*pending
	for _, p := range byPart {
		idx := make([]int, len(p.rows))
		for i := range idx {
			idx[i] = i
		}
		slices.SortFunc(idx, func(a, b int) int { return int(min(max(p.offs[a]-p.offs[b], -1), 1)) })
		rows, offs := make([]record.Row, len(idx)), make([]int64, len(idx))
		for j, i := range idx {
			rows[j], offs[j] = p.rows[i], p.offs[i]
		}
		p.rows, p.offs = rows, offs
		parts = append(parts, p)
	}
	var out []Event
	heads := make([]int, len(parts))
	for {
		best := -1
		for i, p := range parts {
			if heads[i] < len(p.rows) && (best < 0 || p.rows[heads[i]].Time < parts[best].rows[heads[best]].Time) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		p := parts[best]
		s.pos[p.key] = p.offs[heads[best]] + 1
		out = append(out, Event{Row: p.rows[heads[best]], ID: s.id()})
		heads[best]++
	}
	for _, p := range parts { // past what did not match, too
		s.pos[p.key] = max(s.pos[p.key], p.next)
	}
	if len(out) > 0 {
		out[len(out)-1].ID = s.id()
	}
	return out, gap
}

// id encodes the subscription's position, every partition's next offset,
// compactly (it travels with every event): per partition, sorted, a
// 32-bit hash of the topic's name, the partition and the offset as
// varints, all in URL-safe base64.
func (s *Sub) id() string {
	keys := make([]tp, 0, len(s.pos))
	for k := range s.pos {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b tp) int {
		return cmp.Or(strings.Compare(a.topic, b.topic), cmp.Compare(a.partition, b.partition))
	})
	b := make([]byte, 0, 16*len(keys))
	for _, k := range keys {
		b = binary.BigEndian.AppendUint32(b, topicHash(k.topic))
		b = binary.AppendUvarint(b, uint64(k.partition))
		b = binary.AppendUvarint(b, uint64(s.pos[k]))
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func topicHash(topic string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(topic))
	return h.Sum32()
}

// parseID reads an event id against the topics the tail knows (by their
// hashes); a topic it does not know is left out, so its partitions start
// with their first held record.
func parseID(id string, topics map[uint32]string) (map[tp]int64, error) {
	bad := fmt.Errorf("Last-Event-ID %.40q is not an event id K2 issued", id)
	b, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil || len(id) > 64<<10 {
		return nil, bad
	}
	out := map[tp]int64{}
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, bad
		}
		h := binary.BigEndian.Uint32(b)
		b = b[4:]
		p, n := binary.Uvarint(b)
		if n <= 0 || p > 1<<31-1 {
			return nil, bad
		}
		b = b[n:]
		off, n := binary.Uvarint(b)
		if n <= 0 || off > 1<<63-1 {
			return nil, bad
		}
		b = b[n:]
		if topic, ok := topics[h]; ok {
			out[tp{topic, int32(p)}] = int64(off)
		}
	}
	return out, nil
}
