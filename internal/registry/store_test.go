package registry

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"
)

func TestRestartKeepsIDsVersionsAndConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	e := start(t, dir)
	e.register(t, "trades-value", tradeV1)
	e.register(t, "trades-value", tradeV2)
	e.register(t, "quotes-value", quoteV1)
	e.register(t, "archive-value", tradeV1Spaced)
	if err := e.cl.SetCompatibility(ctx, "trades-value", CompatFull); err != nil {
		t.Fatal(err)
	}
	if err := e.cl.SetCompatibility(ctx, "", CompatForward); err != nil {
		t.Fatal(err)
	}
	e.stop()

	e = start(t, dir)
	for _, c := range []struct {
		subject       string
		version, id   int
		text          string
		versionsAfter []int
	}{
		{"trades-value", 1, 1, tradeV1, []int{1, 2}},
		{"trades-value", 2, 2, tradeV2, []int{1, 2}},
		{"quotes-value", 1, 3, quoteV1, []int{1}},
		{"archive-value", 1, 1, tradeV1, []int{1}}, // text as first registered under id 1
	} {
		ss, err := e.sr.SchemaByVersion(ctx, c.subject, c.version)
		if err != nil {
			t.Fatal(err)
		}
		if ss.ID != c.id || ss.Schema.Schema != c.text {
			t.Fatalf("%s v%d after restart: id %d text %q", c.subject, c.version, ss.ID, ss.Schema.Schema)
		}
		if vs, _ := e.sr.SubjectVersions(ctx, c.subject); !slices.Equal(vs, c.versionsAfter) {
			t.Fatalf("%s versions %v", c.subject, vs)
		}
	}
	if got := e.sr.Compatibility(ctx, "trades-value"); got[0].Level != sr.CompatFull {
		t.Fatalf("subject level after restart: %+v", got[0])
	}
	if got := e.sr.Compatibility(ctx); got[0].Level != sr.CompatForward {
		t.Fatalf("global level after restart: %+v", got[0])
	}
	// Levels are still enforced, existing schemas keep their ids, and new
	// ones continue the sequence.
	if _, err := e.cl.Register(ctx, "trades-value", tradeNoPrice); err == nil {
		t.Fatal("FULL not enforced after restart")
	}
	if id := e.register(t, "trades-value", tradeV1Spaced); id != 1 {
		t.Fatalf("re-registered v1 got id %d", id)
	}
	if id := e.register(t, "orders-value", tradeNoPrice); id != 4 {
		t.Fatalf("new schema after restart got id %d, want 4", id)
	}
	if id := e.register(t, "quotes-value", `{"type":"record","name":"Quote","namespace":"k2.test","fields":[{"name":"bid","type":"double"},{"name":"ask","type":"double"},{"name":"venue","type":"string","default":""}]}`); id != 5 {
		t.Fatalf("new version after restart got id %d, want 5", id)
	}
	if vs, _ := e.sr.SubjectVersions(ctx, "quotes-value"); !slices.Equal(vs, []int{1, 2}) {
		t.Fatalf("quotes versions %v", vs)
	}
}

func TestTornLastLineIsDropped(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	e := start(t, dir)
	e.register(t, "trades-value", tradeV1)
	e.register(t, "trades-value", tradeV2)
	e.stop()

	path := filepath.Join(dir, LogFile)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// A crash in the middle of appending the next line.
	line, err := encodeLine(record{Op: opSchema, Subject: "quotes-value", Version: 1, ID: 3, Schema: quoteV1})
	if err != nil {
		t.Fatal(err)
	}
	for _, torn := range [][]byte{line[:len(line)/2], line[:len(line)-1], []byte("\x00\x00\x00\x00")} {
		if err := os.WriteFile(path, append(slices.Clone(good), torn...), 0o644); err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		e = start(t, dir, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
		if !strings.Contains(logs.String(), "torn") {
			t.Errorf("no warning logged for a torn tail: %q", logs.String())
		}
		if vs, _ := e.sr.SubjectVersions(context.Background(), "trades-value"); !slices.Equal(vs, []int{1, 2}) {
			t.Fatalf("versions after recovery %v", vs)
		}
		// The tail is cut off, so the next append starts a clean line.
		if now, _ := os.ReadFile(path); !bytes.Equal(now, good) {
			t.Fatalf("torn tail not truncated: %d bytes, want %d", len(now), len(good))
		}
		if id := e.register(t, "quotes-value", quoteV1); id != 3 {
			t.Fatalf("id after recovery %d, want 3", id)
		}
		e.stop()
		e = start(t, dir)
		if id := e.register(t, "quotes-value", quoteV1); id != 3 {
			t.Fatalf("id after second reopen %d, want 3", id)
		}
		e.stop()
	}
}

func TestCorruptionFailsOpen(t *testing.T) {
	t.Parallel()
	seed := t.TempDir()
	e := start(t, seed)
	e.register(t, "trades-value", tradeV1)
	e.register(t, "trades-value", tradeV2)
	e.register(t, "quotes-value", quoteV1)
	e.stop()
	good, err := os.ReadFile(filepath.Join(seed, LogFile))
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(good, []byte("\n"))
	lines = lines[:len(lines)-1] // the empty remainder after the last newline

	mustLine := func(rec record) []byte {
		b, err := encodeLine(rec)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := []struct {
		name string
		log  [][]byte
		want string
	}{
		{"garbled middle line", [][]byte{lines[0], []byte("{\"crc\":1,\"rec\":{\"op\"\n"), lines[2]}, "line 2 is corrupt"},
		{"flipped id", [][]byte{lines[0], bytes.Replace(lines[1], []byte(`"id":2`), []byte(`"id":3`), 1), lines[2]}, "line 2 is corrupt: checksum"},
		{"complete bad last line", [][]byte{lines[0], lines[1], []byte("not json\n")}, "line 3 is corrupt"},
		{"blank line", [][]byte{lines[0], []byte("\n"), lines[1]}, "line 2 is corrupt"},
		{"version gap", [][]byte{lines[0], mustLine(record{Op: opSchema, Subject: "trades-value", Version: 3, ID: 2, Schema: tradeV2})}, "version 3, expected 2"},
		{"id gap", [][]byte{lines[0], mustLine(record{Op: opSchema, Subject: "q", Version: 1, ID: 5, Schema: quoteV1})}, "out of sequence"},
		{"id reused for another schema", [][]byte{lines[0], mustLine(record{Op: opSchema, Subject: "q", Version: 1, ID: 1, Schema: quoteV1})}, "two different schemas"},
		{"unknown op", [][]byte{lines[0], mustLine(record{Op: "rename", Subject: "q"})}, `unknown record op "rename"`},
		{"permanent delete before soft", [][]byte{lines[0], mustLine(record{Op: opDelete, Subject: "trades-value", Permanent: true})}, "was not deleted first"},
		{"delete of an unknown subject", [][]byte{lines[0], mustLine(record{Op: opDelete, Subject: "q"})}, "Subject 'q' not found"},
		{"bad level", [][]byte{lines[0], mustLine(record{Op: opConfig, Compatibility: "SIDEWAYS"})}, "SIDEWAYS"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, LogFile), bytes.Join(c.log, nil), 0o644); err != nil {
				t.Fatal(err)
			}
			r, err := Open(dir)
			if err == nil {
				r.Close()
				t.Fatal("Open accepted a corrupt log")
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), filepath.Join(dir, LogFile)) {
				t.Fatalf("error %q does not name the log and %q", err, c.want)
			}
			// Open released the lock: a repaired log can be opened.
			if err := os.WriteFile(filepath.Join(dir, LogFile), lines[0], 0o644); err != nil {
				t.Fatal(err)
			}
			r, err = Open(dir)
			if err != nil {
				t.Fatalf("reopen after repair: %v", err)
			}
			r.Close()
		})
	}
}

func TestOneRegistryPerDirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if r2, err := Open(dir); err == nil {
		r2.Close()
		t.Fatal("a second Registry opened the same directory")
	} else if !strings.Contains(err.Error(), "already open") {
		t.Fatalf("error %q", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r, err = Open(dir)
	if err != nil {
		t.Fatalf("reopen after Close: %v", err)
	}
	r.Close()
}

func TestClosedRegistryRefusesWrites(t *testing.T) {
	t.Parallel()
	e := start(t, t.TempDir())
	e.register(t, "trades-value", tradeV1)
	if err := e.reg.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := e.sr.RegisterSchema(context.Background(), "trades-value", avroSchema(tradeV2), -1, -1)
	wantAPIError(t, err, 500, 50001)
	if id := e.register(t, "trades-value", tradeV1); id != 1 {
		t.Fatalf("idempotent registration after Close: %d", id)
	}
	if s, err := e.cl.SchemaByID(context.Background(), 1); err != nil || s != tradeV1 {
		t.Fatalf("read after Close: %q %v", s, err)
	}
}

func TestOpenOptions(t *testing.T) {
	t.Parallel()
	if _, err := Open(t.TempDir(), WithDefaultCompatibility("SIDEWAYS")); err == nil {
		t.Fatal("accepted an unknown default level")
	}
	dir := t.TempDir()
	e := start(t, dir, WithDefaultCompatibility("full_transitive"))
	if got := e.sr.Compatibility(context.Background()); got[0].Level != sr.CompatFullTransitive {
		t.Fatalf("default level %+v", got[0])
	}
	if err := e.cl.SetCompatibility(context.Background(), "", CompatNone); err != nil {
		t.Fatal(err)
	}
	e.stop()
	// A level set through the API is persisted and wins over the option.
	e = start(t, dir, WithDefaultCompatibility(CompatFull))
	if got := e.sr.Compatibility(context.Background()); got[0].Level != sr.CompatNone {
		t.Fatalf("persisted level %+v", got[0])
	}
}

// evolving returns n schemas of one record, schema i with fields f0…fi,
// each optional with a default, so any order of registration is
// BACKWARD compatible and concurrency, not compatibility, decides.
func evolving(n int) []string {
	out := make([]string, n)
	for i := range out {
		var fields []string
		for j := 0; j <= i; j++ {
			fields = append(fields, fmt.Sprintf(`{"name":"f%d","type":["null","long"],"default":null}`, j))
		}
		out[i] = `{"type":"record","name":"Evolving","namespace":"k2.test","fields":[` + strings.Join(fields, ",") + `]}`
	}
	return out
}

func TestConcurrentRegistration(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	e := start(t, dir)
	ctx := context.Background()
	schemas := evolving(8)
	const workers, subjects = 16, 4

	type got struct {
		subject string
		schema  int
		id      int
	}
	results := make(chan got, workers*len(schemas))
	errs := make(chan error, workers*len(schemas))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			subject := fmt.Sprintf("s-%d", w%subjects)
			for k := range schemas {
				i := (k + w) % len(schemas) // each worker starts elsewhere
				var id int
				var err error
				if w%2 == 0 {
					id, err = e.sr.RegisterSchema(ctx, subject, avroSchema(schemas[i]), -1, -1)
				} else {
					var u uint32
					u, err = e.cl.Register(ctx, subject, schemas[i])
					id = int(u)
				}
				if err != nil {
					errs <- err
					return
				}
				// Read while others write.
				if _, err := e.cl.SchemaByID(ctx, uint32(id)); err != nil {
					errs <- err
					return
				}
				results <- got{subject, i, id}
			}
		}()
	}
	wg.Wait()
	close(results)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	idOf := map[int]int{}
	for r := range results {
		if prev, ok := idOf[r.schema]; ok && prev != r.id {
			t.Fatalf("schema %d got ids %d and %d", r.schema, prev, r.id)
		}
		idOf[r.schema] = r.id
	}
	ids := make([]int, 0, len(idOf))
	for _, id := range idOf {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	if want := []int{1, 2, 3, 4, 5, 6, 7, 8}; !slices.Equal(ids, want) {
		t.Fatalf("ids %v, want one dense id per schema %v", ids, want)
	}

	check := func(e *env) {
		t.Helper()
		for s := range subjects {
			subject := fmt.Sprintf("s-%d", s)
			vs, err := e.sr.SubjectVersions(ctx, subject)
			if err != nil || !slices.Equal(vs, []int{1, 2, 3, 4, 5, 6, 7, 8}) {
				t.Fatalf("%s versions %v %v", subject, vs, err)
			}
			for i, text := range schemas {
				ss, err := e.sr.LookupSchema(ctx, subject, avroSchema(text))
				if err != nil || ss.ID != idOf[i] {
					t.Fatalf("%s schema %d: %+v %v, want id %d", subject, i, ss, err, idOf[i])
				}
			}
		}
	}
	check(e)
	e.stop()
	check(start(t, dir))
}

func TestFailedAppendIsNotAcknowledged(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	e := start(t, dir)
	e.register(t, "trades-value", tradeV1)
	// Pull the file out from under the store: the write fails, and so does
	// the truncate that would roll it back, so the store must refuse
	// every later write rather than append after a possible partial line.
	e.reg.store.f.Close()
	_, err := e.sr.RegisterSchema(context.Background(), "trades-value", avroSchema(tradeV2), -1, -1)
	wantAPIError(t, err, 500, 50001)
	_, err = e.sr.RegisterSchema(context.Background(), "trades-value", avroSchema(tradeV2), -1, -1)
	re := wantAPIError(t, err, 500, 50001)
	if !strings.Contains(re.Message, "reopen the registry") {
		t.Fatalf("message %q", re.Message)
	}
	if vs, _ := e.sr.SubjectVersions(context.Background(), "trades-value"); !slices.Equal(vs, []int{1}) {
		t.Fatalf("a failed write created versions %v", vs)
	}
	e.srv.Close()
	e.srv = nil
	e.reg.store.f = nil // already closed
	e = start(t, dir)
	if id := e.register(t, "trades-value", tradeV2); id != 2 {
		t.Fatalf("after reopening: id %d", id)
	}
}
