package bus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/registry"
)

// Security is how every Kafka client of a process connects: TLS and SASL
// as configured (config.KafkaSecurity), built once by NewSecurity. The
// zero value is PLAINTEXT, what the embedded broker serves.
type Security struct {
	opts      []kgo.Opt
	protocol  string
	mechanism string
	user      string
	tls       config.TLSFiles
}

// NewSecurity reads the TLS files and sets up the SASL mechanism of the
// configured security protocol.
func NewSecurity(k config.KafkaSecurity) (Security, error) {
	s := Security{protocol: k.Protocol, mechanism: k.Mechanism, user: k.SASL.User, tls: k.TLS}
	if k.UsesTLS() {
		tc, err := TLSConfig(k.TLS, "kafka-tls")
		if err != nil {
			return Security{}, err
		}
		s.opts = append(s.opts, kgo.DialTLSConfig(tc))
	}
	if k.UsesSASL() {
		var m sasl.Mechanism
		user, pass := k.SASL.User, string(k.SASL.Password)
		switch k.Mechanism {
		case config.SASLPlain:
			m = plain.Auth{User: user, Pass: pass}.AsMechanism()
		case config.SASLScramSHA256:
			m = scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()
		case config.SASLScramSHA512:
			m = scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()
		default:
			return Security{}, fmt.Errorf("--kafka-sasl-mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", k.Mechanism)
		}
		s.opts = append(s.opts, kgo.SASL(m))
	}
	return s, nil
}

func (s Security) protocolName() string {
	if s.protocol == "" {
		return config.Plaintext
	}
	return s.protocol
}

// NewClient opens a Kafka client on brokers with the process's security
// and opts: every Kafka client K2 opens is made here.
func NewClient(brokers []string, sec Security, opts ...kgo.Opt) (*kgo.Client, error) {
	all := append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.RetryBackoffFn(retryBackoff), kgo.MetadataMinAge(metadataMinAge)}, sec.opts...)
	cl, err := kgo.NewClient(append(all, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka %s: %w", strings.Join(brokers, ","), err)
	}
	return cl, nil
}

// retryBackoff is kgo's jittered exponential backoff, 250 ms doubling,
// capped at 1 s instead of its 5 s: after a broker outage of a minute a
// consumer group's join waited up to 5 s a step and the sink took over 10 s
// to consume again (the drills' RTO); a retry a second is nothing to a
// broker.
func retryBackoff(fails int) time.Duration {
	const lo, hi = 250 * time.Millisecond, time.Second
	d := hi
	if fails < 3 {
		d = lo << max(fails-1, 0)
	}
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// metadataMinAge is how soon a client may ask for metadata again (kgo's
// default 5 s): a broker restarted on its data begins new leader epochs,
// each partition's next fetch is fenced and waits for fresh metadata, and
// a restart's recovery waited those 5 s.
const metadataMinAge = 500 * time.Millisecond

// checkTimeout bounds Check on a broker that accepts connections but
// never answers.
const checkTimeout = 15 * time.Second

// Check connects to the seed brokers in turn until one answers, so that
// a process with a wrong password, CA, mechanism or security protocol
// stops at once with a line naming the broker and what was refused,
// instead of retrying for ever. A cluster it cannot reach at all is not an
// error here: the clients wait for it to come up.
func Check(ctx context.Context, brokers []string, sec Security) error {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	cl, err := NewClient(brokers, sec, kgo.ClientID("k2-check"), kgo.DialTimeout(5*time.Second))
	if err != nil {
		return err
	}
	defer cl.Close()
	for i, b := range cl.SeedBrokers() {
		_, err := b.Request(ctx, kmsg.NewPtrApiVersionsRequest())
		if err == nil {
			return nil
		}
		if refused := sec.refusal(err); refused != "" {
			return fmt.Errorf("kafka %s: %s: %w", brokers[i], refused, err)
		}
	}
	return nil
}

// refusal says what the broker refused, or "" for an error that is not
// about security (a broker down, a network error).
func (s Security) refusal(err error) string {
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
		header    tls.RecordHeaderError
		remote    *net.OpError
		closed    *kgo.ErrFirstReadEOF
	)
	caFile := s.tls.CAFile
	if caFile == "" {
		caFile = "the system's roots"
	}
	switch {
	case errors.Is(err, kerr.SaslAuthenticationFailed):
		return fmt.Sprintf("SASL authentication failed (%s, user %s)", s.mechanism, s.user)
	case errors.Is(err, kerr.UnsupportedSaslMechanism), errors.Is(err, kerr.IllegalSaslState):
		return fmt.Sprintf("the broker does not take SASL mechanism %s (user %s)", s.mechanism, s.user)
	case errors.As(err, &unknownCA), errors.As(err, &hostname), errors.As(err, &invalid), errors.As(err, &verify):
		return fmt.Sprintf("TLS: the broker's certificate does not verify against %s", caFile)
	case errors.As(err, &header):
		return "TLS: the broker did not answer in TLS (a plaintext listener?)"
	case errors.As(err, &remote) && remote.Op == "remote error": // a TLS alert from the broker
		return "TLS: the broker refused the handshake (does it require a client certificate, --kafka-tls-cert-file?)"
	case errors.As(err, &closed):
		return fmt.Sprintf("the broker closed the connection at once: is %s its listener's security protocol (--kafka-security-protocol)?", s.protocolName())
	}
	return ""
}

// TLSConfig is the client TLS configuration of files: their CA (the
// system's roots when none), client certificate and server name. prefix
// names the flags in errors.
func TLSConfig(files config.TLSFiles, prefix string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: files.ServerName}
	if files.CAFile != "" {
		pem, err := os.ReadFile(files.CAFile)
		if err != nil {
			return nil, fmt.Errorf("--%s-ca-file: %w", prefix, err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--%s-ca-file %s: no PEM certificate in it", prefix, files.CAFile)
		}
	}
	if files.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(files.CertFile, files.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("--%s-cert-file %s, --%s-key-file %s: %w", prefix, files.CertFile, prefix, files.KeyFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// RegistryClient is a client of the configured schema registry: over
// HTTPS with its CA and client certificate, with HTTP basic auth when a
// user is set.
func RegistryClient(k config.Kafka, opts ...registry.ClientOption) (*registry.Client, error) {
	if k.RegistryTLS != (config.TLSFiles{}) {
		tc, err := TLSConfig(k.RegistryTLS, "registry-tls")
		if err != nil {
			return nil, err
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = tc
		opts = append(opts, registry.WithHTTPClient(&http.Client{Transport: tr, Timeout: 5 * time.Second}))
	}
	if k.RegistryAuth.User != "" {
		opts = append(opts, registry.WithBasicAuth(k.RegistryAuth.User, string(k.RegistryAuth.Password)))
	}
	return registry.NewClient(k.Registry, opts...)
}
