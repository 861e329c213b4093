package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/k2-market-data/k2/internal/lake"
	"github.com/k2-market-data/k2/internal/sink"
)

// kafkaProbe bounds how long the offsets commands try the brokers: with
// the sinks stopped an embedded broker (k2 up) is stopped too, and the
// lake's side is still worth showing.
const kafkaProbe = 5 * time.Second

// newOffsetsCmd is `k2 lake offsets`: the Kafka offsets each table records
// (where a sink resumes), and setting them after a topic was recreated.
func newOffsetsCmd(a *app, tables *[]string, dryRun, jsonOut *bool) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "offsets",
		Short: "Show or set the Kafka offsets each table records: where a sink resumes (after a topic is deleted and created again, set them back)",
	}
	a.cfg.RegisterKafka(cmd.PersistentFlags())
	a.cfg.RegisterSinkGroup(cmd.PersistentFlags())

	show := &cobra.Command{
		Use:   "show",
		Short: "Per table, topic and partition: the recorded next offset and the snapshot that recorded it; with Kafka reachable, the topic's start and end and the sink group's offset, and what is wrong",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := a.openLake(cmd.Context())
			if err != nil {
				return err
			}
			defer l.Close()
			k, done := a.offsetsKafka(cmd.Context())
			defer done()
			pos, err := sink.Positions(cmd.Context(), l, k, *tables)
			if err != nil {
				return err
			}
			if *jsonOut {
				return writeJSON(cmd, pos)
			}
			printPositions(cmd, pos, k.Admin != nil)
			return nil
		},
	}

	var (
		topic              string
		partition          int32
		offset             int64
		toStart, toEnd     bool
		fromFile           string
		partitionSet, oSet bool
	)
	set := &cobra.Command{
		Use:   "set",
		Short: "Set the offsets a table records, back or forward, for a topic deleted and created again or truncated: stop the sinks, set, start them",
		Long: `Set the Kafka offsets one table records, which is where a sink resumes.

After a topic is deleted and created again (or truncated) its offsets start
at 0 while the table records where the old topic ended; a sink refuses such
a partition. Stop the sinks, set the offsets, start the sinks.

Exactly one of:
  --offset N --partition P      one partition (needs --topic)
  --to-start                    every partition (or --partition) of --topic,
                                or of every topic of the table, from its start
  --to-end                      ... from its end: skip what the topic holds
  --from-file F                 JSON {"topic": {"partition": offset}}

The offsets stand until the next commit of the table, which records them
in its snapshot. With Kafka reachable the sink group's offsets are moved
too (Kafka refuses that while the group has members; the sinks follow
the table's offsets either way).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			partitionSet, oSet = cmd.Flags().Changed("partition"), cmd.Flags().Changed("offset")
			if !cmd.Flags().Changed("table") || len(*tables) != 1 {
				return errors.New("--table: name the one table whose offsets to set")
			}
			ways := 0
			for _, on := range []bool{oSet, toStart, toEnd, fromFile != ""} {
				if on {
					ways++
				}
			}
			if ways != 1 {
				return errors.New("give exactly one of --offset, --to-start, --to-end, --from-file")
			}
			if oSet && (!partitionSet || topic == "") {
				return errors.New("--offset needs --topic and --partition")
			}
			name := (*tables)[0]
			l, err := a.openLake(cmd.Context())
			if err != nil {
				return err
			}
			defer l.Close()
			k, done := a.offsetsKafka(cmd.Context())
			defer done()
			if topic != "" {
				if tn, err := sink.TopicTable(topic, a.cfg.Kafka.TopicPrefix); err != nil {
					return fmt.Errorf("--topic: %w", err)
				} else if tn != name {
					return fmt.Errorf("--topic %s holds %s, not %s", topic, tn, name)
				}
			}
			var changes lake.Offsets
			switch {
			case fromFile != "":
				changes, err = offsetsFile(fromFile, name, a.cfg.Kafka.TopicPrefix)
			case oSet:
				changes = lake.Offsets{topic: {partition: offset}}
			default:
				changes, err = edgeOffsets(cmd.Context(), l, k, name, topic, partition, partitionSet, toEnd)
			}
			if err != nil {
				return err
			}
			if len(changes) == 0 && !*dryRun {
				return fmt.Errorf("no partitions to set for %s: the table records none and Kafka lists none (name them with --topic and --partition)", name)
			}
			if k.Admin != nil && !*dryRun {
				if n, err := sink.GroupMembers(cmd.Context(), k.Admin, k.Group); err != nil {
					return err
				} else if n > 0 {
					fmt.Fprintf(cmd.ErrOrStderr(), "warning: consumer group %s has %d members (a running sink, or one stopped with --sink-instance-id whose session has not expired); a running sink takes the new offsets only when it is restarted\n", k.Group, n)
				}
			}
			res, err := l.SetOffsets(cmd.Context(), name, changes, *dryRun)
			if err != nil {
				return err
			}
			groupMoved := false
			if k.Admin != nil && !*dryRun {
				if err := sink.CommitGroup(cmd.Context(), k.Admin, k.Group, changes); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v; a sink follows the table's offsets anyway\n", err)
				} else {
					groupMoved = true
				}
			}
			if *jsonOut {
				return writeJSON(cmd, res)
			}
			printSet(cmd, res, changes, groupMoved, k.Group)
			return nil
		},
	}
	f := set.Flags()
	f.StringVar(&topic, "topic", "", "the topic whose offsets to set (default with --to-start/--to-end: every topic of the table)")
	f.Int32Var(&partition, "partition", 0, "one partition (default with --to-start/--to-end: every partition)")
	f.Int64Var(&offset, "offset", 0, "the next offset to read")
	f.BoolVar(&toStart, "to-start", false, "from the start of each partition (its log start; 0 when Kafka is not reached, which a sink reads as the log start)")
	f.BoolVar(&toEnd, "to-end", false, "from the end of each partition: skip what it holds (needs Kafka)")
	f.StringVar(&fromFile, "from-file", "", `JSON file of offsets: {"topic": {"0": 123, "1": 456}}`)
	cmd.AddCommand(show, set)
	return cmd
}

// offsetsKafka connects to the configured brokers if they answer within
// kafkaProbe; otherwise it says so and the commands go on with the lake.
func (a *app) offsetsKafka(ctx context.Context) (sink.Kafka, func()) {
	k := sink.Kafka{Prefix: a.cfg.Kafka.TopicPrefix, Group: a.cfg.Sink.Group}
	pctx, cancel := context.WithTimeout(ctx, kafkaProbe)
	defer cancel()
	adm, cl, err := a.admin(pctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kafka not reached (%v): the lake's offsets only\n", err)
		return k, func() {}
	}
	if _, err := adm.ListBrokers(pctx); err != nil {
		cl.Close()
		fmt.Fprintf(os.Stderr, "kafka at %s not reached within %s: the lake's offsets only\n", a.cfg.Kafka.Brokers, kafkaProbe)
		return k, func() {}
	}
	k.Admin = adm
	return k, cl.Close
}

// edgeOffsets are the start (or end) offsets of a topic's partitions, or
// of every topic of the table: those the table records and those Kafka
// lists. Without Kafka the start is 0, which a sink reads from the log
// start.
func edgeOffsets(ctx context.Context, l *lake.Lake, k sink.Kafka, table, topic string, partition int32, onePartition, end bool) (lake.Offsets, error) {
	if end && k.Admin == nil {
		return nil, errors.New("--to-end needs the topics' end offsets, and Kafka was not reached (--brokers)")
	}
	pos, err := sink.Positions(ctx, l, k, []string{table})
	if err != nil {
		return nil, err
	}
	out := lake.Offsets{}
	for _, p := range pos {
		if (topic != "" && p.Topic != topic) || (onePartition && p.Partition != partition) {
			continue
		}
		var off int64
		switch {
		case end && p.End == nil:
			return nil, fmt.Errorf("%s[%d]: Kafka lists no end offset: does the topic exist?", p.Topic, p.Partition)
		case end:
			off = *p.End
		case p.Start != nil:
			off = *p.Start
		}
		if out[p.Topic] == nil {
			out[p.Topic] = map[int32]int64{}
		}
		out[p.Topic][p.Partition] = off
	}
	if topic != "" && onePartition && len(out) == 0 && !end {
		out[topic] = map[int32]int64{partition: 0}
	}
	return out, nil
}

// offsetsFile reads {"topic": {"partition": offset}}, each topic one of
// the table's.
func offsetsFile(path, table, prefix string) (lake.Offsets, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--from-file: %w", err)
	}
	var o lake.Offsets
	if err := json.Unmarshal(b, &o); err != nil {
		return nil, fmt.Errorf("--from-file %s: want {\"topic\": {\"partition\": offset}}: %w", path, err)
	}
	for t := range o {
		tn, err := sink.TopicTable(t, prefix)
		if err != nil {
			return nil, fmt.Errorf("--from-file %s: %w", path, err)
		}
		if tn != table {
			return nil, fmt.Errorf("--from-file %s: topic %s holds %s, not %s", path, t, tn, table)
		}
	}
	return o, nil
}

func writeJSON(cmd *cobra.Command, v any) error {
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printPositions(cmd *cobra.Command, pos []sink.Position, kafka bool) {
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	head := "TABLE\tTOPIC\tPARTITION\tRECORDED\tSNAPSHOT"
	if kafka {
		head += "\tSTART\tEND\tGROUP"
	}
	fmt.Fprintln(w, head)
	num := func(p *int64) string {
		if p == nil {
			return "-"
		}
		return strconv.FormatInt(*p, 10)
	}
	var problems []string
	for _, p := range pos {
		snap := "-"
		if p.Recorded != nil {
			snap = strconv.FormatInt(p.SnapshotID, 10)
			if p.Overridden {
				snap += " (set by hand)"
			}
		}
		line := fmt.Sprintf("%s\t%s\t%d\t%s\t%s", p.Table, p.Topic, p.Partition, num(p.Recorded), snap)
		if kafka {
			line += fmt.Sprintf("\t%s\t%s\t%s", num(p.Start), num(p.End), num(p.Group))
		}
		fmt.Fprintln(w, line)
		if p.Problem != "" {
			problems = append(problems, fmt.Sprintf("%s %s[%d]: %s", p.Table, p.Topic, p.Partition, p.Problem))
		}
	}
	w.Flush()
	for _, p := range problems {
		fmt.Fprintln(cmd.OutOrStdout(), p)
	}
}

func printSet(cmd *cobra.Command, r lake.SetOffsetsResult, changes lake.Offsets, groupMoved bool, group string) {
	out := cmd.OutOrStdout()
	verb := "set"
	if r.DryRun {
		verb = "would set"
	}
	var lines []string
	for t, ps := range changes {
		for p := range ps {
			before := "-"
			if b, ok := r.Before.Get(t, p); ok {
				before = strconv.FormatInt(b, 10)
			}
			after, _ := r.After.Get(t, p)
			lines = append(lines, fmt.Sprintf("  %s[%d]: %s → %d", t, p, before, after))
		}
	}
	slices.Sort(lines)
	fmt.Fprintf(out, "%s: %s %d partitions' offsets (following snapshot %d)\n%s\n", r.Table, verb, len(lines), r.SnapshotID, strings.Join(lines, "\n"))
	if r.DryRun {
		return
	}
	if groupMoved {
		fmt.Fprintf(out, "consumer group %s moved to the same offsets\n", group)
	}
	fmt.Fprintln(out, "start the sinks: they resume from these offsets")
}
