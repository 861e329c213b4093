package main

// The roles against a secured cluster: the test broker's SASL_SSL listener
// and a registry over HTTPS with basic auth.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/bus/bustest"
	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/lake/laketest"
	"github.com/k2-market-data/k2/internal/testsvc"
	"github.com/k2-market-data/k2/internal/testutil"
)

// securedCluster is the stream tests' cluster on the test broker, with a
// registry over HTTPS behind basic auth. Its own admin client and checks
// use the broker's plaintext listener; the k2 processes are given the
// SASL_SSL listener through settings (settings) and passwords through the
// environment (env).
type securedCluster struct {
	*cluster
	settings []string // k2 flags
	env      []string // K2_* variables
	sasl     testsvc.SecuredKafka
}

func securedStack(t *testing.T, mechanism string) *securedCluster {
	t.Helper()
	k := testsvc.KafkaSecured(t)
	k2Binary(t)
	regURL, regCA := bustest.HTTPSRegistry(t, "k2-registry", "registry-secret")
	dir := t.TempDir()
	s := &securedCluster{sasl: k, cluster: &cluster{brokers: k.Plaintext, registry: regURL, prefix: testsvc.KafkaTopicPrefix(t), dataDir: dir}}
	s.open(t)
	var err error
	if s.reg, err = bus.RegistryClient(config.Kafka{Registry: regURL, RegistryTLS: config.TLSFiles{CAFile: regCA},
		RegistryAuth: config.Credentials{User: "k2-registry", Password: "registry-secret"}}); err != nil {
		t.Fatal(err)
	}
	s.settings = []string{"--brokers", k.SASLBrokers, "--registry", regURL, "--topic-prefix", s.prefix,
		"--kafka-security-protocol", "SASL_SSL", "--kafka-sasl-mechanism", mechanism, "--kafka-sasl-user", k.User,
		"--kafka-tls-ca-file", k.CAFile, "--registry-tls-ca-file", regCA, "--registry-user", "k2-registry"}
	s.env = []string{config.EnvKafkaSASLPassword + "=" + k.Password, config.EnvRegistryPassword + "=registry-secret"}
	return s
}

// command is k2 with args, the secured settings and passwords.
func (s *securedCluster) command(t *testing.T, args ...string) *exec.Cmd {
	cmd := exec.Command(k2Binary(t), append(args, s.settings...)...)
	cmd.Env = append(os.Environ(), s.env...)
	return cmd
}

// wrongPasswordExit bounds how long a role refused by the broker runs,
// from its start: the clients would retry for ever, and bus.Check stops
// the start instead. Each role exited 0.42-0.68 s after its start in four
// runs of both mechanisms; three times the worst is 2 s, and 10 s is the
// floor for a machine busy with other test packages.
const wrongPasswordExit = 10 * time.Second

var synthSummary = regexp.MustCompile(`synth: (\d+) trades, (\d+) quotes produced`)

// A synthetic feed and a sink, each its own process, move every trade and
// quote through the SASL_SSL listener (PLAIN, then SCRAM-SHA-512) and a
// registry over HTTPS into the lake exactly once, and k2 api's tail reads
// them all; no password appears in their logs.
func TestFeedAndSinkThroughSASLSSL(t *testing.T) {
	testsvc.KafkaSecured(t) // skips the whole test without the listener
	for _, mechanism := range []string{config.SASLPlain, config.SASLScramSHA512} {
		t.Run(mechanism, func(t *testing.T) {
			s := securedStack(t, mechanism)
			const trades = 3000
			feedLog := logFile(t, s.dataDir, "feed")
			feed := s.command(t, "--log-level", "info", "--data-dir", s.dataDir, "feed", "synth", "--http-listen", "off",
				"--max-trades", strconv.Itoa(trades), "--rate", "20000", "--seed", "7")
			feed.Stderr = feedLog
			out, err := feed.Output() // the feed stops at --max-trades
			if err != nil {
				t.Fatalf("k2 feed synth: %v; log in %s", err, s.dataDir)
			}
			m := synthSummary.FindStringSubmatch(string(out))
			if m == nil || m[1] != strconv.Itoa(trades) {
				t.Fatalf("feed summary %q", out)
			}
			quotes, _ := strconv.ParseInt(m[2], 10, 64)

			// The API's tail reads the stream through the listener: all of it,
			// as the lake holds none yet.
			apiLog := logFile(t, s.dataDir, "api")
			addr := testutil.FreeAddr(t)
			api := s.command(t, "--log-level", "warn", "--data-dir", s.dataDir, "api", "--http-listen", addr)
			api.Stderr = apiLog
			if err := api.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { api.Process.Signal(syscall.SIGTERM); api.Wait() }()
			want := fmt.Sprintf("k2_api_tail_records %d\n", trades+quotes)
			tailMetric := regexp.MustCompile(`(?m)^k2_api_tail_records .*$`)
			for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
				var metrics []byte
				if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
					metrics, _ = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				if strings.Contains(string(metrics), want) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the API's tail never held %d records: %q; log in %s", trades+quotes, tailMetric.Find(metrics), s.dataDir)
				}
			}
			var ready struct {
				Checks map[string]struct{ Status string }
			}
			if body := httpGet(t, "http://"+addr+"/ready"); json.Unmarshal([]byte(body), &ready) != nil ||
				ready.Checks["kafka"].Status != "ok" || ready.Checks["schema_registry"].Status != "ok" {
				t.Errorf("/ready: %s", body)
			}
			sinkLog := logFile(t, s.dataDir, "sink")
			sink := s.command(t, "--log-level", "info", "--data-dir", s.dataDir, "sink", "--http-listen", "off",
				"--sink-group", s.group(), "--sink-batch-age", "200ms")
			sink.Stderr = sinkLog
			if err := sink.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if sink.ProcessState == nil {
					sink.Process.Kill()
					sink.Wait()
				}
			})
			s.waitRows(t, "trades", trades)
			s.waitRows(t, "quotes", quotes)
			sink.Process.Signal(syscall.SIGTERM)
			if err := sink.Wait(); err != nil {
				t.Fatalf("sink stopped with %v; log in %s", err, s.dataDir)
			}
			// Synthetic ids count per symbol.
			for table, want := range map[string]int64{"trades": trades, "quotes": quotes} {
				keys := laketest.Keys(t, s.lake, table, "symbol", strings.TrimSuffix(table, "s")+"_id")
				if rep := laketest.Repeated(keys); len(rep) > 0 || int64(len(keys)) != want {
					t.Errorf("%s: %d distinct ids, %d repeated, %d produced", table, len(keys), len(rep), want)
				}
			}
			t.Logf("%d trades and %d quotes stored through SASL_SSL (%s)", trades, quotes, mechanism)

			for _, name := range []string{feedLog.Name(), sinkLog.Name(), apiLog.Name()} {
				b, _ := os.ReadFile(name)
				if strings.Contains(string(b), s.sasl.Password) || strings.Contains(string(b), "registry-secret") {
					t.Errorf("%s holds a password", name)
				}
			}
		})
	}
}

// A sink, a feed and an API given a wrong password, with PLAIN or
// SCRAM-SHA-512, stop within wrongPasswordExit with a line naming the
// broker, the mechanism and the user, and never the password; the same
// settings with a password file instead of the environment work for k2
// topics.
func TestWrongKafkaPasswordStopsAtOnce(t *testing.T) {
	testsvc.KafkaSecured(t) // skips the whole test without the listener
	for _, mechanism := range []string{config.SASLPlain, config.SASLScramSHA512} {
		t.Run(mechanism, func(t *testing.T) {
			s := securedStack(t, mechanism)
			want := fmt.Sprintf("k2: kafka %s: SASL authentication failed (%s, user %s): ", s.sasl.SASLBrokers, mechanism, s.sasl.User)
			for _, role := range [][]string{{"sink", "--http-listen", "off", "--sink-group", s.group()}, {"feed", "synth", "--http-listen", "off"},
				{"api", "--http-listen", testutil.FreeAddr(t)}} {
				cmd := s.command(t, append([]string{"--data-dir", s.dataDir}, role...)...)
				cmd.Env = append(cmd.Env, config.EnvKafkaSASLPassword+"=not-the-password") // the later one wins
				var stderr strings.Builder
				cmd.Stderr = &stderr
				began := time.Now()
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				done := make(chan error, 1)
				go func() { done <- cmd.Wait() }()
				select {
				case err := <-done:
					if err == nil {
						t.Fatalf("k2 %s with a wrong password exited 0", role[0])
					}
				case <-time.After(wrongPasswordExit):
					cmd.Process.Kill()
					<-done
					t.Fatalf("k2 %s with a wrong password still runs after %s: %s", role[0], wrongPasswordExit, stderr.String())
				}
				t.Logf("k2 %s exited after %s", role[0], time.Since(began).Round(time.Millisecond))
				lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
				if last := lines[len(lines)-1]; !strings.HasPrefix(last, want) {
					t.Fatalf("k2 %s: %q\nwant %q…", role[0], last, want)
				}
				if strings.Contains(stderr.String(), "not-the-password") || strings.Contains(stderr.String(), s.sasl.Password) {
					t.Fatalf("k2 %s printed a password: %s", role[0], stderr.String())
				}
			}
		})
	}

	s := securedStack(t, config.SASLScramSHA512)
	pw := filepath.Join(t.TempDir(), "kafka-password")
	os.WriteFile(pw, []byte(s.sasl.Password+"\n"), 0o600)
	cmd := exec.Command(k2Binary(t), append([]string{"topics", "create", "--kafka-sasl-password-file", pw}, s.settings...)...)
	cmd.Env = append(os.Environ(), config.EnvRegistryPassword+"=registry-secret")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), " topics created, ") {
		t.Fatalf("k2 topics create with a password file: %v\n%s", err, out)
	}
	// The topics it made exist, seen through the plaintext listener.
	ctx := context.Background()
	topics, err := s.adm.ListTopics(ctx)
	if err != nil || !topics.Has(s.prefix+"market.crypto.trades.binance") {
		t.Fatalf("topics under %s: %v %v", s.prefix, topics.Names(), err)
	}
}
