package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/k2-market-data/k2/internal/testsvc"
)

// externalDrills are the drills on the services an installation runs on.
var externalDrills = []string{"kafka-kill", "postgres-kill", "s3-kill", "kafka-checkpoints", "kafka-hw-checkpoint"}

// The drills on Apache Kafka (its JVM killed, its checkpoint files damaged;
// reached through its SASL_SSL listener with SCRAM-SHA-512),
// a PostgreSQL catalog and an S3 warehouse run
// against a private instance of the test services, which they kill with
// SIGKILL and start again through scripts/test-services.sh: every produced
// trade is stored once, and K2 recovers within 10 s of each service
// answering again.
func TestExternalServiceDrills(t *testing.T) {
	bin := k2Binary(t)
	svc := testsvc.Private(t)
	report := filepath.Join(t.TempDir(), "drills.md")
	// The drills' logs and data, kept when K2_DRILL_WORK names a directory.
	work := os.Getenv("K2_DRILL_WORK")
	if work == "" {
		work = t.TempDir()
	}
	cmd := exec.Command(bin, "ops", "drill", "--repo", "../..", "--work", work, "--report", report, "-v",
		"--timeout", "3m", "--only", strings.Join(externalDrills, ","),
		"--brokers", svc.KafkaSecured.SASLBrokers, "--kafka-security-protocol", "SASL_SSL",
		"--kafka-sasl-mechanism", "SCRAM-SHA-512", "--kafka-sasl-user", svc.KafkaSecured.User,
		"--kafka-tls-ca-file", svc.KafkaSecured.CAFile, "--catalog", svc.PostgresURL,
		"--warehouse", "s3://"+svc.S3.Bucket+"/drills", "--s3-endpoint", svc.S3.Endpoint, "--s3-region", svc.S3.Region,
		"--service-control", svc.Control, "--kafka-log-dir", svc.KafkaLogDir)
	cmd.Env = append(os.Environ(), svc.Env...)
	cmd.Env = append(cmd.Env, "AWS_ACCESS_KEY_ID="+svc.S3.AccessKey, "AWS_SECRET_ACCESS_KEY="+svc.S3.SecretKey,
		"K2_KAFKA_SASL_PASSWORD="+svc.KafkaSecured.Password)
	out, err := cmd.CombinedOutput()
	t.Logf("k2 ops drill:\n%s", out)
	b, rerr := os.ReadFile(report)
	if err != nil || rerr != nil {
		t.Fatalf("k2 ops drill: %v %v\n%s", err, rerr, b)
	}
	t.Logf("report:\n%s", b)
	checkDrillReport(t, b, externalDrills)
}

// checkDrillReport checks a `k2 ops drill --report` for the drills: a
// passing summary row for each, with its RTO within 10 s and every trade
// produced stored once, and no fault row that did not pass. Only
// broker-segment-torn may have trades cut by the broker (acknowledged,
// then lost with its torn segment before the sink read them): for it,
// those and the stored ones make up what was produced.
func checkDrillReport(t *testing.T, b []byte, drills []string) {
	t.Helper()
	// | drill | result | faults | worst RTO (target) | produced | in lake | lost | duplicated | cut by broker | took | runbook |
	row := regexp.MustCompile(`(?m)^\| ([a-z0-9-]+) \| (\w+) \| (\d+) \| (\S+) \(≤ 10s\) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|`)
	seen := map[string]bool{}
	for _, m := range row.FindAllStringSubmatch(string(b), -1) {
		name, result := m[1], m[2]
		rto, err := time.ParseDuration(m[4])
		produced, _ := strconv.Atoi(m[5])
		inLake, _ := strconv.Atoi(m[6])
		cut, _ := strconv.Atoi(m[9])
		if cut > 0 && name != "broker-segment-torn" {
			t.Errorf("%s: trades cut by the broker in a drill that damages no segment: %s", name, m[0])
		}
		if result != "PASS" || err != nil || rto <= 0 || rto > 10*time.Second || produced == 0 || inLake+cut != produced || m[7] != "0" || m[8] != "0" {
			t.Errorf("%s: %s", name, m[0])
		}
		seen[name] = true
	}
	for _, d := range drills {
		if !seen[d] {
			t.Errorf("the report has no summary row for %s", d)
		}
	}
	if n := strings.Count(string(b), "| **no** |"); n > 0 {
		t.Errorf("%d fault rows did not pass", n)
	}
}
