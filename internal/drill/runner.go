package drill

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// DefaultTimeout bounds one drill: its installation, traffic, faults,
// recovery and counts.
const DefaultTimeout = 2 * time.Minute

// Options say which drills to run, where, with which k2.
type Options struct {
	Exe  string   // the k2 binary (os.Executable for k2 ops drill)
	Repo string   // repository root, for the runbooks
	Work string   // each drill's directory is Work/NAME
	Only []string // drill names; empty for all
	// Timeout bounds each drill (DefaultTimeout when zero).
	Timeout time.Duration
	// External are the services of their own the installation uses: the
	// drills on them run only when named.
	External External
	// Progress takes a line per step (nil: none).
	Progress io.Writer
}

// Result is one drill's outcome.
type Result struct {
	Drill   Drill
	Rows    []Row
	Err     error // the drill could not be carried out
	Skipped bool  // Err wraps ErrSkip
	Started time.Time
	Took    time.Duration
}

// Pass reports whether the drill ran and every row passed.
func (r Result) Pass() bool {
	if r.Skipped {
		return true
	}
	if r.Err != nil || len(r.Rows) == 0 {
		return false
	}
	for _, row := range r.Rows {
		if !row.Pass {
			return false
		}
	}
	return true
}

// Report is a run of drills.
type Report struct {
	Started time.Time
	Took    time.Duration
	Results []Result
}

// Pass reports whether every drill passed (or was skipped).
func (r *Report) Pass() bool {
	for _, res := range r.Results {
		if !res.Pass() {
			return false
		}
	}
	return true
}

// Select returns the drills named in only (all when empty), in their
// order, or an error naming an unknown one.
func Select(only []string) ([]Drill, error) {
	all := All()
	if len(only) == 0 {
		return all, nil
	}
	var names []string
	for _, d := range all {
		names = append(names, d.Name)
	}
	for _, n := range only {
		if !slices.Contains(names, n) {
			return nil, fmt.Errorf("no drill %q: the drills are %s", n, strings.Join(names, ", "))
		}
	}
	var out []Drill
	for _, d := range all {
		if slices.Contains(only, d.Name) {
			out = append(out, d)
		}
	}
	return out, nil
}

// Run runs the selected drills one after another, each in its own
// directory and within its timeout.
func Run(ctx context.Context, o Options) (*Report, error) {
	sel, err := Select(o.Only)
	if err != nil {
		return nil, err
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	rep := &Report{Started: time.Now()}
	for _, d := range sel {
		rep.Results = append(rep.Results, runOne(ctx, o, d))
		if ctx.Err() != nil {
			break
		}
	}
	rep.Took = time.Since(rep.Started)
	return rep, nil
}

func runOne(ctx context.Context, o Options, d Drill) (res Result) {
	res = Result{Drill: d, Started: time.Now()}
	logf := func(format string, args ...any) {
		fmt.Fprintf(o.Progress, "%s %s: %s\n", time.Now().Format("15:04:05.000"), d.Name, fmt.Sprintf(format, args...))
	}
	dir := filepath.Join(o.Work, d.Name)
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		res.Err = err
		return res
	}
	e := &Env{Exe: o.Exe, Dir: dir, Repo: o.Repo, Logf: logf, Ext: o.External}
	dctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	logf("start: %s", d.Summary)
	func() {
		defer e.close()
		defer func() {
			if p := recover(); p != nil {
				res.Err = fmt.Errorf("drill panicked: %v", p)
			}
		}()
		res.Rows, res.Err = d.Run(dctx, e)
	}()
	if res.Err != nil && dctx.Err() != nil && ctx.Err() == nil {
		res.Err = fmt.Errorf("%w (the drill's time limit is %s)", res.Err, o.Timeout)
	}
	res.Skipped = errors.Is(res.Err, ErrSkip)
	res.Took = time.Since(res.Started)
	verdict := "PASS"
	switch {
	case res.Skipped:
		verdict = "skipped"
	case !res.Pass():
		verdict = "FAIL"
	}
	logf("%s in %s%s", verdict, res.Took.Round(100*time.Millisecond), errSuffix(res.Err))
	return res
}

func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	return ": " + err.Error()
}
