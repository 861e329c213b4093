package drill

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/codec"
	"github.com/k2-market-data/k2/internal/feed/synth"
	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/registry"
)

// The torn-segment drill: the broker killed while the sink runs, the tail
// of the busiest partition's newest segment torn, the broker restarted
// (it cuts the segment at the torn batch and the partition's next records
// reuse the lost offsets) and trades produced on. The sink must refuse
// the partition; the runbook sets the table's offset to the cut. The
// records the broker cut that the sink had not read are gone from Kafka:
// the drill counts them apart, from the broker's own surviving records.

func init() {
	register(Drill{Name: "broker-segment-torn", Family: "broker-data", Runbook: brokerDataRunbook,
		Summary: "kill -9 the embedded broker while the sink runs, tear the tail of the busiest partition's newest segment, restart it and produce on; the sink refuses the cut partition; set the table's offset to the cut",
		Run:     segmentDrill})
}

// truncatedLog is the sink's log line refusing a cut partition.
const truncatedLog = "partition not consumed: the broker's log was cut short"

// tear is one way the segment's tail is torn.
type tear struct {
	fault string
	// lag pauses the sink (SIGSTOP) this long before the broker is
	// killed, as a stalled sink is: the broker then holds records the sink
	// has not read, and the tear reaches back to the batch holding the
	// last offset the table records (the sink has read at least that far),
	// so the cut spans records read and records not read.
	lag time.Duration
}

var tears = []tear{
	{fault: "tear the last batch of the busiest partition's newest segment after kill -9 of the broker, the sink running and caught up"},
	{fault: "tear the busiest partition's newest segment from the batch of the table's last recorded offset, after kill -9 of the broker with the sink paused 1 s behind",
		lag: time.Second},
}

func segmentDrill(ctx context.Context, e *Env) ([]Row, error) {
	in, err := e.Distributed(ctx, false, nil)
	if err != nil {
		return nil, err
	}
	var rows []Row
	for i, tr := range tears {
		row, err := tearSegment(ctx, e, in, fmt.Sprintf("seg%d", i), tr)
		if err != nil {
			return rows, fmt.Errorf("%s: %w", tr.fault, err)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// tearSegment runs one tear: traffic of its own, the broker killed and
// the segment torn, the restart, the sink's refusal, the runbook's
// repair, and the counts against what the broker still holds.
func tearSegment(ctx context.Context, e *Env, in *Install, run string, tr tear) (Row, error) {
	t, err := warm(ctx, e, in, run)
	if err != nil {
		return Row{}, err
	}
	row := Row{Fault: tr.fault, Target: ProcessRTO}
	var failures []string
	if tr.lag > 0 {
		in.Sink.Pause()
		sleep(ctx, tr.lag)
	}
	in.Broker.Kill()
	row.InjectedAt = time.Now()
	kafkaDir := filepath.Join(in.DataDir, "kafka")
	seg, err := newestSegment(kafkaDir, in.TopicPrefix+bus.Topic(md.Crypto, record.Trade.DataType, synth.Code))
	if err != nil {
		return row, err
	}
	batches, err := segmentBatches(seg)
	if err != nil {
		return row, err
	}
	// The broker cuts the segment at the torn batch: the last one, or the
	// one holding the last offset the table records.
	torn := batches[len(batches)-1]
	if tr.lag > 0 {
		stored, err := in.storedOffset(ctx, seg)
		if err != nil {
			return row, err
		}
		for _, b := range batches {
			if b.base < stored {
				torn = b
			}
		}
	}
	cutAtWant, end := torn.base, batches[len(batches)-1].end
	if err := os.Truncate(seg, torn.pos+min(20, torn.size-1)); err != nil {
		return row, err
	}
	rel, _ := filepath.Rel(in.DataDir, seg)
	e.Logf("tore %s at offset %d (it held up to %d)", rel, cutAtWant, end)
	if err := e.Restart(ctx, in.Broker); err != nil {
		return row, fmt.Errorf("the broker did not start on a torn %s: %w", rel, err)
	}
	in.Sink.Resume()
	if !in.Broker.LogContains("truncating") {
		failures = append(failures, "the broker's log does not say it cut the segment")
	}

	// Detected: the sink's error counter, its failing /ready and its log
	// line, all three.
	refused := func(ctx context.Context) error {
		if n, err := metricValue(ctx, in.Sink, `k2_consumer_errors_total{error_type="log_truncated"}`); err != nil || n < 1 {
			return fmt.Errorf("log_truncated errors: %v %v", n, err)
		}
		if in.Sink.Ready(ctx) == nil {
			return fmt.Errorf("the sink reports ready")
		}
		if in.Sink.LogLine(truncatedLog) == "" {
			return fmt.Errorf("no refusal in the sink's log")
		}
		return nil
	}
	part := filepath.Base(filepath.Dir(seg))
	refusedOK := true
	if _, err := WaitRecovered(ctx, 20*time.Second, refused); err != nil {
		// Counted all the same, so the report says what it cost.
		refusedOK = false
		why := ""
		if in.Sink.LogContains("partitions lost") {
			why = " (its group membership was lost across the restart: it went back to the table's offsets, past the cut)"
		}
		failures = append(failures, "the sink did not refuse the cut partition"+why+": "+err.Error())
		row.Notes = fmt.Sprintf("%s cut at %d (held up to %d)", part, cutAtWant, end)
	}
	var cutAt, consumedTo int64
	if refusedOK {
		row.DetectedAt = time.Now()
		line := in.Sink.LogLine(truncatedLog)
		// What the runbook tells the operator to read from the line.
		vars, err := refusalVars(line)
		if err != nil {
			return row, err
		}
		cutAt, _ = strconv.ParseInt(vars["cut_at"], 10, 64)
		consumedTo, _ = strconv.ParseInt(vars["consumed_to"], 10, 64)
		if want := vars["topic"] + "-" + vars["partition"]; want != part || cutAt != cutAtWant || consumedTo > end || consumedTo < cutAt {
			failures = append(failures, fmt.Sprintf("the sink's refusal (%s[%s], cut_at %d, consumed_to %d) is not the tear (%s, offsets %d to %d)",
				vars["topic"], vars["partition"], cutAt, consumedTo, part, cutAtWant, end-1))
		}
		row.Notes = fmt.Sprintf("%s cut at %d (held up to %d, the sink had read to %d)", part, cutAt, end, consumedTo)

		// The runbook: stop the sinks, set the table's offset to the cut with
		// the logged values, start them.
		recoverAt := time.Now()
		if err := in.Sink.Stop(); err != nil {
			return row, err
		}
		extra := []string{"table=" + vars["table"], "topic=" + vars["topic"], "partition=" + vars["partition"], "cut_at=" + vars["cut_at"]}
		if _, err := e.RunRunbook(ctx, brokerDataRunbook, StepRecover, in, extra...); err != nil {
			return row, err
		}
		if err := e.Restart(ctx, in.Sink); err != nil {
			return row, err
		}
		if row.RecoveredAt, err = WaitRecovered(ctx, recoverTimeout, in.Ready, in.Consuming(ctx)); err != nil {
			failures = append(failures, err.Error())
		} else {
			row.RTO = row.RecoveredAt.Sub(recoverAt)
		}
	}

	sleep(ctx, time.Second)
	produced, err := t.Stop(ctx)
	if err != nil {
		failures = append(failures, "traffic: "+err.Error())
	}
	sent := t.IDs()
	// The broker's own account: every record the partitions hold now.
	survived, err := in.readTrades(ctx)
	if err != nil {
		return row, err
	}
	var cut []string
	for _, id := range sent {
		if survived[id] == 0 {
			cut = append(cut, id)
		}
	}
	// The sink read up to consumed_to before the cut, so those of the cut
	// records are stored; those past it never reached it.
	readBeforeCut, unread := consumedTo-cutAt, end-consumedTo
	if !refusedOK {
		readBeforeCut, unread = 0, end-cutAtWant
	}
	if int64(len(cut)) != end-cutAtWant {
		failures = append(failures, fmt.Sprintf("%d produced trades are not in Kafka, the broker cut %d offsets (%d to %d)", len(cut), end-cutAtWant, cutAtWant, end-1))
	}
	c, keys, err := in.waitKeys(ctx, t, int64(len(sent))-unread, int64(len(sent)), 20*time.Second)
	if err != nil {
		return row, err
	}
	c.Produced = produced
	var cutStored, cutLost int64
	for _, id := range cut {
		if keys[id] > 0 {
			cutStored++
		} else {
			cutLost++
		}
	}
	if refusedOK && (cutStored != readBeforeCut || cutLost != unread) {
		failures = append(failures, fmt.Sprintf("of the %d cut trades %d are stored and %d not; the sink had read %d of them", len(cut), cutStored, cutLost, readBeforeCut))
	}
	// K2's losses: whatever the lake misses that the broker did not cut.
	row.fill(c)
	row.BrokerCut = cutLost
	row.Lost = c.Lost - cutLost
	row.Notes += fmt.Sprintf("; %d trades cut by the broker: %d read before the cut and stored, %d never read (lost by the broker's damaged file)", len(cut), cutStored, cutLost)
	if _, err := e.RunRunbook(ctx, brokerDataRunbook, StepVerify, in); err != nil {
		failures = append(failures, err.Error())
	}
	if err := in.Ready(ctx); err != nil {
		failures = append(failures, "at the end: "+err.Error())
	}
	row.judge(failures...)
	return row, nil
}

// newestSegment is the newest segment file of topic's partition holding
// the most data.
func newestSegment(kafkaDir, topic string) (string, error) {
	dirs, _ := filepath.Glob(filepath.Join(kafkaDir, "partitions", topic+"-*"))
	var best string
	var size int64
	for _, d := range dirs {
		segs, _ := filepath.Glob(filepath.Join(d, "*.dat"))
		var n, newest int64 = 0, -1
		var path string
		for _, s := range segs {
			fi, err := os.Stat(s)
			if err != nil {
				continue
			}
			n += fi.Size()
			base, err := strconv.ParseInt(strings.TrimSuffix(filepath.Base(s), ".dat"), 10, 64)
			if err == nil && base > newest {
				newest, path = base, s
			}
		}
		if path != "" && n > size {
			best, size = path, n
		}
	}
	if best == "" {
		return "", fmt.Errorf("no segment of %s under %s", topic, kafkaDir)
	}
	return best, nil
}

// storedOffset is the offset the trades table records for the partition
// of the segment: where the sink resumes, which it has read to.
func (in *Install) storedOffset(ctx context.Context, seg string) (int64, error) {
	part := filepath.Base(filepath.Dir(seg))
	i := strings.LastIndexByte(part, '-')
	p, err := strconv.ParseInt(part[i+1:], 10, 32)
	if err != nil {
		return 0, fmt.Errorf("partition of %s: %w", seg, err)
	}
	l, err := in.lake(ctx)
	if err != nil {
		return 0, err
	}
	tbl, err := l.Load(ctx, record.Trade.Table.Name)
	if err != nil {
		return 0, err
	}
	off, _ := lake.TableOffsets(tbl).Get(part[:i], int32(p))
	return off, nil
}

// batch is a record batch of a segment file.
type batch struct {
	pos, size int64
	base, end int64 // its first offset and the one after its last
}

// segmentBatches reads a segment's record batches, in Kafka's v2 format:
// base offset (8 bytes), length (4), leader epoch (4), magic (1), CRC (4),
// attributes (2), last offset delta (4)…
func segmentBatches(path string) ([]batch, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []batch
	for pos := 0; pos+27 <= len(raw); {
		size := 12 + int(binary.BigEndian.Uint32(raw[pos+8:]))
		if pos+size > len(raw) {
			break
		}
		base := int64(binary.BigEndian.Uint64(raw[pos:]))
		out = append(out, batch{pos: int64(pos), size: int64(size), base: base,
			end: base + int64(binary.BigEndian.Uint32(raw[pos+23:])) + 1})
		pos += size
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no record batch", path)
	}
	return out, nil
}

// refusalVars are the key=value fields of the sink's refusal line the
// runbook names: table, topic, partition, cut_at, consumed_to.
var fieldRE = regexp.MustCompile(`\b(table|topic|partition|cut_at|consumed_to)=("[^"]*"|\S+)`)

func refusalVars(line string) (map[string]string, error) {
	vars := map[string]string{}
	for _, m := range fieldRE.FindAllStringSubmatch(line, -1) {
		vars[m[1]] = strings.Trim(m[2], `"`)
	}
	for _, k := range []string{"table", "topic", "partition", "cut_at", "consumed_to"} {
		if vars[k] == "" {
			return nil, fmt.Errorf("the sink's refusal names no %s: %s", k, line)
		}
	}
	return vars, nil
}

// metricValue reads one sample of the process's /metrics, by its name and
// labels as exposed.
func metricValue(ctx context.Context, p *Proc, sample string) (float64, error) {
	b, err := get(ctx, "http://"+p.HTTP+"/metrics")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, sample+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, nil
}

// readTrades reads every partition of the trades topic from its start to
// its end with a plain consumer and counts the records by symbol/trade_id:
// what the broker holds.
func (in *Install) readTrades(ctx context.Context) (map[string]int, error) {
	topic := in.TopicPrefix + bus.Topic(md.Crypto, record.Trade.DataType, synth.Code)
	cl, err := bus.NewClient(strings.Split(in.Brokers, ","), in.Security)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	lo, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err == nil {
		err = lo.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	ends := map[int32]int64{}
	start := map[int32]kgo.Offset{}
	lo.Each(func(o kadm.ListedOffset) {
		ends[o.Partition] = o.Offset
		start[o.Partition] = kgo.NewOffset().AtStart()
	})
	reg, err := registry.NewClient(in.Registry)
	if err != nil {
		return nil, err
	}
	dec := codec.NewDecoder(reg.SchemaByID)
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: start})
	got := map[string]int{}
	read := map[int32]int64{}
	done := func() bool {
		for p, end := range ends {
			if read[p] < end {
				return false
			}
		}
		return true
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for !done() {
		fs := cl.PollFetches(rctx)
		if err := rctx.Err(); err != nil {
			return nil, fmt.Errorf("read %s: %w (read %v of %v)", topic, err, read, ends)
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return nil, fmt.Errorf("read %s: %w", topic, ferr)
		}
		for _, r := range fs.Records() {
			tr, _, err := dec.Trade(rctx, r.Value)
			if err != nil {
				return nil, fmt.Errorf("%s[%d] offset %d: %w", topic, r.Partition, r.Offset, err)
			}
			got[tr.Symbol+"/"+tr.TradeID]++
			read[r.Partition] = r.Offset + 1
		}
	}
	return got, nil
}
