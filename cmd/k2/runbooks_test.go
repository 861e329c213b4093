package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/testutil"
)

// The runbooks are read from here (docs/operations/runbooks/README.md
// says what this file checks of them).
var runbookDir = filepath.Join("docs", "operations", "runbooks")

// runbookPlaceholders are the placeholders README.md defines, with the
// values the static checks give them; the run test gives real ones.
var runbookPlaceholders = map[string]string{
	"<PROMETHEUS>": "http://127.0.0.1:9090",
	"<TABLE>":      "trades",
	"<TOPIC>":      "market.crypto.trades.kraken",
	"<SYMBOL>":     "BTCUSDT",
}

// shLine is one command of a runbook's sh block, continuation lines
// joined, where it starts.
type shLine struct {
	file string
	line int
	text string
}

func (l shLine) String() string { return fmt.Sprintf("%s:%d: %s", l.file, l.line, l.text) }

// runbooks are the runbook files, relative to the repository root.
func runbooks(t *testing.T, root string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, runbookDir, "*.md"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no runbooks under %s: %v", runbookDir, err)
	}
	for i, f := range files {
		files[i], _ = filepath.Rel(root, f)
	}
	return files
}

// shBlock says whether a fence line opens a shell block: ```sh, alone or
// with a further info string (```sh recover, ```sh verify: the steps a
// drill runs, internal/drill.RunbookBlocks), which an operator types all
// the same.
func shBlock(fence string) bool {
	info, ok := strings.CutPrefix(fence, "```")
	if !ok {
		return false
	}
	lang, _, _ := strings.Cut(strings.TrimSpace(info), " ")
	return lang == "sh" || lang == "shell" || lang == "bash"
}

// shLines returns the commands of a Markdown file's shell blocks (shBlock):
// a leading "$ " dropped, a line ending in \ joined with the next.
func shLines(t *testing.T, root, file string) []shLine {
	t.Helper()
	f, err := os.Open(filepath.Join(root, file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []shLine
	in, n := false, 0
	var cur *shLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		text := sc.Text()
		trimmed := strings.TrimSpace(text)
		switch {
		case !in && shBlock(trimmed):
			in = true
			continue
		case in && strings.HasPrefix(trimmed, "```"):
			in = false
			continue
		case !in:
			continue
		}
		if cur == nil {
			trimmed = strings.TrimPrefix(trimmed, "$ ")
			if trimmed == "" || strings.HasPrefix(trimmed, "#") {
				continue
			}
			cur = &shLine{file: file, line: n}
		}
		body, more := strings.CutSuffix(trimmed, `\`)
		cur.text = strings.TrimSpace(cur.text + " " + strings.TrimSpace(body))
		if !more {
			out = append(out, *cur)
			cur = nil
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// words splits a shell command into words as sh would (single and double
// quotes, no expansion), up to the first operator: a pipe, a list, a
// redirection or a comment. A placeholder (<TABLE>) is part of a word.
func words(cmd string) []string {
	var out []string
	var w strings.Builder
	inWord := false
	var quote byte
	for i := 0; i < len(cmd); i++ {
		c := cmd[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				w.WriteByte(c)
			}
			continue
		case c == '\'' || c == '"':
			quote, inWord = c, true
			continue
		case c == ' ' || c == '\t':
			if inWord {
				out = append(out, w.String())
				w.Reset()
				inWord = false
			}
			continue
		case c == '<':
			if p := placeholderRE.FindString(cmd[i:]); p != "" && strings.HasPrefix(cmd[i:], p) {
				w.WriteString(p)
				i += len(p) - 1
				inWord = true
				continue
			}
			fallthrough
		case strings.IndexByte("|;&>", c) >= 0, c == '#' && !inWord:
			if inWord {
				out = append(out, w.String())
			}
			return out
		}
		w.WriteByte(c)
		inWord = true
	}
	if inWord {
		out = append(out, w.String())
	}
	return out
}

// k2Args returns the arguments of a command line that runs k2 (after
// environment assignments such as K2_DATA_DIR=/srv/k2), nil for another
// program.
func k2Args(line string) []string {
	ws := words(line)
	for len(ws) > 0 && regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`).MatchString(ws[0]) {
		ws = ws[1:]
	}
	if len(ws) == 0 || ws[0] != "k2" {
		return nil
	}
	return ws[1:]
}

var placeholderRE = regexp.MustCompile(`<[A-Z_]+>`)

var (
	assignmentRE = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)=(.*)$`)
	shellVarRE   = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)`)
)

// assignments returns the variables a line only sets (table=trades
// partition=5, a runbook's block the operator edits and pastes before the
// block that reads them), nil for a line that runs a command.
func assignments(line string) map[string]string {
	ws := words(line)
	if len(ws) == 0 {
		return nil
	}
	out := map[string]string{}
	for _, w := range ws {
		m := assignmentRE.FindStringSubmatch(w)
		if m == nil {
			return nil
		}
		out[m[1]] = m[2]
	}
	return out
}

// substitute puts the values of the variables set earlier in the runbook
// into args ("$partition" becomes 5), so a flag's value is checked as k2
// would see it; a variable the runbook never sets is left as written.
func substitute(args []string, vars map[string]string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = shellVarRE.ReplaceAllStringFunc(a, func(ref string) string {
			m := shellVarRE.FindStringSubmatch(ref)
			if v, ok := vars[m[1]+m[2]]; ok {
				return v
			}
			return ref
		})
	}
	return out
}

// expand replaces the placeholders in args and fails on one README.md
// does not define.
func expand(args []string, values map[string]string) ([]string, error) {
	out := make([]string, len(args))
	for i, a := range args {
		var unknown string
		out[i] = placeholderRE.ReplaceAllStringFunc(a, func(p string) string {
			v, ok := values[p]
			if !ok {
				unknown = p
			}
			return v
		})
		if unknown != "" {
			return nil, fmt.Errorf("placeholder %s is not one of README.md's", unknown)
		}
	}
	return out, nil
}

// checkCommand says why args are not a k2 command line that would run: a
// command that does not exist, a flag it does not have, arguments it does
// not take. It asks the root command as k2 builds it.
func checkCommand(args []string) (path string, dryRun bool, err error) {
	root, _ := newRoot()
	cmd, rest, err := root.Find(args)
	if err != nil {
		return "", false, err
	}
	if err := cmd.ParseFlags(rest); err != nil {
		return "", false, fmt.Errorf("%s: %w", cmd.CommandPath(), err)
	}
	positional := cmd.Flags().Args()
	if cmd.HasSubCommands() && len(positional) > 0 {
		return "", false, fmt.Errorf("%s has no command %q", cmd.CommandPath(), positional[0])
	}
	if !cmd.Runnable() {
		return "", false, fmt.Errorf("%s does nothing by itself: name one of its commands", cmd.CommandPath())
	}
	if err := cmd.ValidateArgs(positional); err != nil {
		return "", false, fmt.Errorf("%s: %w", cmd.CommandPath(), err)
	}
	dry, _ := cmd.Flags().GetBool("dry-run")
	return strings.TrimPrefix(cmd.CommandPath(), "k2 "), dry, nil
}

// The checker refuses what k2 would refuse, so a runbook's mistake fails.
func TestRunbookCommandCheckerRefusesBadCommands(t *testing.T) {
	for _, c := range []struct{ line, want string }{
		{"k2 lake statuss", `k2 lake has no command "statuss"`},
		{"k2 query stats --table-name trades", "unknown flag: --table-name"},
		{"k2 lake", "k2 lake does nothing by itself"},
		{"k2 version now", `k2 version: unknown command "now"`},
		{"k2 query stats --query-timeout soon", `invalid argument "soon"`},
	} {
		_, _, err := checkCommand(k2Args(c.line))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.line, err, c.want)
		}
	}
	if got := k2Args(`K2_DATA_DIR=/srv/k2 k2 topics describe "market.x" <TOPIC>.dlq --json | jq '.[0]' # c`); !slices.Equal(got, []string{"topics", "describe", "market.x", "<TOPIC>.dlq", "--json"}) {
		t.Errorf("words: %q", got)
	}
	// A drill's blocks are read too, and a variable set earlier in the
	// runbook is given its value: one that is not a number fails where a
	// number is wanted, as in the shell.
	for fence, want := range map[string]bool{"```sh": true, "```sh verify": true, "``` sh verify": true, "```shx": false, "```promql": false, "```": false} {
		if shBlock(fence) != want {
			t.Errorf("%s: shell block %v", fence, !want)
		}
	}
	vars := assignments(`table=trades topic=market.x partition=5 cut_at=909`)
	if vars == nil || assignments(`K2_DATA_DIR=/srv/k2 k2 lake status`) != nil {
		t.Fatalf("assignments: %v", vars)
	}
	line := `k2 lake offsets set --table "$table" --topic "${topic}" --partition "$partition" --offset "$cut_at"`
	if _, _, err := checkCommand(substitute(k2Args(line), vars)); err != nil {
		t.Errorf("%s, with %v: %v", line, vars, err)
	}
	vars["partition"] = "five"
	if _, _, err := checkCommand(substitute(k2Args(line), vars)); err == nil || !strings.Contains(err.Error(), `invalid argument "five"`) {
		t.Errorf("%s, with partition=five: %v", line, err)
	}
}

// Every k2 command a runbook tells an operator to type exists, with the
// flags and arguments it gives.
func TestRunbookCommandsExist(t *testing.T) {
	root := testutil.RepoRoot(t)
	n := 0
	for _, file := range runbooks(t, root) {
		vars := map[string]string{}
		for _, l := range shLines(t, root, file) {
			maps.Copy(vars, assignments(l.text))
			args := k2Args(l.text)
			if args == nil {
				continue
			}
			n++
			expanded, err := expand(substitute(args, vars), runbookPlaceholders)
			if err == nil {
				_, _, err = checkCommand(expanded)
			}
			if err != nil {
				t.Errorf("%s\n\t%v", l, err)
			}
		}
	}
	if n == 0 {
		t.Fatal("no k2 command in any runbook")
	}
}

// Every relative link of a runbook leads to a file of the repository.
func TestRunbookLinksResolve(t *testing.T) {
	root := testutil.RepoRoot(t)
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	missing := map[string][]string{} // target: where it is linked
	for _, file := range runbooks(t, root) {
		b, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			for _, m := range link.FindAllStringSubmatch(line, -1) {
				target, _, _ := strings.Cut(m[1], "#")
				if target == "" || strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				full := filepath.Join(filepath.Dir(file), filepath.FromSlash(target))
				if _, err := os.Stat(filepath.Join(root, full)); err != nil {
					missing[full] = append(missing[full], fmt.Sprintf("%s:%d", filepath.Base(file), i+1))
				}
			}
		}
	}
	for _, target := range slices.Sorted(maps.Keys(missing)) {
		t.Errorf("%s does not exist; linked from %s", target, strings.Join(missing[target], ", "))
	}
}

// readOnly says whether a runbook's command only reads: those are run
// below. The others (maintenance that rewrites tables, loads, the roles
// that run as services) are checked above and run by their own tests and
// the drills.
func readOnly(path string, dryRun bool) bool {
	switch {
	case strings.HasPrefix(path, "query "), path == "lake status", path == "topics list", path == "topics describe",
		strings.HasPrefix(path, "ops alerts "), path == "version":
		return true
	}
	return dryRun && strings.HasPrefix(path, "lake ")
}

// The default addresses the runbooks' curl commands name
// (README.md): the roles' HTTP listeners and the schema registry.
var (
	curlURL      = regexp.MustCompile(`(?:https?://)?127\.0\.0\.1:(80\d\d)(/[^\s'"|>]*)?`)
	roleHTTP     = map[string]bool{"8000": true, "8001": true, "8002": true, "8003": true, "8004": true, "8005": true}
	registryPort = "8081"
)

// The runbooks' read-only k2 commands succeed against a real lake and the
// embedded broker and registry, and their curl commands reach routes that
// K2 serves: a k2 api process for the roles' listeners (the API's routes
// and /health, /ready, /metrics, /version, /debug/pprof), the embedded
// registry for 8081.
func TestRunbookCommandsRun(t *testing.T) {
	root := testutil.RepoRoot(t)
	data := t.TempDir()
	capture := testutil.Data(t, "kraken", "kraken_v2_trade_BTC-USDT.from-rest.jsonl")
	if _, e, code := run(t, "--data-dir", data, "load", "kraken-ws", capture, "--no-progress"); code != 0 {
		t.Fatalf("load: %s", e)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	local, err := bus.StartLocal(ctx, bus.LocalConfig{Dir: t.TempDir(), BrokerListen: "127.0.0.1:0", RegistryListen: "127.0.0.1:0",
		Topology: bus.DefaultTopology()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(local.Close) // after k2 api stops (cleanups run last first)
	prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"status":"success","data":{"alerts":[]}}`))
	}))
	defer prom.Close()
	// Configured as the runbooks assume: by K2_* variables, in the
	// repository (k2 ops alerts validate reads it from there).
	t.Setenv("K2_DATA_DIR", data)
	t.Setenv("K2_BROKERS", local.Brokers()[0])
	t.Setenv("K2_REGISTRY", local.RegistryURL())
	t.Chdir(root)
	values := map[string]string{"<PROMETHEUS>": prom.URL}
	for k, v := range runbookPlaceholders {
		if _, ok := values[k]; !ok {
			values[k] = v
		}
	}

	api := startAPI(t, ctx)

	ran, requests := 0, 0
	for _, file := range runbooks(t, root) {
		for _, l := range shLines(t, root, file) {
			if args := k2Args(l.text); args != nil {
				expanded, err := expand(args, values)
				if err != nil {
					continue // reported by TestRunbookCommandsExist
				}
				path, dry, err := checkCommand(expanded)
				if err != nil || !readOnly(path, dry) {
					continue
				}
				ran++
				if out, e, code := run(t, expanded...); code != 0 {
					t.Errorf("%s\n\texit %d: %s%.300s", l, code, e, out)
				}
				continue
			}
			if !strings.HasPrefix(strings.TrimSpace(l.text), "curl ") && !strings.Contains(l.text, "| curl ") {
				continue
			}
			for _, m := range curlURL.FindAllStringSubmatch(l.text, -1) {
				requests++
				if err := curlReaches(l.text, m[1], m[2], api, local.RegistryURL()); err != nil {
					t.Errorf("%s\n\t%v", l, err)
				}
			}
		}
	}
	if ran == 0 || requests == 0 {
		t.Fatalf("%d runbook commands run, %d curl requests sent", ran, requests)
	}
	t.Logf("%d read-only k2 commands run, %d curl requests sent", ran, requests)
	// The check finds a route that is not there.
	for _, c := range [][2]string{{"curl -s 127.0.0.1:8000/v1/nothing", "8000"}, {"curl -s 127.0.0.1:8081/nothing", "8081"}} {
		if err := curlReaches(c[0], c[1], strings.TrimPrefix(c[0], "curl -s 127.0.0.1:"+c[1]), api, local.RegistryURL()); err == nil {
			t.Errorf("%s: passes", c[0])
		}
	}
}

// startAPI runs k2 api in this process, configured by the environment,
// until the test ends, and returns its address once it answers.
func startAPI(t *testing.T, ctx context.Context) string {
	t.Helper()
	limit := debug.SetMemoryLimit(-1)
	addr := testutil.FreeAddr(t)
	ctx, cancel := context.WithCancel(ctx)
	root, _ := newRoot()
	root.SetOut(io.Discard)
	root.SetArgs([]string{"--log-level", "error", "api", "--http-listen", addr})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("k2 api: %v", err)
		}
		debug.SetMemoryLimit(limit) // k2 api set its --memory-limit
	})
	testutil.WaitFor(t, "k2 api to answer", 30*time.Second, func() bool {
		select {
		case err := <-done:
			t.Fatalf("k2 api stopped: %v", err)
		default:
		}
		resp, err := http.Get("http://" + addr + "/v1/stats")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return addr
}

// curlReaches sends a runbook's curl request to the process that serves
// its port. A role's route must answer 200 (they are what an operator reads
// to diagnose); a registry route must exist (its answer depends on the
// subject and the body, which the runbook's reader supplies).
func curlReaches(line, port, path, api, registry string) error {
	if path == "" {
		path = "/"
	}
	// A CPU profile takes the seconds it is asked for: one is enough here.
	path = regexp.MustCompile(`seconds=\d+`).ReplaceAllString(path, "seconds=1")
	method, body := "GET", ""
	ws := strings.Fields(line)
	for i, w := range ws {
		if (w == "-X" || w == "--request") && i+1 < len(ws) {
			method = ws[i+1]
		}
		if (w == "--data" || w == "-d") && i+1 < len(ws) && !strings.HasPrefix(ws[i+1], "@") {
			if d := words(strings.Join(ws[i+1:], " ")); len(d) > 0 {
				body = d[0]
			}
		}
	}
	var base string
	switch {
	case roleHTTP[port]:
		base = "http://" + api
	case port == registryPort:
		base = registry
	default:
		return fmt.Errorf("port %s is none of K2's default addresses (README.md)", port)
	}
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	if port == registryPort {
		// No route answers 405, or 404 with error_code 404; a subject or
		// version the registry lacks is 404 with Confluent's 4040x.
		var e struct {
			Code int `json:"error_code"`
		}
		json.Unmarshal(b, &e)
		if resp.StatusCode == http.StatusMethodNotAllowed || resp.StatusCode == http.StatusNotFound && (e.Code == 0 || e.Code == 404) {
			return fmt.Errorf("%s %s: the registry has no such route: %d %s", method, path, resp.StatusCode, b)
		}
		return nil
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return nil
}
