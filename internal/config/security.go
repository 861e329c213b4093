package config

import (
	"fmt"
	"os"
	"strings"
)

// UsesTLS reports whether the protocol encrypts (SSL, SASL_SSL).
func (s *KafkaSecurity) UsesTLS() bool { return s.Protocol == SSL || s.Protocol == SASLSSL }

// UsesSASL reports whether the protocol authenticates with SASL.
func (s *KafkaSecurity) UsesSASL() bool { return s.Protocol == SASLPlaintext || s.Protocol == SASLSSL }

// resolveSecurity checks the Kafka and registry security settings and
// reads the passwords. A setting that the protocol would ignore is an
// error, so a forgotten --kafka-security-protocol never sends a cluster
// plaintext what was meant to be encrypted.
func (k *Kafka) resolveSecurity() error {
	s := &k.Security
	s.Protocol = strings.ToUpper(strings.TrimSpace(s.Protocol))
	switch s.Protocol {
	case Plaintext, SSL, SASLPlaintext, SASLSSL:
	default:
		return fmt.Errorf("--kafka-security-protocol %q: want PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL", s.Protocol)
	}
	if err := s.TLS.check("kafka-tls"); err != nil {
		return err
	}
	if !s.UsesTLS() && s.TLS != (TLSFiles{}) {
		return fmt.Errorf("--kafka-tls-* is set but --kafka-security-protocol is %s: use SSL or SASL_SSL", s.Protocol)
	}
	s.Mechanism = strings.ToUpper(strings.TrimSpace(s.Mechanism))
	if !s.UsesSASL() {
		if s.Mechanism != "" || s.SASL.User != "" || s.SASL.PasswordFile != "" {
			return fmt.Errorf("--kafka-sasl-* is set but --kafka-security-protocol is %s: use SASL_SSL or SASL_PLAINTEXT", s.Protocol)
		}
	} else {
		switch s.Mechanism {
		case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		case "":
			return fmt.Errorf("--kafka-security-protocol %s needs --kafka-sasl-mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", s.Protocol)
		default:
			return fmt.Errorf("--kafka-sasl-mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", s.Mechanism)
		}
		if strings.TrimSpace(s.SASL.User) == "" {
			return fmt.Errorf("--kafka-security-protocol %s needs --kafka-sasl-user", s.Protocol)
		}
		if err := s.SASL.readPassword("kafka-sasl-password-file", EnvKafkaSASLPassword); err != nil {
			return err
		}
	}
	if err := k.RegistryTLS.check("registry-tls"); err != nil {
		return err
	}
	if k.RegistryTLS != (TLSFiles{}) && !strings.HasPrefix(strings.ToLower(strings.TrimSpace(k.Registry)), "https://") {
		return fmt.Errorf("--registry-tls-* is set but --registry %q is not an https:// URL", k.Registry)
	}
	if k.RegistryAuth.User == "" {
		if k.RegistryAuth.PasswordFile != "" {
			return fmt.Errorf("--registry-password-file is set without --registry-user")
		}
		return nil
	}
	return k.RegistryAuth.readPassword("registry-password-file", EnvRegistryPassword)
}

func (t *TLSFiles) check(prefix string) error {
	if (t.CertFile == "") != (t.KeyFile == "") {
		return fmt.Errorf("--%s-cert-file and --%s-key-file go together: a client certificate needs its key", prefix, prefix)
	}
	for flag, path := range map[string]string{"ca-file": t.CAFile, "cert-file": t.CertFile, "key-file": t.KeyFile} {
		if path == "" {
			continue
		}
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("--%s-%s: %w", prefix, flag, err)
		}
	}
	return nil
}

// readPassword sets Password from the file flag or, without one, the
// environment variable env; one of them is needed.
func (c *Credentials) readPassword(flag, env string) error {
	fromEnv, inEnv := os.LookupEnv(env)
	switch {
	case c.PasswordFile != "" && inEnv:
		return fmt.Errorf("both --%s and %s are set: give the password once", flag, env)
	case c.PasswordFile != "":
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return fmt.Errorf("--%s: %w", flag, err)
		}
		c.Password = Secret(strings.TrimRight(string(b), "\r\n"))
		if c.Password == "" {
			return fmt.Errorf("--%s %s is empty", flag, c.PasswordFile)
		}
	case inEnv:
		c.Password = Secret(fromEnv)
	default:
		return fmt.Errorf("user %q has no password: put it in %s or in a file named by --%s (never on the command line)", c.User, env, flag)
	}
	return nil
}

// Env is the security as K2_* variables, password included, for a child
// k2 started on the same cluster (the drills' installations): the
// environment, not its command line, so the password stays unseen.
func (s KafkaSecurity) Env() []string {
	var env []string
	add := func(flag, v string) {
		if v != "" {
			env = append(env, EnvName(flag)+"="+v)
		}
	}
	add("kafka-security-protocol", s.Protocol)
	add("kafka-tls-ca-file", s.TLS.CAFile)
	add("kafka-tls-cert-file", s.TLS.CertFile)
	add("kafka-tls-key-file", s.TLS.KeyFile)
	add("kafka-tls-server-name", s.TLS.ServerName)
	add("kafka-sasl-mechanism", s.Mechanism)
	add("kafka-sasl-user", s.SASL.User)
	if s.SASL.Password != "" {
		env = append(env, EnvKafkaSASLPassword+"="+string(s.SASL.Password))
	}
	return env
}
