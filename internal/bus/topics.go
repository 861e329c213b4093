// Package bus is K2's Kafka layer: topic names and configurations, the
// producer every source writes through, and the embedded Kafka-protocol
// broker that makes a single machine a complete installation.
package bus

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/record"
)

// DLQSuffix names a topic's dead-letter topic: <topic>.dlq.
const DLQSuffix = ".dlq"

// Topic names the topic of a data type on an exchange:
// market.{asset_class}.{data_type}.{exchange}, exchange in lower case.
func Topic(asset md.AssetClass, dt record.DataType, exchange string) string {
	return "market." + string(asset) + "." + string(dt) + "." + strings.ToLower(exchange)
}

// TopicPattern is a regular expression matching K2's data topics under a
// prefix (not their dead-letter topics).
func TopicPattern(prefix string) string {
	return "^" + regexp.QuoteMeta(prefix) + `market\.[a-z]+\.(` + strings.Join(record.DataTypes(), "|") + `)\.[a-z0-9_]+$`
}

// TopicOf names the topic a record of exchange goes to.
func TopicOf(dt record.DataType, exchange string) (string, error) {
	ex, err := md.LookupExchange(exchange)
	if err != nil {
		return "", err
	}
	return Topic(ex.AssetClass, dt, ex.Code), nil
}

// ParseTopic splits a topic name into its parts; kind is the record kind
// its data type names.
func ParseTopic(topic string) (asset md.AssetClass, kind record.Any, exchange string, err error) {
	parts := strings.Split(topic, ".")
	if len(parts) != 4 || parts[0] != "market" {
		return "", nil, "", fmt.Errorf("topic %q is not market.{asset_class}.{data_type}.{exchange}", topic)
	}
	asset, exchange = md.AssetClass(parts[1]), strings.ToUpper(parts[3])
	if !asset.Valid() {
		return "", nil, "", fmt.Errorf("topic %q: unknown asset class %q", topic, parts[1])
	}
	if kind, err = record.ByDataType(record.DataType(parts[2])); err != nil {
		return "", nil, "", fmt.Errorf("topic %q: %w", topic, err)
	}
	return asset, kind, exchange, nil
}

// Topology says how many partitions each exchange's topics get. A
// compacted kind's topic (reference data) always has one partition: it is
// small, keyed by company id.
type Topology struct {
	// Prefix goes before every topic name, so that several installations
	// (or test runs) can share one Kafka cluster: "staging." gives
	// staging.market.crypto.trades.binance. Empty by default.
	Prefix string
	// Partitions per exchange code; exchanges not listed get Default.
	Partitions        map[string]int32
	Default           int32
	ReplicationFactor int16
	// SegmentBytes, when set, is segment.bytes of the stream topics (not
	// compacted, not dead letters). The embedded broker keeps an index
	// entry per batch of a segment until the whole segment is deleted, so
	// it uses small segments for its memory to follow what it keeps.
	SegmentBytes int64
}

// DefaultTopology suits one machine: six partitions let up to six sink
// processes share an exchange's load.
func DefaultTopology() Topology {
	return Topology{Partitions: map[string]int32{}, Default: 6, ReplicationFactor: 1}
}

// TopicSpec is one topic to create.
type TopicSpec struct {
	Name       string
	DataType   record.DataType
	Exchange   string
	Partitions int32
	Configs    map[string]*string
	Compacted  bool // keeps the latest record per key (reference data)
	DLQ        bool // a dead-letter topic
}

func str(s string) *string { return &s }

// Compression is the codec of K2's producers and of the topics it makes.
// Snappy rather than lz4: on Avro trades franz-go's snappy compressed 2.7
// times faster than its lz4 for 2% more bytes (22.7 MB of trades: 15.0
// against 14.7 MB), and the producer's lz4 was 11-13% of the whole
// pipeline's CPU. A topic's compression.type is the producer's, so a Kafka
// broker stores the batches as they come instead of recompressing them.
// Topics made by an earlier K2 keep lz4 until changed (docs/operations/upgrades.md).
const Compression = "snappy"

// configs are per kind: trades and quotes are kept seven days; a
// compacted kind keeps the latest record per key.
func (t Topology) configs(k *record.Spec) map[string]*string {
	if k.Compacted {
		return map[string]*string{
			"cleanup.policy":        str("compact"),
			"compression.type":      str(Compression),
			"min.compaction.lag.ms": str("60000"),
			"delete.retention.ms":   str("86400000"),
			"segment.ms":            str("604800000"),
		}
	}
	c := map[string]*string{
		"cleanup.policy":   str("delete"),
		"compression.type": str(Compression),
		"retention.ms":     str("604800000"),
	}
	if t.SegmentBytes > 0 {
		c["segment.bytes"] = str(strconv.FormatInt(t.SegmentBytes, 10))
	}
	return c
}

// StreamTopics are the topics of the kinds that are streamed and not
// compacted (trades and quotes), of every known exchange.
func (t Topology) StreamTopics() []string {
	var out []string
	for _, s := range t.Specs() {
		if !s.DLQ && !s.Compacted {
			out = append(out, s.Name)
		}
	}
	return out
}

// Specs lists every topic of every known exchange, and their dead-letter
// topics (one partition, 30 days: a person reads them).
func (t Topology) Specs() []TopicSpec {
	var out []TopicSpec
	for _, code := range md.ExchangeCodes() {
		ex, _ := md.LookupExchange(code)
		n := t.Default
		if p, ok := t.Partitions[code]; ok {
			n = p
		}
		for _, kind := range record.All {
			k := kind.Describe()
			parts := n
			if k.Compacted {
				parts = 1
			}
			name := t.Prefix + Topic(ex.AssetClass, k.DataType, code)
			out = append(out, TopicSpec{Name: name, DataType: k.DataType, Exchange: code, Partitions: parts, Configs: t.configs(k), Compacted: k.Compacted})
			out = append(out, TopicSpec{Name: name + DLQSuffix, DataType: k.DataType, Exchange: code, Partitions: 1, DLQ: true, Configs: map[string]*string{
				"cleanup.policy": str("delete"), "retention.ms": str("2592000000"), "compression.type": str(Compression),
			}})
		}
	}
	return out
}

// CreateResult reports one topic's creation.
type CreateResult struct {
	Topic      string `json:"topic"`
	Partitions int32  `json:"partitions"`
	Created    bool   `json:"created"` // false: it existed already
}

// CreateTopics creates the topics that do not exist yet; existing topics
// are left as they are, so running it again is harmless.
func CreateTopics(ctx context.Context, adm *kadm.Client, t Topology) ([]CreateResult, error) {
	var out []CreateResult
	var errs []error
	for _, s := range t.Specs() {
		resp, err := adm.CreateTopic(ctx, s.Partitions, t.ReplicationFactor, s.Configs, s.Name)
		switch {
		case err == nil && resp.Err == nil:
			out = append(out, CreateResult{Topic: s.Name, Partitions: s.Partitions, Created: true})
		case errors.Is(err, kerr.TopicAlreadyExists) || errors.Is(resp.Err, kerr.TopicAlreadyExists):
			out = append(out, CreateResult{Topic: s.Name, Partitions: s.Partitions})
		case err != nil:
			errs = append(errs, fmt.Errorf("create topic %s: %w", s.Name, err))
		default:
			errs = append(errs, fmt.Errorf("create topic %s: %w", s.Name, resp.Err))
		}
	}
	return out, errors.Join(errs...)
}

// TopicInfo describes a topic as the broker sees it.
type TopicInfo struct {
	Topic      string            `json:"topic"`
	Partitions int               `json:"partitions"`
	Records    int64             `json:"records"` // end offset minus start offset, summed
	EndOffsets map[int32]int64   `json:"end_offsets"`
	Configs    map[string]string `json:"configs,omitempty"`
}

// DescribeTopics lists K2's topics (prefix + market.*) with their offsets;
// with names, only those, with their configs.
func DescribeTopics(ctx context.Context, adm *kadm.Client, prefix string, names ...string) ([]TopicInfo, error) {
	details, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	var topics []string
	for _, d := range details.Sorted() {
		if d.Err != nil {
			return nil, fmt.Errorf("topic %s: %w", d.Topic, d.Err)
		}
		if strings.HasPrefix(d.Topic, prefix+"market.") {
			topics = append(topics, d.Topic)
		}
	}
	if len(topics) == 0 {
		return nil, nil
	}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("end offsets: %w", err)
	}
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("start offsets: %w", err)
	}
	var cfgs kadm.ResourceConfigs
	if len(names) > 0 {
		if cfgs, err = adm.DescribeTopicConfigs(ctx, topics...); err != nil {
			return nil, fmt.Errorf("topic configs: %w", err)
		}
	}
	out := make([]TopicInfo, 0, len(topics))
	for _, t := range topics {
		info := TopicInfo{Topic: t, Partitions: len(details[t].Partitions), EndOffsets: map[int32]int64{}}
		ends.Each(func(o kadm.ListedOffset) {
			if o.Topic == t {
				info.EndOffsets[o.Partition] = o.Offset
				if s, ok := starts.Lookup(t, o.Partition); ok {
					info.Records += o.Offset - s.Offset
				}
			}
		})
		for _, rc := range cfgs {
			if rc.Name != t {
				continue
			}
			info.Configs = map[string]string{}
			for _, c := range rc.Configs {
				if c.Value != nil && c.Source == 1 { // dynamic topic config: what K2 set
					info.Configs[c.Key] = *c.Value
				}
			}
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Topic < out[j].Topic })
	return out, nil
}

// TopicsLed checks that the cluster lists at least want topics under
// prefix, each partition of them with a leader: topics just created are
// ready to take records.
func TopicsLed(ctx context.Context, adm *kadm.Client, prefix string, want int) error {
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		return err
	}
	n := 0
	for _, t := range topics {
		if !strings.HasPrefix(t.Topic, prefix) {
			continue
		}
		for _, p := range t.Partitions {
			if p.Err != nil || p.Leader < 0 {
				return fmt.Errorf("%s-%d has no leader", t.Topic, p.Partition)
			}
		}
		n++
	}
	if n < want {
		return fmt.Errorf("%d of %d topics listed", n, want)
	}
	return nil
}
