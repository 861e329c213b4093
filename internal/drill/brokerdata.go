package drill

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// The broker-data drill damages files of the embedded broker's data
// directory (<data-dir>/kafka) between a stop and a start, the way a disk
// or an interrupted write leaves them, and recovers as the runbook says.

const brokerDataRunbook = "docs/operations/runbooks/broker-data-corrupt.md"

func init() {
	register(Drill{Name: "broker-data-corrupt", Family: "broker-data", Runbook: brokerDataRunbook,
		Summary: "damage the embedded broker's checkpoints (a partition's snapshot.json, seq_windows.json, the tail of groups.log) while it is down; restart, moving aside what the broker refuses",
		Run:     brokerDataDrill})
}

// damage is one way of damaging the broker's files.
type damage struct {
	fault string
	// kill stops the broker with SIGKILL (a crash); otherwise SIGTERM,
	// which writes the checkpoints the damage then hits.
	kill bool
	// file picks the file under the broker's data directory.
	file func(kafkaDir string) (string, error)
	how  func(path string) error
	// refused: the broker refuses to start, naming the file, and the
	// runbook's recover block moves it aside. Otherwise the broker repairs
	// it itself at start and logs selfRepair.
	refused    bool
	selfRepair string
}

var damages = []damage{
	{fault: "garble a partition's checkpoint (snapshot.json) after a clean stop",
		file: largestPartitionFile("snapshot.json"), how: garble},
	{fault: "garble the producers' sequence checkpoint (seq_windows.json) after a crash", kill: true,
		file: fixedFile("seq_windows.json"), how: garble, refused: true},
	{fault: "tear the last entry of the consumer-group log (groups.log) after a crash", kill: true,
		file: fixedFile("groups.log"), how: tearTail, selfRepair: "groups.log: discarding"},
}

func brokerDataDrill(ctx context.Context, e *Env) ([]Row, error) {
	in, err := e.Distributed(ctx, false, nil)
	if err != nil {
		return nil, err
	}
	var rows []Row
	for i, d := range damages {
		row, err := damageBroker(ctx, e, in, fmt.Sprintf("bd%d", i), d)
		if err != nil {
			return rows, fmt.Errorf("%s: %w", d.fault, err)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// damageBroker runs one damage: traffic of its own, the broker stopped
// and its file damaged, the restart (and the runbook's repair when the
// broker refuses), then recovery and counts.
func damageBroker(ctx context.Context, e *Env, in *Install, run string, d damage) (Row, error) {
	t, err := warm(ctx, e, in, run)
	if err != nil {
		return Row{}, err
	}
	row := Row{Fault: d.fault, Target: ProcessRTO}
	var failures []string
	if d.kill {
		in.Broker.Kill()
	} else if err := in.Broker.Stop(); err != nil {
		return row, err
	}
	kafkaDir := filepath.Join(in.DataDir, "kafka")
	path, err := d.file(kafkaDir)
	if err != nil {
		return row, err
	}
	row.InjectedAt = time.Now()
	if err := d.how(path); err != nil {
		return row, err
	}
	rel, _ := filepath.Rel(in.DataDir, path)
	e.Logf("damaged %s", rel)
	recoverAt := time.Now()
	startErr := e.Restart(ctx, in.Broker)
	switch {
	case d.refused && startErr == nil:
		failures = append(failures, "the broker started on a damaged "+rel)
	case d.refused:
		row.DetectedAt = time.Now()
		// The operator reads the file from the error, as the runbook says.
		named := refusedFile(startErr.Error())
		if named != filepath.Base(path) {
			failures = append(failures, fmt.Sprintf("the broker's error does not name %s: %v", filepath.Base(path), startErr))
		}
		row.Notes = "refused: " + lastLine(strings.ReplaceAll(startErr.Error(), " | ", "\n"))
		recoverAt = time.Now()
		if _, err := e.RunRunbook(ctx, brokerDataRunbook, StepRecover, in, "bad="+path); err != nil {
			return row, err
		}
		if err := e.Restart(ctx, in.Broker); err != nil {
			return row, fmt.Errorf("after the runbook's repair: %w", err)
		}
		if _, err := os.Stat(path + ".damaged"); err != nil {
			failures = append(failures, "the runbook did not keep the damaged file aside: "+err.Error())
		}
	case startErr != nil:
		return row, fmt.Errorf("the broker did not start on a damaged %s: %w", rel, startErr)
	default:
		row.DetectedAt = time.Now()
		if d.selfRepair != "" && !in.Broker.LogContains(d.selfRepair) {
			failures = append(failures, fmt.Sprintf("the broker's log does not say %q", d.selfRepair))
		}
		row.Notes = "repaired by the broker at start"
	}
	if row.RecoveredAt, err = WaitRecovered(ctx, recoverTimeout, in.Ready, in.Consuming(ctx)); err != nil {
		failures = append(failures, err.Error())
	} else {
		row.RTO = row.RecoveredAt.Sub(recoverAt)
	}
	rows, err := finish(ctx, e, in, t, brokerDataRunbook, row, failures)
	if err != nil {
		return row, err
	}
	return rows[0], nil
}

// refusedFile is the file a broker's start error names ("parsing
// seq_windows.json: …").
var refusedRE = regexp.MustCompile(`parsing ([\w.-]+):`)

func refusedFile(msg string) string {
	if m := refusedRE.FindStringSubmatch(msg); m != nil {
		return m[1]
	}
	return ""
}

func fixedFile(name string) func(string) (string, error) {
	return func(dir string) (string, error) {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("no %s to damage: %w", name, err)
		}
		return p, nil
	}
}

// largestPartitionFile picks name in the directory of the partition
// holding the most data.
func largestPartitionFile(name string) func(string) (string, error) {
	return func(dir string) (string, error) {
		parts, _ := filepath.Glob(filepath.Join(dir, "partitions", "*", name))
		var best string
		var size int64 = -1
		for _, p := range parts {
			segs, _ := filepath.Glob(filepath.Join(filepath.Dir(p), "*.dat"))
			var n int64
			for _, s := range segs {
				if fi, err := os.Stat(s); err == nil {
					n += fi.Size()
				}
			}
			if n > size {
				best, size = p, n
			}
		}
		if best == "" {
			return "", fmt.Errorf("no partition %s under %s", name, dir)
		}
		return best, nil
	}
}

// garble overwrites the middle of a file with bytes no parser accepts.
func garble(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if len(b) == 0 {
		b = []byte("{}")
	}
	mid := len(b) / 2
	junk := []byte("\x00\xff garbled \x00\xff")
	b = append(b[:mid:mid], append(junk, b[min(len(b), mid+len(junk)):]...)...)
	return os.WriteFile(path, b, 0o644)
}

// tearTail cuts the last few bytes of a file: a write the crash
// interrupted.
func tearTail(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Size() < 8 {
		return fmt.Errorf("%s has %d bytes: nothing to tear", path, fi.Size())
	}
	return os.Truncate(path, fi.Size()-5)
}
