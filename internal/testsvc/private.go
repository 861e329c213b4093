package testsvc

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/k2-market-data/k2/internal/testutil"
)

// PrivateServices is an instance of the test services of a test's own:
// PostgreSQL, the S3 server and Apache Kafka on ports and under a
// K2_TEST_HOME nobody else uses, so the test may kill them, start them and
// damage their files.
type PrivateServices struct {
	// Env is the environment scripts/test-services.sh needs to act on
	// this instance (K2_TEST_HOME and the ports): give it to whatever
	// runs Control.
	Env         []string
	PostgresURL string
	S3          S3Config
	Kafka       string
	// KafkaSecured is the same broker's SASL_SSL listener.
	KafkaSecured SecuredKafka
	// KafkaLogDir is the broker's log.dirs.
	KafkaLogDir string
	// Control is the service-control command: scripts/test-services.sh,
	// which takes kafka-kill, kafka-start, postgres-kill, …
	Control string
}

// Private starts a private instance (about 15 s: Kafka's JVM is most of
// it) and removes it, data and all, when the test ends. It skips the test
// when the shared services are not set up (their tools are reused from
// the cache they were built into).
func Private(t testing.TB) *PrivateServices {
	t.Helper()
	need(t, "the test services", EnvKafkaBrokers)
	script := filepath.Join(testutil.RepoRoot(t), "scripts", "test-services.sh")
	home := t.TempDir()
	port := func() string {
		_, p, _ := net.SplitHostPort(testutil.FreeAddr(t))
		return p
	}
	env := []string{"K2_TEST_HOME=" + home, "K2_TEST_PG_PORT=" + port(), "K2_TEST_S3_PORT=" + port(),
		"K2_TEST_KAFKA_PORT=" + port(), "K2_TEST_KAFKA_CONTROLLER_PORT=" + port(),
		"K2_TEST_KAFKA_SASL_PORT=" + port(), "K2_TEST_KAFKA_SSL_PORT=" + port(),
		// A crash must lose no committed transaction, as in production: the
		// shared cluster's durability is off for speed.
		"K2_TEST_PG_DURABLE=1"}
	sh := func(timeout time.Duration, args ...string) ([]byte, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", append([]string{script}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.Bytes(), err
	}
	start := time.Now()
	out, err := sh(5*time.Minute, "start")
	t.Cleanup(func() {
		if out, err := sh(2*time.Minute, "reset"); err != nil {
			t.Errorf("test-services.sh reset (private instance in %s): %v\n%s", home, err, out)
		}
	})
	if err != nil {
		t.Fatalf("test-services.sh start (private instance in %s): %v\n%s", home, err, out)
	}
	t.Logf("private test services in %s started in %s", home, time.Since(start).Round(100*time.Millisecond))
	vars := map[string]string{}
	if out, err = sh(time.Minute, "env"); err != nil {
		t.Fatalf("test-services.sh env: %v\n%s", err, out)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "export "), "=")
		if ok {
			vars[k] = strings.Trim(v, "'")
		}
	}
	return &PrivateServices{
		Env:         env,
		PostgresURL: vars[EnvPostgresURL],
		S3: S3Config{Endpoint: vars[EnvS3Endpoint], Bucket: vars[EnvS3Bucket], AccessKey: vars[EnvS3AccessKey],
			SecretKey: vars[EnvS3SecretKey], Region: vars[EnvS3Region]},
		Kafka: vars[EnvKafkaBrokers],
		KafkaSecured: SecuredKafka{SASLBrokers: vars[EnvKafkaSASLBrokers], User: vars[EnvKafkaSASLUser],
			Password: vars[EnvKafkaSASLPassword], CAFile: vars[EnvCAFile]},
		KafkaLogDir: filepath.Join(home, "kafka", "data"),
		Control:     script,
	}
}
