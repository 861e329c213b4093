package drill

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The drills on Apache Kafka's checkpoint files, in its log.dirs: with
// the broker killed, files are damaged as a disk or a torn write would,
// and the broker is started again. What it repairs itself and what the
// runbook repairs is in kafka-checkpoints-corrupt.md.

const checkpointsRunbook = "docs/operations/runbooks/kafka-checkpoints-corrupt.md"

// Kafka's offset checkpoint files in each of its log.dirs.
const (
	recoveryPointCheckpoint = "recovery-point-offset-checkpoint"
	logStartCheckpoint      = "log-start-offset-checkpoint"
	replicationCheckpoint   = "replication-offset-checkpoint"
)

// garbled is what a damaged checkpoint holds: its version and count, then
// a line that is not "topic partition offset".
const garbled = "0\n3\nnot a checkpoint\n"

// hwWait is how long the hw drill waits for K2 to recover on its own
// before it applies the runbook: K2 recovers from a broker restart well
// within it.
const hwWait = 15 * time.Second

func init() {
	register(
		Drill{Name: "kafka-checkpoints", Family: "external", Runbook: checkpointsRunbook,
			Summary: "with Apache Kafka killed, garble its recovery-point and log-start-offset checkpoints and tear the tail of every __consumer_offsets partition; start it: the broker repairs them itself",
			Run:     kafkaCheckpointsDrill},
		Drill{Name: "kafka-hw-checkpoint", Family: "external", Runbook: checkpointsRunbook,
			Summary: "with Apache Kafka killed, garble its replication-offset-checkpoint; started so, it serves no partition; the runbook moves the file aside and the broker is started again",
			Run:     kafkaHWCheckpointDrill},
	)
}

// killKafka warms the installation up, then kills the broker.
func killKafka(ctx context.Context, e *Env, run string) (*Install, *Traffic, Row, error) {
	var row Row
	if err := e.need(svcKafka, true); err != nil {
		return nil, nil, row, err
	}
	in, err := e.External(ctx)
	if err != nil {
		return nil, nil, row, err
	}
	t, err := warm(ctx, e, in, run)
	if err != nil {
		return nil, nil, row, err
	}
	row.Target = ProcessRTO
	row.InjectedAt = time.Now()
	if _, err := e.control(ctx, "kafka-kill"); err != nil {
		return nil, nil, row, err
	}
	row.DetectedAt = WaitDetected(ctx, 10*time.Second, in.Ready)
	return in, t, row, nil
}

func kafkaCheckpointsDrill(ctx context.Context, e *Env) ([]Row, error) {
	in, t, row, err := killKafka(ctx, e, "ckpt")
	if err != nil {
		return nil, err
	}
	dir := e.Ext.KafkaLogDir
	for _, f := range []string{recoveryPointCheckpoint, logStartCheckpoint} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(garbled), 0o644); err != nil {
			return nil, fmt.Errorf("garble %s: %w", f, err)
		}
	}
	torn, err := tearConsumerOffsets(dir)
	if err != nil {
		return nil, err
	}
	row.Fault = fmt.Sprintf("kill -9 Apache Kafka; garble %s and %s; tear %d __consumer_offsets segments", recoveryPointCheckpoint, logStartCheckpoint, torn)
	e.Logf("%s", row.Fault)
	answered, serving, back, err := e.startKafka(ctx, in)
	if err != nil {
		return nil, err
	}
	var failures []string
	if row.RecoveredAt, err = WaitRecovered(ctx, recoverTimeout, in.Ready, in.Consuming(ctx)); err != nil {
		failures = append(failures, err.Error())
	} else {
		row.RTO = row.RecoveredAt.Sub(back)
	}
	row.Notes = "no operator action: the broker reset the recovery points to 0 (every log recovered), the log start offsets to the first segments, cut the torn batches; " +
		kafkaStartNote(answered, serving)
	// It writes both anew every log.flush.offset.checkpoint.interval.ms
	// (60 s by default), perhaps after the drill.
	for _, f := range []string{recoveryPointCheckpoint, logStartCheckpoint} {
		if checkCheckpoint(filepath.Join(dir, f)) == nil {
			row.Notes += "; " + f + " rewritten"
		}
	}
	return finish(ctx, e, in, t, checkpointsRunbook, row, failures)
}

func kafkaHWCheckpointDrill(ctx context.Context, e *Env) ([]Row, error) {
	in, t, row, err := killKafka(ctx, e, "hwck")
	if err != nil {
		return nil, err
	}
	dir := e.Ext.KafkaLogDir
	if err := os.WriteFile(filepath.Join(dir, replicationCheckpoint), []byte(garbled), 0o644); err != nil {
		return nil, fmt.Errorf("garble %s: %w", replicationCheckpoint, err)
	}
	row.Fault = "kill -9 Apache Kafka; garble " + replicationCheckpoint
	first, err := e.control(ctx, "kafka-start")
	if err != nil {
		return nil, err
	}
	// It answers, but fails to create a single partition's log (its high
	// watermark is read from the file): K2 does not recover.
	var failures []string
	if _, err := WaitRecovered(ctx, hwWait, in.Ready, in.Consuming(ctx)); err == nil {
		failures = append(failures, "K2 recovered with the high-watermark checkpoint garbled: the runbook's premise no longer holds")
	} else {
		e.Logf("with the checkpoint garbled, after %s: %v", hwWait, err)
	}
	// The runbook: stop the broker (the drill kills it), move aside what
	// does not parse, start it.
	if _, err := e.control(ctx, "kafka-kill"); err != nil {
		return nil, err
	}
	out, err := e.RunRunbook(ctx, checkpointsRunbook, StepRecover, in, "KAFKA_LOG_DIR="+dir)
	if err != nil {
		return nil, err
	}
	if !strings.Contains(out, replicationCheckpoint) {
		failures = append(failures, "the runbook's recover block did not move "+replicationCheckpoint+" aside: "+lastLine(out))
	}
	answered, serving, back, err := e.startKafka(ctx, in)
	if err != nil {
		return nil, err
	}
	if row.RecoveredAt, err = WaitRecovered(ctx, recoverTimeout, in.Ready, in.Consuming(ctx)); err != nil {
		failures = append(failures, err.Error())
	} else {
		row.RTO = row.RecoveredAt.Sub(back)
	}
	row.Notes = fmt.Sprintf("started with the file garbled (answering after %s) the broker served no partition for %s; runbook: stopped, the file moved aside, started; ",
		first.Round(100*time.Millisecond), hwWait) + kafkaStartNote(answered, serving)
	return finish(ctx, e, in, t, checkpointsRunbook, row, failures)
}

// tearConsumerOffsets appends bytes that are no record batch to the
// newest segment of every __consumer_offsets partition: a write cut off
// by the crash. It returns how many segments it tore.
func tearConsumerOffsets(dir string) (int, error) {
	parts, err := filepath.Glob(filepath.Join(dir, "__consumer_offsets-*"))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, p := range parts {
		segs, _ := filepath.Glob(filepath.Join(p, "*.log"))
		if len(segs) == 0 {
			continue
		}
		sort.Strings(segs) // names are zero-padded base offsets
		f, err := os.OpenFile(segs[len(segs)-1], os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return n, fmt.Errorf("tear %s: %w", segs[len(segs)-1], err)
		}
		// A batch header claiming 1 MiB, then garbage.
		_, err = f.Write(append([]byte{0, 0, 0, 0, 0, 0, 0, 9, 0, 16, 0, 0}, []byte(strings.Repeat("torn write ", 8))...))
		f.Close()
		if err != nil {
			return n, err
		}
		n++
	}
	if n == 0 {
		return 0, fmt.Errorf("no __consumer_offsets segment in %s: is it the broker's log.dirs?", dir)
	}
	return n, nil
}

// checkCheckpoint parses an offset checkpoint file: version 0, a count,
// then that many "topic partition offset" lines.
func checkCheckpoint(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) < 2 || lines[0] != "0" {
		return fmt.Errorf("%s: not a version 0 checkpoint", path)
	}
	n, err := strconv.Atoi(lines[1])
	if err != nil || n != len(lines)-2 {
		return fmt.Errorf("%s: count %q for %d entries", path, lines[1], len(lines)-2)
	}
	for i, l := range lines[2:] {
		fs := strings.Fields(l)
		if len(fs) != 3 {
			return fmt.Errorf("%s: line %d: %q", path, i+3, l)
		}
		if _, err := strconv.Atoi(fs[1]); err != nil {
			return fmt.Errorf("%s: line %d: partition %q", path, i+3, fs[1])
		}
		if _, err := strconv.ParseInt(fs[2], 10, 64); err != nil {
			return fmt.Errorf("%s: line %d: offset %q", path, i+3, fs[2])
		}
	}
	return nil
}
