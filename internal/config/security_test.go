package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// kafkaFlags applies args, the environment and file to a fresh Config's
// Kafka flags and resolves it.
func kafkaFlags(t *testing.T, file string, args ...string) (Config, error) {
	t.Helper()
	c := Default()
	c.DataDir = t.TempDir()
	fs := pflag.NewFlagSet("k2", pflag.ContinueOnError)
	c.RegisterKafka(fs)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if err := Apply(fs, file, func(string) bool { return true }); err != nil {
		return c, err
	}
	return c, c.Resolve()
}

func TestKafkaSecurityFromFlagsEnvironmentAndFile(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, []byte("not read here"), 0o644)
	t.Setenv(EnvKafkaSASLPassword, "from-the-environment")
	c, err := kafkaFlags(t, "", "--kafka-security-protocol", "sasl_ssl", "--kafka-sasl-mechanism", "scram-sha-512",
		"--kafka-sasl-user", "k2", "--kafka-tls-ca-file", ca)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Kafka.Security
	if s.Protocol != SASLSSL || s.Mechanism != SASLScramSHA512 || s.SASL.User != "k2" || s.SASL.Password != "from-the-environment" || s.TLS.CAFile != ca {
		t.Fatalf("%+v", s)
	}
	if !s.UsesTLS() || !s.UsesSASL() {
		t.Fatal("SASL_SSL neither encrypts nor authenticates")
	}

	// Every setting from the environment and a config file; the password
	// from a file (its trailing newline dropped).
	os.Unsetenv(EnvKafkaSASLPassword)
	pw := filepath.Join(dir, "password")
	os.WriteFile(pw, []byte("from-a-file\n"), 0o600)
	t.Setenv("K2_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
	t.Setenv("K2_KAFKA_SASL_MECHANISM", "PLAIN")
	file := filepath.Join(dir, "k2.yaml")
	os.WriteFile(file, []byte("kafka-sasl-user: ops\nkafka-sasl-password-file: "+pw+"\n"), 0o644)
	if c, err = kafkaFlags(t, file); err != nil {
		t.Fatal(err)
	}
	s = c.Kafka.Security
	if s.Protocol != SASLPlaintext || s.Mechanism != SASLPlain || s.SASL.User != "ops" || s.SASL.Password != "from-a-file" || s.UsesTLS() {
		t.Fatalf("%+v", s)
	}
}

// The password has no flag, so it can only be given where other users of
// the machine cannot read it, and it never prints.
func TestKafkaPasswordIsNeverAFlagNorPrinted(t *testing.T) {
	if _, err := kafkaFlags(t, "", "--kafka-sasl-password", "secret"); err == nil {
		t.Fatal("--kafka-sasl-password was accepted on the command line")
	}
	if _, err := kafkaFlags(t, "", "--registry-password", "secret"); err == nil {
		t.Fatal("--registry-password was accepted on the command line")
	}
	file := filepath.Join(t.TempDir(), "k2.yaml")
	os.WriteFile(file, []byte("kafka-sasl-password: secret\n"), 0o644)
	c := Default()
	fs := pflag.NewFlagSet("k2", pflag.ContinueOnError)
	c.RegisterKafka(fs)
	known := map[string]bool{}
	fs.VisitAll(func(f *pflag.Flag) { known[f.Name] = IsSetting(f) })
	if err := Apply(fs, file, func(k string) bool { return known[k] }); err == nil || !strings.Contains(err.Error(), "unknown settings kafka-sasl-password") {
		t.Fatalf("a password in the config file: %v", err)
	}

	t.Setenv(EnvKafkaSASLPassword, "hunter2-secret")
	c, err := kafkaFlags(t, "", "--kafka-security-protocol", "SASL_SSL", "--kafka-sasl-mechanism", "PLAIN", "--kafka-sasl-user", "k2")
	if err != nil {
		t.Fatal(err)
	}
	for _, printed := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c.Kafka), fmt.Sprintf("%#v", c.Kafka.Security), fmt.Sprintf("%v", c.Kafka.Security.SASL.Password)} {
		if strings.Contains(printed, "hunter2") {
			t.Fatalf("the password printed: %s", printed)
		}
	}
}

func TestKafkaSecurityErrors(t *testing.T) {
	dir := t.TempDir()
	cert := filepath.Join(dir, "client.pem")
	os.WriteFile(cert, nil, 0o644)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	for _, c := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, []string{"--kafka-security-protocol", "TLS"}, `--kafka-security-protocol "TLS": want PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL`},
		{nil, []string{"--kafka-security-protocol", "SASL_SSL", "--kafka-sasl-user", "k2"}, "needs --kafka-sasl-mechanism"},
		{nil, []string{"--kafka-security-protocol", "SASL_SSL", "--kafka-sasl-mechanism", "GSSAPI", "--kafka-sasl-user", "k2"}, `--kafka-sasl-mechanism "GSSAPI"`},
		{nil, []string{"--kafka-security-protocol", "SASL_SSL", "--kafka-sasl-mechanism", "PLAIN"}, "needs --kafka-sasl-user"},
		{nil, []string{"--kafka-security-protocol", "SASL_SSL", "--kafka-sasl-mechanism", "PLAIN", "--kafka-sasl-user", "k2"},
			`user "k2" has no password: put it in K2_KAFKA_SASL_PASSWORD or in a file named by --kafka-sasl-password-file`},
		{map[string]string{EnvKafkaSASLPassword: "x"}, []string{"--kafka-security-protocol", "SASL_SSL", "--kafka-sasl-mechanism", "PLAIN",
			"--kafka-sasl-user", "k2", "--kafka-sasl-password-file", empty}, "both --kafka-sasl-password-file and K2_KAFKA_SASL_PASSWORD are set"},
		{nil, []string{"--kafka-security-protocol", "SASL_SSL", "--kafka-sasl-mechanism", "PLAIN", "--kafka-sasl-user", "k2",
			"--kafka-sasl-password-file", empty}, "--kafka-sasl-password-file " + empty + " is empty"},
		{nil, []string{"--kafka-security-protocol", "SASL_SSL", "--kafka-sasl-mechanism", "PLAIN", "--kafka-sasl-user", "k2",
			"--kafka-sasl-password-file", filepath.Join(dir, "missing")}, "--kafka-sasl-password-file: open " + filepath.Join(dir, "missing")},
		{nil, []string{"--kafka-sasl-mechanism", "PLAIN"}, "--kafka-sasl-* is set but --kafka-security-protocol is PLAINTEXT"},
		{nil, []string{"--kafka-tls-ca-file", cert}, "--kafka-tls-* is set but --kafka-security-protocol is PLAINTEXT"},
		{nil, []string{"--kafka-security-protocol", "SSL", "--kafka-tls-ca-file", filepath.Join(dir, "missing.pem")}, "--kafka-tls-ca-file: stat "},
		{nil, []string{"--kafka-security-protocol", "SSL", "--kafka-tls-cert-file", cert}, "--kafka-tls-cert-file and --kafka-tls-key-file go together"},
		{nil, []string{"--registry-user", "k2"}, `user "k2" has no password: put it in K2_REGISTRY_PASSWORD or in a file named by --registry-password-file`},
		{nil, []string{"--registry-password-file", empty}, "--registry-password-file is set without --registry-user"},
		{nil, []string{"--registry-tls-ca-file", cert}, `--registry-tls-* is set but --registry "http://127.0.0.1:8081" is not an https:// URL`},
	} {
		os.Unsetenv(EnvKafkaSASLPassword)
		for k, v := range c.env {
			t.Setenv(k, v)
		}
		_, err := kafkaFlags(t, "", c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want %q", c.args, err, c.want)
		}
	}
}
