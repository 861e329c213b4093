package testsvc

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The classes behind the scripts in Kafka's bin/ that operators run.
const (
	TopicCommand         = "org.apache.kafka.tools.TopicCommand"                        // kafka-topics.sh
	ConsumerGroupCommand = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand" // kafka-consumer-groups.sh
	GetOffsetShell       = "org.apache.kafka.tools.GetOffsetShell"                      // kafka-get-offsets.sh
	ConsoleProducer      = "org.apache.kafka.tools.ConsoleProducer"                     // kafka-console-producer.sh
	ConsoleConsumer      = "org.apache.kafka.tools.consumer.ConsoleConsumer"            // kafka-console-consumer.sh
)

// KafkaTools runs Apache Kafka's command-line tools, the version of the
// test broker, as a JVM per command, the way kafka-topics.sh and its kin do.
type KafkaTools struct {
	Java string
	Jars string // directory of kafka-tools and its dependencies
}

// KafkaToolTimeout bounds one tool run (a JVM start is about a second).
var KafkaToolTimeout = 2 * time.Minute

// Tools returns Kafka's command-line tools, or skips the test (fails it
// under K2_TEST_REQUIRE_SERVICES=1) when they are not set up.
func Tools(t testing.TB) KafkaTools {
	t.Helper()
	k := KafkaTools{Java: needFile(t, "Java for Kafka's tools", EnvJava), Jars: needFile(t, "Kafka's tools", EnvKafkaTools)}
	if m, _ := filepath.Glob(filepath.Join(k.Jars, "kafka-tools-*.jar")); len(m) == 0 {
		msg := fmt.Sprintf("Kafka's tools not set up: no kafka-tools jar in %s=%s (scripts/kafka/pom.xml names it; "+
			"`scripts/test-services.sh kafka-fetch` fetches it); %s", EnvKafkaTools, k.Jars, startHint)
		if os.Getenv(EnvRequireServices) == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return k
}

// Command is the command line of a tool's class with args.
func (k KafkaTools) Command(ctx context.Context, class string, args ...string) *exec.Cmd {
	// A short-lived client JVM: the C1 compiler and the serial collector
	// start it fastest, and 256 MB is plenty.
	jvm := []string{"-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Djava.awt.headless=true",
		"-cp", filepath.Join(k.Jars, "*"), class}
	return exec.CommandContext(ctx, k.Java, append(jvm, args...)...)
}

// Run runs a tool to its end and returns its standard output; the test
// fails, with both outputs, unless it exits 0.
func (k KafkaTools) Run(t testing.TB, class string, args ...string) string {
	t.Helper()
	stdout, stderr, err := k.Try(class, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\nstderr:\n%s\nstdout:\n%s", shortClass(class), strings.Join(args, " "), err, stderr, stdout)
	}
	return stdout
}

// Try runs a tool and returns its outputs and how it exited.
func (k KafkaTools) Try(class string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), KafkaToolTimeout)
	defer cancel()
	cmd := k.Command(ctx, class, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

func shortClass(class string) string { return class[strings.LastIndexByte(class, '.')+1:] }
