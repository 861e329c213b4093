package bench

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// apiRun is what one run of a scenario measured.
type apiRun struct {
	requests  int
	took      time.Duration // from the first request sent to the last answer
	latencies []time.Duration
	codes     map[int]int // answers by HTTP status; 0: none (connection error, timeout)
	firstErr  string
	bytesIn   uint64
	checked   int
	wrong     int
	firstBad  string
	cpu       cpuUse
}

func (r *apiRun) rate() float64 { return float64(r.requests) / r.took.Seconds() }

// errors counts the requests that did not get a 2xx answer.
func (r *apiRun) errors() int {
	n := 0
	for code, c := range r.codes {
		if code < 200 || code >= 300 {
			n += c
		}
	}
	return n
}

// errorText says how the requests failed: by status, then the wrong
// answers among those checked.
func (r *apiRun) errorText() string {
	var parts []string
	codes := make([]int, 0, len(r.codes))
	for c := range r.codes {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	for _, c := range codes {
		name := strconv.Itoa(c)
		if c == 0 {
			name = "no answer"
		}
		parts = append(parts, fmt.Sprintf("%s: %d", name, r.codes[c]))
	}
	s := strings.Join(parts, ", ")
	if r.firstErr != "" {
		s += " (first: " + r.firstErr + ")"
	}
	s += fmt.Sprintf("; %d of %d answers checked were wrong", r.wrong, r.checked)
	if r.firstBad != "" {
		s += " (first: " + r.firstBad + ")"
	}
	return s
}

// attack loads the API with one scenario for d, each answer's latency and
// status kept and one in CheckEvery checked. With during set, it is
// called once the load has run for a moment, and the load lasts until it
// returns.
func (b *apiBench) attack(ctx context.Context, sc apiScenario, d time.Duration, during func()) (*apiRun, error) {
	n := b.o.Connections
	atk := vegeta.NewAttacker(vegeta.Connections(n), vegeta.MaxConnections(n),
		vegeta.Workers(uint64(n)), vegeta.MaxWorkers(uint64(n)), vegeta.KeepAlive(true), vegeta.Timeout(30*time.Second))
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(b.o.Seed, uint64(time.Now().UnixNano())))
	targets := func(t *vegeta.Target) error {
		mu.Lock()
		p := sc.path(rng)
		mu.Unlock()
		if p == "" {
			return vegeta.ErrNoTargets
		}
		t.Method, t.URL = http.MethodGet, b.base+p
		return nil
	}
	if during != nil {
		d = 0 // until stopped
	}
	results := atk.Attack(targets, vegeta.Rate{Freq: cmp.Or(sc.rate, b.o.Rate), Per: time.Second}, d, sc.key)
	stop := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			atk.Stop()
		case <-stop:
		}
	}()
	defer close(stop)
	if during != nil {
		go func() {
			time.Sleep(500 * time.Millisecond) // the load under way
			during()
			atk.Stop()
		}()
	}
	run := &apiRun{codes: map[int]int{}}
	var first, last time.Time
	for res := range results {
		if res.Method == "" {
			continue // not a request: the targets ran out
		}
		run.requests++
		if first.IsZero() || res.Timestamp.Before(first) {
			first = res.Timestamp
		}
		if end := res.End(); end.After(last) {
			last = end
		}
		run.latencies = append(run.latencies, res.Latency)
		run.codes[int(res.Code)]++
		run.bytesIn += res.BytesIn
		ok := res.Code >= 200 && res.Code < 300
		if !ok && run.firstErr == "" {
			run.firstErr = failureText(res)
		}
		if ok && res.Seq%uint64(b.o.CheckEvery) == 0 {
			run.checked++
			u, err := url.Parse(res.URL)
			if err == nil {
				err = sc.check(u, res.Body)
			}
			if err != nil {
				run.wrong++
				if run.firstBad == "" {
					run.firstBad = err.Error()
				}
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if run.requests == 0 {
		return nil, fmt.Errorf("%s: no request was made", sc.name)
	}
	run.took = last.Sub(first)
	slices.Sort(run.latencies)
	if b.up != nil && b.up.exited() {
		return nil, b.up.failure()
	}
	return run, nil
}

// failureText says how a request failed: its status and the start of
// the answer, or the client's error.
func failureText(res *vegeta.Result) string {
	body := string(res.Body[:min(len(res.Body), 200)])
	return strings.TrimSpace(res.Error + " " + body)
}

// measured runs a scenario while following the CPU time of the server
// (from its /metrics), of this process and of the whole machine.
func (b *apiBench) measured(ctx context.Context, sc apiScenario, d time.Duration, during func()) (*apiRun, error) {
	cpu := b.cpuMeter(ctx)
	run, err := b.attack(ctx, sc, d, during)
	if err != nil {
		return nil, err
	}
	run.cpu = cpu()
	return run, nil
}

// run has the server read each part of the lake a scenario reads once,
// warms it up, measures it, judges its targets and profiles the server
// under a further run of it, into rep.
func (b *apiBench) run(ctx context.Context, sc apiScenario, rep *Report) error {
	o := b.o
	warm := func(what string, sc apiScenario, d time.Duration) error {
		fmt.Fprintf(o.Progress, "%s: %s…\n", sc.name, what)
		w, err := b.measured(ctx, sc, d, nil)
		if err != nil {
			return err
		}
		fmt.Fprintf(o.Progress, "  %s\n", runLine(w))
		rep.Results = append(rep.Results, Result{Name: sc.name + ", " + what, Rows: b.rows, Value: w.rate(), Unit: "req/s",
			Detail: fmt.Sprintf("%d requests in %.1f s; p50 %.1f ms, p99 %.1f ms; errors %d",
				w.requests, w.took.Seconds(), ms(quantile(w.latencies, 0.5)), ms(quantile(w.latencies, 0.99)), w.errors()+w.wrong)})
		return nil
	}
	// A server that has run a while has read each part of the lake once.
	if err := warm(sc.firstName, sc.inTurn(), 0); err != nil {
		return err
	}
	if o.Warmup > 0 {
		if err := warm("warm-up", sc, o.Warmup); err != nil {
			return err
		}
	}
	fmt.Fprintf(o.Progress, "%s: measuring for %s…\n", sc.name, o.Duration)
	r, err := b.measured(ctx, sc, o.Duration, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(o.Progress, "  %s\n", runLine(r))
	rep.Results = append(rep.Results, runResults(sc, r, b.rows, o)...)
	// Latency is judged at the target rate: 64 connections sent as fast
	// as they are answered queue behind each other, so their latency says
	// more about the queue than about the server.
	var at *apiRun
	if o.Rate == 0 {
		paced := sc
		paced.rate = int(sc.minRate)
		fmt.Fprintf(o.Progress, "%s: at the target of %s req/s for %s…\n", sc.name, groupDigits(int64(sc.minRate)), o.Duration)
		if at, err = b.measured(ctx, paced, o.Duration, nil); err != nil {
			return err
		}
		fmt.Fprintf(o.Progress, "  %s\n", runLine(at))
		rep.Results = append(rep.Results, pacedResults(sc, at, b.rows)...)
	}
	rep.Checks = append(rep.Checks, judgeAPI(sc, r, at)...)
	if o.ProfileFor <= 0 {
		return nil
	}
	fmt.Fprintf(o.Progress, "%s: profiling the server for %s under the same load…\n", sc.name, o.ProfileFor)
	prof, err := b.profile(ctx, sc)
	if err != nil {
		// The figures stand without it.
		o.Logger.Warn("profile failed", "scenario", sc.name, "error", err)
		rep.Profiles = append(rep.Profiles, Profile{Run: sc.name, Note: "no profile: " + err.Error()})
		return nil
	}
	rep.Profiles = append(rep.Profiles, prof...)
	return nil
}

// runLine is a run in one progress line.
func runLine(r *apiRun) string {
	return fmt.Sprintf("%.0f req/s · p50 %.1f ms · p99 %.1f ms · errors %d · %d/%d checked answers wrong · %s",
		r.rate(), ms(quantile(r.latencies, 0.5)), ms(quantile(r.latencies, 0.99)), r.errors(), r.wrong, r.checked, r.cpu)
}

// runResults are a measured run's figures.
func runResults(sc apiScenario, r *apiRun, rows int, o APIOptions) []Result {
	lat := func(label string, q float64) Result {
		return Result{Name: sc.name + ", " + label, Rows: rows, Value: ms(quantile(r.latencies, q)), Unit: "ms"}
	}
	return []Result{
		{Name: sc.name + ", requests/s", Rows: rows, Value: r.rate(), Unit: "req/s",
			Detail: fmt.Sprintf("%d requests in %.1f s, %d connections; %s", r.requests, r.took.Seconds(), o.Connections, r.cpu)},
		lat("p50", 0.5), lat("p90", 0.9), lat("p99", 0.99),
		{Name: sc.name + ", max", Rows: rows, Value: ms(r.latencies[len(r.latencies)-1]), Unit: "ms"},
		{Name: sc.name + ", errors", Rows: rows, Value: float64(r.errors() + r.wrong), Unit: "", Detail: r.errorText()},
		{Name: sc.name + ", mean answer", Rows: rows, Value: float64(r.bytesIn) / float64(r.requests), Unit: "bytes"},
		cpuPerRequest(sc, r, rows),
	}
}

// cpuPerRequest is the server's CPU time per request, with the load
// generator's: on a machine shared with others' work it varies less than
// requests/s, and it bounds what the machine's cores could answer.
func cpuPerRequest(sc apiScenario, r *apiRun, rows int) Result {
	server, load := 1000*r.cpu.server/r.rate(), 1000*r.cpu.load/r.rate()
	return Result{Name: sc.name + ", server CPU per request", Rows: rows, Value: server, Unit: "ms",
		Detail: fmt.Sprintf("the live feed and sink beside it included; load generator %.2f ms; at these costs %d cores would answer at most %.0f req/s", load, runtime.NumCPU(), float64(runtime.NumCPU())*1000/(server+load))}
}

// pacedResults are the figures of a run at the scenario's target rate.
func pacedResults(sc apiScenario, r *apiRun, rows int) []Result {
	name := fmt.Sprintf("%s at %s req/s, ", sc.name, groupDigits(int64(sc.minRate)))
	lat := func(label string, q float64) Result {
		return Result{Name: name + label, Rows: rows, Value: ms(quantile(r.latencies, q)), Unit: "ms"}
	}
	return []Result{
		{Name: name + "reached", Rows: rows, Value: r.rate(), Unit: "req/s",
			Detail: fmt.Sprintf("%d requests in %.1f s; %s", r.requests, r.took.Seconds(), r.cpu)},
		lat("p50", 0.5), lat("p99", 0.99),
		{Name: name + "max", Rows: rows, Value: ms(r.latencies[len(r.latencies)-1]), Unit: "ms"},
		{Name: name + "errors", Rows: rows, Value: float64(r.errors() + r.wrong), Detail: r.errorText()},
	}
}

// judgeAPI judges a scenario's targets: its rate on the run as fast as
// the connections go (r), its latency on the run at the target rate (at;
// r's when there is none), which must reach that rate, and errors on both.
func judgeAPI(sc apiScenario, r, at *apiRun) []Check {
	status := func(ok bool) string {
		if ok {
			return checkPass
		}
		return checkFail
	}
	runs := []*apiRun{r}
	lat, where, paced := r, "", true
	if at != nil {
		runs = append(runs, at)
		lat, where = at, fmt.Sprintf(" at %.0f req/s", at.rate())
		paced = at.rate() >= 0.98*sc.minRate
		if !paced {
			where += fmt.Sprintf(", short of the %s asked", groupDigits(int64(sc.minRate)))
		}
	}
	p99 := quantile(lat.latencies, 0.99)
	errs, wrong, checked := 0, 0, 0
	for _, x := range runs {
		errs, wrong, checked = errs+x.errors(), wrong+x.wrong, checked+x.checked
	}
	return []Check{
		{Name: fmt.Sprintf("%s ≥ %s req/s", sc.name, groupDigits(int64(sc.minRate))), Status: status(r.rate() >= sc.minRate),
			Detail: fmt.Sprintf("%.0f req/s", r.rate())},
		{Name: fmt.Sprintf("%s p99 ≤ %d ms", sc.name, sc.maxP99.Milliseconds()), Status: status(p99 <= sc.maxP99 && paced),
			Detail: fmt.Sprintf("%.1f ms%s", ms(p99), where)},
		{Name: sc.name + " errors 0", Status: status(errs+wrong == 0 && checked > 0),
			Detail: fmt.Sprintf("%d errors, %d wrong of %d answers checked", errs, wrong, checked)},
	}
}
