package sink

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/lake"
	"github.com/k2-market-data/k2/internal/record"
)

// Where a table's stream stands, as the table, the topic and the consumer
// group each see it: what `k2 lake offsets show` prints and what `k2 lake
// offsets set` moves.

// Position is one partition's offsets.
type Position struct {
	Table     string `json:"table"`
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Recorded is the next offset the table records (nil: none), and
	// SnapshotID the snapshot that recorded it; Overridden is set when
	// the offsets were set by hand and no commit has followed.
	Recorded   *int64 `json:"recorded"`
	SnapshotID int64  `json:"snapshot_id,omitempty"`
	Overridden bool   `json:"overridden,omitempty"`
	// Start and End are the partition's log start and end (nil: the
	// broker was not reached or has no such partition); Group is the
	// consumer group's committed offset (nil: none).
	Start *int64 `json:"start"`
	End   *int64 `json:"end"`
	Group *int64 `json:"group"`
	// Problem says what is wrong, if anything.
	Problem string `json:"problem,omitempty"`
}

// Kafka is the cluster the positions are compared with: nil Admin leaves
// the topic's and the group's offsets out.
type Kafka struct {
	Admin  *kadm.Client
	Prefix string // the installation's topic prefix
	Group  string // the sinks' consumer group
}

// TopicTable returns the table a topic's records are stored in.
func TopicTable(topic, prefix string) (string, error) {
	base, ok := strings.CutPrefix(topic, prefix)
	if !ok {
		return "", fmt.Errorf("topic %q lacks the prefix %q (--topic-prefix)", topic, prefix)
	}
	_, kind, _, err := bus.ParseTopic(base)
	if err != nil {
		return "", err
	}
	return kind.Describe().Table.Name, nil
}

// Positions lists every partition of every topic the tables record or the
// broker holds records of for them, with a problem named where the table's offset
// cannot be where the topic is: past its end (the topic was recreated or
// truncated) or before its start (records deleted unread).
func Positions(ctx context.Context, l *lake.Lake, k Kafka, tables []string) ([]Position, error) {
	var out []Position
	var starts, ends kadm.ListedOffsets
	var group kadm.OffsetResponses
	var onBroker kadm.TopicDetails
	if k.Admin != nil {
		var err error
		if onBroker, err = k.Admin.ListTopics(ctx); err != nil {
			return nil, fmt.Errorf("kafka: list topics: %w", err)
		}
		if starts, err = k.Admin.ListStartOffsets(ctx, onBroker.Names()...); err != nil {
			return nil, fmt.Errorf("kafka: list start offsets: %w", err)
		}
		if ends, err = k.Admin.ListEndOffsets(ctx, onBroker.Names()...); err != nil {
			return nil, fmt.Errorf("kafka: list end offsets: %w", err)
		}
		// A group that never committed (no sink has run) has no offsets.
		if group, err = k.Admin.FetchOffsets(ctx, k.Group); err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
			return nil, fmt.Errorf("kafka: offsets of group %s: %w", k.Group, err)
		}
	}
	for _, name := range tables {
		if _, err := record.ByTable(name); err != nil {
			return nil, err
		}
		tbl, err := l.Load(ctx, name)
		if err != nil {
			return nil, err
		}
		cur, overridden := lake.CurrentOffsets(tbl)
		var snapID int64
		if !overridden {
			if _, snap := lake.RecordedOffsets(tbl, tbl.CurrentSnapshot()); snap != nil {
				snapID = snap.SnapshotID
			}
		} else if ov, ok := lake.ActiveOverride(tbl); ok {
			snapID = ov.SnapshotID
		}
		parts := map[string]map[int32]bool{}
		add := func(t string, p int32) {
			if parts[t] == nil {
				parts[t] = map[int32]bool{}
			}
			parts[t][p] = true
		}
		for t, ps := range cur {
			for p := range ps {
				add(t, p)
			}
		}
		for _, td := range onBroker {
			if tn, err := TopicTable(td.Topic, k.Prefix); err == nil && tn == name && td.Err == nil {
				for p := range td.Partitions {
					add(td.Topic, p)
				}
			}
		}
		for _, t := range slices.Sorted(maps.Keys(parts)) {
			for _, p := range slices.Sorted(maps.Keys(parts[t])) {
				pos := Position{Table: name, Topic: t, Partition: p, Overridden: overridden}
				if off, ok := cur.Get(t, p); ok {
					pos.Recorded, pos.SnapshotID = &off, snapID
				}
				if o, ok := starts.Lookup(t, p); ok && o.Err == nil {
					pos.Start = &o.Offset
				}
				if o, ok := ends.Lookup(t, p); ok && o.Err == nil {
					pos.End = &o.Offset
				}
				if o, ok := group.Lookup(t, p); ok && o.Err == nil && o.At >= 0 {
					pos.Group = &o.At
				}
				if pos.Recorded == nil && pos.Group == nil && (pos.End == nil || *pos.End == 0) {
					continue // nothing was ever written or read there
				}
				pos.Problem = pos.problem(k.Admin != nil, onBroker.Has(t))
				out = append(out, pos)
			}
		}
	}
	return out, nil
}

func (p Position) problem(asked, topicExists bool) string {
	switch {
	case p.Recorded == nil || !asked:
		return ""
	case !topicExists:
		return "the topic is not on the broker: deleted?"
	case p.End != nil && *p.Recorded > *p.End:
		return "recorded beyond the topic's end: topic recreated or truncated? A sink refuses this partition until the offsets are set (k2 lake offsets set --to-start)"
	case p.Start != nil && *p.Recorded < *p.Start:
		return fmt.Sprintf("recorded before the topic's start: %d records were deleted before the sink read them", *p.Start-*p.Recorded)
	}
	return ""
}

// GroupMembers counts the consumer group's members. Offsets are set with
// the sinks stopped: a running sink reads the table's offsets only when its
// partitions are assigned. A sink stopped with --sink-instance-id (static
// membership) stays a member until its session expires.
func GroupMembers(ctx context.Context, adm *kadm.Client, group string) (int, error) {
	dg, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return 0, fmt.Errorf("kafka: describe group %s: %w", group, err)
	}
	if g, ok := dg[group]; ok && g.Err == nil {
		return len(g.Members), nil
	}
	return 0, nil
}

// CommitGroup moves the consumer group's committed offsets to o, so that
// Kafka's own tools show what the table says.
func CommitGroup(ctx context.Context, adm *kadm.Client, group string, o lake.Offsets) error {
	var offs kadm.Offsets
	for t, ps := range o {
		for p, off := range ps {
			offs.Add(kadm.Offset{Topic: t, Partition: p, At: off, LeaderEpoch: -1})
		}
	}
	resp, err := adm.CommitOffsets(ctx, group, offs)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return fmt.Errorf("kafka: commit offsets of group %s: %w", group, err)
	}
	return nil
}
