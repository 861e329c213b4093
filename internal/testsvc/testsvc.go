// Package testsvc gives Go tests the real services that scripts/test-services.sh
// runs: a PostgreSQL server (Iceberg SQL catalog), an S3 server (versitygw,
// the warehouse), an Apache Kafka broker (KRaft, one combined broker +
// controller), a Python venv with PyIceberg (to prove that another engine
// reads the tables K2 writes) and promtool (to check the alert rules).
//
// The services are found through environment variables, which
// `scripts/test-services.sh env` prints and `make test` (scripts/test.sh) sets:
//
//	K2_TEST_POSTGRES_URL   postgres://k2:k2@127.0.0.1:55432/k2?sslmode=disable
//	K2_TEST_S3_ENDPOINT    http://127.0.0.1:59000
//	K2_TEST_S3_BUCKET      k2-test
//	K2_TEST_S3_ACCESS_KEY  root access key of the local gateway
//	K2_TEST_S3_SECRET_KEY  its secret
//	K2_TEST_S3_REGION      us-east-1
//	K2_TEST_PYTHON         the venv's python (PyIceberg, pyarrow, SQLAlchemy, psycopg2, confluent-kafka with Avro)
//	K2_TEST_PROMTOOL       Prometheus's promtool
//	K2_TEST_KAFKA_BROKERS  127.0.0.1:59092 (plaintext; no topic auto-creation, 3 partitions by default)
//	K2_TEST_KAFKA_TOOLS    the jars of that Kafka version's command-line tools (kafka-tools and its dependencies)
//	K2_TEST_JAVA           the java that runs them (the broker's)
//	K2_TEST_KAFKA_SASL_BROKERS   127.0.0.1:59094, the same broker's SASL_SSL listener
//	K2_TEST_KAFKA_SASL_USER      its user (SASL PLAIN and SCRAM-SHA-512)
//	K2_TEST_KAFKA_SASL_PASSWORD  the user's password
//	K2_TEST_KAFKA_SSL_BROKERS    127.0.0.1:59095, its SSL listener, which requires a client certificate
//	K2_TEST_CA_FILE              the test CA (PEM) that signed the certificate of Kafka and PostgreSQL
//	K2_TEST_CLIENT_CERT_FILE     a client certificate the test CA signed (PEM), and
//	K2_TEST_CLIENT_KEY_FILE      its key
//	K2_TEST_POSTGRES_TLS_URL     the PostgreSQL database over TLS: sslmode=verify-full against the test CA
//
// When a variable is missing the test is skipped with a message saying how to
// start the services, so `go test ./...` alone still passes on a bare machine.
// scripts/test.sh also sets K2_TEST_REQUIRE_SERVICES=1, which turns those
// skips into failures: in `make test` and CI a missing service is an error,
// never a silently skipped test.
package testsvc

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/k2-market-data/k2/internal/testutil"
)

// Environment variable names (the contract with scripts/test-services.sh).
const (
	EnvPostgresURL       = "K2_TEST_POSTGRES_URL"
	EnvS3Endpoint        = "K2_TEST_S3_ENDPOINT"
	EnvS3Bucket          = "K2_TEST_S3_BUCKET"
	EnvS3AccessKey       = "K2_TEST_S3_ACCESS_KEY"
	EnvS3SecretKey       = "K2_TEST_S3_SECRET_KEY"
	EnvS3Region          = "K2_TEST_S3_REGION"
	EnvPython            = "K2_TEST_PYTHON"
	EnvPromtool          = "K2_TEST_PROMTOOL"
	EnvKafkaBrokers      = "K2_TEST_KAFKA_BROKERS"
	EnvKafkaTools        = "K2_TEST_KAFKA_TOOLS"
	EnvJava              = "K2_TEST_JAVA"
	EnvKafkaSASLBrokers  = "K2_TEST_KAFKA_SASL_BROKERS"
	EnvKafkaSASLUser     = "K2_TEST_KAFKA_SASL_USER"
	EnvKafkaSASLPassword = "K2_TEST_KAFKA_SASL_PASSWORD"
	EnvKafkaSSLBrokers   = "K2_TEST_KAFKA_SSL_BROKERS"
	EnvCAFile            = "K2_TEST_CA_FILE"
	EnvClientCertFile    = "K2_TEST_CLIENT_CERT_FILE"
	EnvClientKeyFile     = "K2_TEST_CLIENT_KEY_FILE"
	EnvPostgresTLSURL    = "K2_TEST_POSTGRES_TLS_URL"
	EnvRequireServices   = testutil.EnvRequireServices
)

const startHint = "run `make test` (scripts/test.sh), or `scripts/test-services.sh start` and " +
	"`eval \"$(scripts/test-services.sh env)\"` before go test"

// need returns the value of an environment variable, or skips the test (fails
// it when K2_TEST_REQUIRE_SERVICES=1) naming the service that is missing.
func need(t testing.TB, service, name string) string {
	t.Helper()
	if v := os.Getenv(name); v != "" {
		return v
	}
	msg := fmt.Sprintf("%s not started: %s is unset; %s", service, name, startHint)
	if os.Getenv(EnvRequireServices) == "1" {
		t.Fatalf("%s (%s=1)", msg, EnvRequireServices)
	}
	t.Skip(msg)
	return ""
}

// Postgres returns the URL of the test PostgreSQL database (role k2, database
// k2), or skips the test. Tests that create catalogs should prefer
// FreshPostgresDB, which gives each test its own empty database.
func Postgres(t testing.TB) string {
	t.Helper()
	return need(t, "PostgreSQL", EnvPostgresURL)
}

// Kafka returns the test Kafka broker's seed list, "127.0.0.1:59092"
// (comma-separated host:port pairs; see KafkaSeeds), or skips the test.
//
// The broker is Apache Kafka 4.x in KRaft mode, a single node (replication
// factor 1, min.insync.replicas 1), plaintext, with auto.create.topics.enable
// off (tests create their topics, e.g. with kadm), num.partitions 3 and
// group.initial.rebalance.delay.ms 0. It is shared by every test package: name
// topics and groups with KafkaTopicPrefix.
//
// The broker is shared by every test package, and go test runs packages in
// parallel: each test that uses it holds a shared lock for its duration,
// and RestartKafka and its kin wait for the exclusive lock, so no other
// package's test sees a restart half-way. (A test that restarts the broker
// must not have a parent or subtest holding it too: that would wait on
// itself.)
func Kafka(t testing.TB) string {
	t.Helper()
	brokers := need(t, "Kafka broker", EnvKafkaBrokers)
	holdKafka(t, brokers)
	return brokers
}

// kafkaLocks are the lock files the running tests hold, by test.
var kafkaLocks sync.Map // testing.TB → *os.File

// holdKafka takes the test's shared lock on the broker, once.
func holdKafka(t testing.TB, brokers string) {
	if _, ok := kafkaLocks.Load(t); ok {
		return
	}
	name := "k2-test-kafka-" + regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(brokers, "_") + ".lock"
	f, err := os.OpenFile(filepath.Join(os.TempDir(), name), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatalf("kafka test lock: %v", err)
	}
	if err := flock(f.Fd(), false); err != nil {
		f.Close()
		t.Fatalf("kafka test lock: %v", err)
	}
	kafkaLocks.Store(t, f)
	t.Cleanup(func() {
		funlock(f.Fd())
		f.Close()
		kafkaLocks.Delete(t)
	})
}

// SecuredKafka is the test broker's secured listeners, both with a
// certificate for 127.0.0.1 and localhost signed by CAFile: SASLBrokers
// (SASL_SSL, with SASL PLAIN and SCRAM-SHA-512 for User) and SSLBrokers
// (SSL, requiring a client certificate the CA signed: CertFile and
// KeyFile). Plaintext is the same broker's plaintext listener, for a
// test's own admin client and checks.
type SecuredKafka struct {
	SASLBrokers, SSLBrokers, Plaintext string
	CAFile, CertFile, KeyFile          string
	User, Password                     string
}

// KafkaSecured returns the secured listeners of the test broker, or skips
// the test. Like Kafka, it holds the broker's shared lock for the test.
func KafkaSecured(t testing.TB) SecuredKafka {
	t.Helper()
	return SecuredKafka{
		SASLBrokers: need(t, "Kafka SASL_SSL listener", EnvKafkaSASLBrokers), SSLBrokers: need(t, "Kafka SSL listener", EnvKafkaSSLBrokers),
		Plaintext: Kafka(t), CAFile: needFile(t, "test CA", EnvCAFile),
		CertFile: needFile(t, "test client certificate", EnvClientCertFile), KeyFile: needFile(t, "test client key", EnvClientKeyFile),
		User: need(t, "Kafka SASL user", EnvKafkaSASLUser), Password: need(t, "Kafka SASL password", EnvKafkaSASLPassword),
	}
}

// KafkaSeeds returns Kafka's seed list split for kgo.SeedBrokers, or skips
// the test.
func KafkaSeeds(t testing.TB) []string {
	t.Helper()
	return strings.Split(Kafka(t), ",")
}

// KafkaTopicPrefix returns a prefix unique to this call, k2t-<test-name>-<random>-,
// for the names of the topics (and consumer groups, transactional ids...) a
// test creates on the shared broker, so that tests and runs never see each
// other's data. The topics under it are deleted when the test passes; a
// failed test's are kept for inspection until `scripts/test-services.sh
// reset`. (Kept, one run of the suite left some 2 GB of topics, and a broker
// holding them was measurably slower for benchmarks run against it.) It
// skips the test when there is no broker.
func KafkaTopicPrefix(t testing.TB) string {
	t.Helper()
	brokers := Kafka(t)
	prefix := fmt.Sprintf("k2t-%s-%s-", slug(t.Name(), 100), randomHex(t, 4))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Kafka topics %s* kept for inspection", prefix)
			return
		}
		if err := deleteTopics(brokers, prefix); err != nil {
			t.Logf("Kafka topics %s* not deleted: %v", prefix, err)
		}
	})
	return prefix
}

// deleteTopics deletes the broker's topics whose names start with prefix.
func deleteTopics(brokers, prefix string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...))
	if err != nil {
		return err
	}
	defer cl.Close()
	// The broker applies a new topic to its metadata after CreateTopics has
	// answered (KRaft), so a topic created moments before the test ended can
	// be missing from a first listing: an empty one is asked again a second
	// later, uncached.
	for attempt := 0; ; attempt++ {
		resp, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		var names []string
		for _, t := range resp.Topics {
			if t.Topic != nil && strings.HasPrefix(*t.Topic, prefix) {
				names = append(names, *t.Topic)
			}
		}
		if len(names) > 0 {
			resps, err := kadm.NewClient(cl).DeleteTopics(ctx, names...)
			if err != nil {
				return err
			}
			return resps.Error()
		}
		if attempt == 1 {
			return nil
		}
		time.Sleep(time.Second)
	}
}

// KafkaRestartTimeout bounds one scripts/test-services.sh kafka-* command.
var KafkaRestartTimeout = 3 * time.Minute

// RestartKafka restarts the test broker on the same data and configuration:
// a controlled shutdown (SIGTERM; SIGKILL after 30 s), then a new JVM, and it
// returns once the broker answers requests again (typically 4-6 s in all).
// Clients keep working across it: their connections drop and they reconnect.
// It skips the test when there is no broker and fails it when the restart fails.
//
// The broker is shared with the other test packages, which go test runs in
// parallel: a test that restarts it should be short, and other packages'
// Kafka tests must tolerate a few seconds without a broker (kgo retries).
func RestartKafka(t testing.TB) {
	t.Helper()
	kafkaCommand(t, "kafka-restart")
}

// CrashRestartKafka is RestartKafka with SIGKILL instead of a controlled
// shutdown: the broker dies at once, as in a crash, and recovers its logs on
// start. Records acknowledged with acks=all survive it (they are in the page
// cache; only a machine crash could lose them, as the broker does not fsync).
func CrashRestartKafka(t testing.TB) {
	t.Helper()
	kafkaCommand(t, "kafka-restart", "--kill")
}

// WhileKafkaDown stops the test broker (a controlled shutdown), runs fn
// while it is down and starts it again on the same data, returning once it
// answers. Other test processes are kept off the broker the whole time
// (they wait for its lock), so fn should be short; the broker is started
// again even if fn fails the test.
func WhileKafkaDown(t testing.TB, fn func()) {
	t.Helper()
	unlock := lockKafka(t)
	defer unlock()
	runKafkaScript(t, "kafka-stop")
	defer runKafkaScript(t, "kafka-start")
	fn()
}

// kafkaCommand runs scripts/test-services.sh with a kafka-* command that
// leaves the broker answering, holding the other test processes off it
// meanwhile.
func kafkaCommand(t testing.TB, args ...string) {
	t.Helper()
	defer lockKafka(t)()
	runKafkaScript(t, args...)
}

// lockKafka waits until no other test process is using the broker and
// keeps them out until the returned function is called.
func lockKafka(t testing.TB) (unlock func()) {
	t.Helper()
	Kafka(t)
	v, ok := kafkaLocks.Load(t)
	if !ok {
		return func() {}
	}
	f := v.(*os.File)
	if err := flock(f.Fd(), true); err != nil {
		t.Fatalf("kafka test lock: %v", err)
	}
	return func() { flock(f.Fd(), false) }
}

// runKafkaScript runs scripts/test-services.sh with a kafka-* command,
// logging its output.
func runKafkaScript(t testing.TB, args ...string) {
	t.Helper()
	script := filepath.Join(testutil.RepoRoot(t), "scripts", "test-services.sh")
	ctx, cancel := context.WithTimeout(context.Background(), KafkaRestartTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{script}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start).Round(time.Millisecond)
	if err != nil {
		t.Fatalf("test-services.sh %s failed after %v: %v\n%s", strings.Join(args, " "), elapsed, err, out.String())
	}
	t.Logf("test-services.sh %s: %v\n%s", strings.Join(args, " "), elapsed, strings.TrimRight(out.String(), "\n"))
}

// S3Config locates the test S3 server.
type S3Config struct {
	Endpoint  string // http://127.0.0.1:59000; path-style addressing
	Bucket    string // k2-test, created by scripts/test-services.sh start
	AccessKey string
	SecretKey string
	Region    string
}

// S3 returns the test S3 server's settings, or skips the test.
func S3(t testing.TB) S3Config {
	t.Helper()
	return S3Config{
		Endpoint:  need(t, "S3 server", EnvS3Endpoint),
		Bucket:    need(t, "S3 server", EnvS3Bucket),
		AccessKey: need(t, "S3 server", EnvS3AccessKey),
		SecretKey: need(t, "S3 server", EnvS3SecretKey),
		Region:    need(t, "S3 server", EnvS3Region),
	}
}

// IcebergProps returns the iceberg-go FileIO properties (github.com/apache/iceberg-go/io)
// that reach this S3 server: s3.endpoint, s3.access-key-id,
// s3.secret-access-key, s3.region and s3.force-virtual-addressing=false.
func (c S3Config) IcebergProps() map[string]string {
	return map[string]string{
		"s3.endpoint":                 c.Endpoint,
		"s3.access-key-id":            c.AccessKey,
		"s3.secret-access-key":        c.SecretKey,
		"s3.region":                   c.Region,
		"s3.force-virtual-addressing": "false",
	}
}

// PyIcebergArgs returns the --s3-* flags of scripts/pyiceberg_check.py for
// this server.
func (c S3Config) PyIcebergArgs() []string {
	return []string{
		"--s3-endpoint", c.Endpoint,
		"--s3-access-key", c.AccessKey,
		"--s3-secret-key", c.SecretKey,
		"--s3-region", c.Region,
	}
}

// Python returns the path of the test venv's python (with PyIceberg), or
// skips the test.
func Python(t testing.TB) string {
	t.Helper()
	return needFile(t, "PyIceberg venv", EnvPython)
}

// Promtool returns the path of promtool, or skips the test.
func Promtool(t testing.TB) string {
	t.Helper()
	return needFile(t, "promtool", EnvPromtool)
}

// Prometheus is the Prometheus server of the package promtool came with
// (Debian's prometheus: both in /usr/bin), for tests that scrape K2.
func Prometheus(t testing.TB) string {
	t.Helper()
	p := filepath.Join(filepath.Dir(Promtool(t)), "prometheus")
	if _, err := os.Stat(p); err != nil {
		msg := fmt.Sprintf("the Prometheus server is not beside promtool: %v; %s", err, startHint)
		if os.Getenv(EnvRequireServices) == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// needFile is need for a tool: the variable names a file that must exist.
func needFile(t testing.TB, tool, name string) string {
	t.Helper()
	p := need(t, tool, name)
	if _, err := os.Stat(p); err != nil {
		msg := fmt.Sprintf("%s not set up: %s=%s: %v; %s", tool, name, p, err, startHint)
		if os.Getenv(EnvRequireServices) == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// slug turns a test name into a short, safe name part.
func slug(name string, max int) string {
	s := strings.Trim(unsafeChars.ReplaceAllString(name, "-"), "-.")
	if len(s) > max {
		s = strings.TrimRight(s[:max], "-.")
	}
	if s == "" {
		s = "test"
	}
	return s
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// NewS3Prefix returns a warehouse location unique to this test run,
// s3://<bucket>/<test-name>-<random>, on the test S3 server (skipping the
// test when there is none). Nothing is created or cleaned up: the prefix is
// empty, and the objects are left for inspection until
// `scripts/test-services.sh reset`.
func NewS3Prefix(t testing.TB) string {
	t.Helper()
	c := S3(t)
	return fmt.Sprintf("s3://%s/%s-%s", c.Bucket, slug(t.Name(), 80), randomHex(t, 6))
}

// FreshPostgresDB creates a new, empty database on the test PostgreSQL server,
// owned by the test role, and returns its URL (the K2_TEST_POSTGRES_URL with
// the database name replaced). The database is dropped when the test ends
// (even if sessions are still connected), unless K2_TEST_KEEP_DBS=1.
func FreshPostgresDB(t testing.TB) string {
	t.Helper()
	base := Postgres(t)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", EnvPostgresURL, err)
	}
	// PostgreSQL identifiers: at most 63 bytes; lower case avoids quoting surprises.
	name := "k2t_" + strings.ReplaceAll(strings.ToLower(slug(t.Name(), 44)), "-", "_")
	name = strings.NewReplacer(".", "_").Replace(name) + "_" + randomHex(t, 5)
	ident := pgx.Identifier{name}.Sanitize()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to PostgreSQL (%s): %v", EnvPostgresURL, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		t.Fatalf("CREATE DATABASE %s: %v", ident, err)
	}
	t.Cleanup(func() {
		if os.Getenv("K2_TEST_KEEP_DBS") == "1" {
			t.Logf("keeping database %s (K2_TEST_KEEP_DBS=1)", name)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop database %s: connect: %v", name, err)
			return
		}
		defer conn.Close(context.Background())
		// FORCE may not end an autovacuum worker in the database: the test
		// role is not a member of its role (SQLSTATE 42501). The worker is
		// done within seconds, so that refusal is tried again.
		for {
			_, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)")
			var pgErr *pgconn.PgError
			if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "42501" || ctx.Err() != nil {
				if err != nil {
					t.Errorf("DROP DATABASE %s: %v", ident, err)
				}
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	u.Path = "/" + name
	return u.String()
}

// FreshPostgresTLSDB is FreshPostgresDB reached over TLS: sslmode=verify-full
// against the test CA, which signed the server's certificate for
// 127.0.0.1 and localhost.
func FreshPostgresTLSDB(t testing.TB) string {
	t.Helper()
	tlsURL := need(t, "PostgreSQL over TLS", EnvPostgresTLSURL)
	fresh, err := url.Parse(FreshPostgresDB(t))
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(tlsURL)
	if err != nil {
		t.Fatalf("%s: %v", EnvPostgresTLSURL, err)
	}
	u.Path = fresh.Path
	return u.String()
}

// PyIcebergTimeout bounds one run of a PyIceberg script.
var PyIcebergTimeout = 5 * time.Minute

// RunPyIceberg runs scripts/pyiceberg_check.py with the venv's python and the
// given arguments (see the script's doc: --catalog-uri, --warehouse, --s3-*,
// --table, --filter, --metadata-location) and returns its decoded JSON
// output, {"tables": {"ns.table": {...}}}. Numbers decode as json.Number, so
// 64-bit snapshot ids stay exact. It skips the test when there is no venv and
// fails it, with the script's stderr, when the script fails.
func RunPyIceberg(t testing.TB, args ...string) map[string]any {
	t.Helper()
	return RunPythonScript(t, "pyiceberg_check.py", args...)
}

// RunPythonScript runs scripts/<script> with the venv's python and decodes the
// one JSON object it prints on stdout (numbers as json.Number).
func RunPythonScript(t testing.TB, script string, args ...string) map[string]any {
	t.Helper()
	py := Python(t)
	path := filepath.Join(testutil.RepoRoot(t), "scripts", script)
	ctx, cancel := context.WithTimeout(context.Background(), PyIcebergTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, append([]string{path}, args...)...)
	cmd.Env = append(os.Environ(), "AWS_EC2_METADATA_DISABLED=true", "PYTHONDONTWRITEBYTECODE=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	if err != nil {
		t.Fatalf("%s %s failed after %v: %v\nstderr:\n%s\nstdout:\n%s",
			script, strings.Join(args, " "), time.Since(start).Round(time.Millisecond), err,
			stderr.String(), stdout.String())
	}
	dec := json.NewDecoder(&stdout)
	dec.UseNumber()
	var out map[string]any
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("%s: decoding its JSON output: %v\nstdout:\n%s\nstderr:\n%s",
			script, err, stdout.String(), stderr.String())
	}
	return out
}
