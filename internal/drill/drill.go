// Package drill runs fault drills (`k2 ops drill`) on real K2 processes
// while data flows: it starts an installation from the k2 binary itself
// (each role a child process), produces records with known ids at a steady
// rate, injects a fault (kill -9, a corrupt file, a full disk…), applies
// the recovery its runbook gives, and then checks what an operator would:
// every process healthy, the lake holding each produced id exactly once
// (nothing lost, nothing duplicated, counted by id in the tables), and the
// recovery time against its target.
//
// # Runbooks are executed, not paraphrased
//
// Every drill names its runbook in docs/operations/runbooks/. A runbook's
// fenced code blocks whose info string is "sh recover" (or "sh verify")
// are what the drill runs at that step, literally: the block's text is run
// by `sh -eu`, in the drill's directory, with `k2` first on PATH (the binary
// under drill) and the installation's settings in K2_* variables
// (K2_DATA_DIR, K2_BROKERS, K2_REGISTRY, K2_CATALOG, K2_WAREHOUSE…, see
// Install.Settings), exactly as an operator's shell on the host would have
// them. A drill fails when its runbook has no such block or a command in it
// fails, so a runbook cannot drift from what works. Blocks tagged plain
// "sh" are for the operator only (diagnosis, commands of a service
// manager such as systemctl, which the drill plays itself by restarting the
// process with its command line).
//
// # Adding a drill
//
// A drill is a Drill value registered from an init function of the file of
// its family (register); Run returns one Row per fault it injected. The
// helpers are the same for every family: Env.Start and Proc for child
// processes, Env.Distributed and Env.Up for installations, StartTraffic for
// the steady stream of known records, Install.Count for the counts by id,
// Env.RunRunbook for the runbook's blocks, WaitRecovered for the RTO.
package drill

import (
	"context"
	"errors"
	"slices"
	"time"
)

// ProcessRTO is the recovery-time target of a process restart: from the
// restart to the installation healthy and consuming again.
const ProcessRTO = 10 * time.Second

// Drill is one fault drill.
type Drill struct {
	Name    string // what --only selects, e.g. broker-kill
	Family  string // process, broker-data, disk, data-file, or an external service
	Summary string // one line: the fault and the recovery
	// Runbook is the runbook the drill follows, relative to the
	// repository root (docs/operations/runbooks/…).
	Runbook string
	// Run injects the fault(s) and recovers; it returns a row per fault.
	// An error is a drill that could not be carried out (the installation
	// did not start, a runbook block failed); a recovery that lost or
	// duplicated records is a row that does not pass.
	Run func(ctx context.Context, e *Env) ([]Row, error)
}

// ErrSkip, wrapped in the error a drill returns, marks it skipped: what
// it needs is not there (an external service not configured). A skipped
// drill is reported and does not fail the run.
var ErrSkip = errors.New("skipped")

var drills []Drill

// register adds drills to the set `k2 ops drill` runs (families register
// from their files' init functions).
func register(d ...Drill) { drills = append(drills, d...) }

// familyOrder is the order drills run and are listed in: processes
// first, then files, then families not named here, as registered.
var familyOrder = []string{"process", "broker-data", "disk", "data-file"}

// All returns every drill.
func All() []Drill {
	out := append([]Drill(nil), drills...)
	rank := func(d Drill) int {
		if i := slices.Index(familyOrder, d.Family); i >= 0 {
			return i
		}
		return len(familyOrder)
	}
	slices.SortStableFunc(out, func(a, b Drill) int { return rank(a) - rank(b) })
	return out
}

// Row is the outcome of one fault of a drill.
type Row struct {
	Fault       string
	InjectedAt  time.Time
	DetectedAt  time.Time // when the fault showed: a failed health check, a refused start, an error
	RecoveredAt time.Time // healthy and consuming again
	// RTO is from the recovery's start (the restart, the runbook's
	// repair) to RecoveredAt; Target is its bound (0: none).
	RTO, Target time.Duration
	// Produced records (acknowledged by the broker), distinct ids of them
	// in the lake, those missing, and extra copies stored.
	Produced, InLake, Lost, Duplicated int64
	// BrokerCut are produced records the broker itself lost with a
	// damaged file of its own (a torn segment cut at its restart) before
	// the sink read them: gone from Kafka, so no sink can store them.
	// Counted apart from Lost, which are K2's losses; only a drill that
	// damages the broker's segments may have any.
	BrokerCut int64
	Pass      bool
	Notes     string
}

// judge sets r.Pass: nothing lost, nothing duplicated, everything
// produced is in the lake but what the broker cut, within the RTO
// target, and no failure noted.
func (r *Row) judge(failures ...string) {
	r.Pass = r.Lost == 0 && r.Duplicated == 0 && r.InLake+r.BrokerCut == r.Produced && r.Produced > 0 &&
		(r.Target == 0 || (r.RTO > 0 && r.RTO <= r.Target)) && len(failures) == 0
	for _, f := range failures {
		if r.Notes != "" {
			r.Notes += "; "
		}
		r.Notes += "FAILED: " + f
	}
}
