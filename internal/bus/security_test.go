package bus_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/bus/bustest"
	"github.com/k2-market-data/k2/internal/config"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/registry"
	"github.com/k2-market-data/k2/internal/testsvc"
)

// saslSecurity is the configuration a process resolves for the test
// broker's SASL_SSL listener.
func saslSecurity(k testsvc.SecuredKafka, mechanism, password string) config.KafkaSecurity {
	return config.KafkaSecurity{Protocol: config.SASLSSL, Mechanism: mechanism, TLS: config.TLSFiles{CAFile: k.CAFile},
		SASL: config.Credentials{User: k.User, Password: config.Secret(password)}}
}

// checkedTopics checks a listener with sec and makes K2's topics through
// it, under a prefix of the test's own.
func checkedTopics(t *testing.T, brokers []string, sec bus.Security) bus.Topology {
	t.Helper()
	if err := bus.Check(context.Background(), brokers, sec); err != nil {
		t.Fatal(err)
	}
	topo := bus.DefaultTopology()
	topo.Prefix = testsvc.KafkaTopicPrefix(t)
	if err := bus.EnsureTopics(context.Background(), brokers, sec, topo); err != nil {
		t.Fatal(err)
	}
	return topo
}

// A producer, an admin and a consumer built from the configuration reach
// the broker's SASL_SSL listener with each mechanism and the registry over
// HTTPS with basic auth: every record produced is read back once.
func TestClientsThroughSASLSSL(t *testing.T) {
	k := testsvc.KafkaSecured(t)
	regURL, regCA := bustest.HTTPSRegistry(t, "k2-registry", "registry-secret")
	for _, mechanism := range []string{config.SASLPlain, config.SASLScramSHA512} {
		t.Run(mechanism, func(t *testing.T) {
			ctx := context.Background()
			sec, err := bus.NewSecurity(saslSecurity(k, mechanism, k.Password))
			if err != nil {
				t.Fatal(err)
			}
			brokers := strings.Split(k.SASLBrokers, ",")
			topo := checkedTopics(t, brokers, sec)
			reg, err := bus.RegistryClient(config.Kafka{Registry: regURL, RegistryTLS: config.TLSFiles{CAFile: regCA},
				RegistryAuth: config.Credentials{User: "k2-registry", Password: "registry-secret"}})
			if err != nil {
				t.Fatal(err)
			}
			p, err := bus.NewProducer(bus.ProducerConfig{Brokers: brokers, Security: sec, TopicPrefix: topo.Prefix}, reg)
			if err != nil {
				t.Fatal(err)
			}
			const n = 500
			for i := range n {
				tr := md.Trade{
					MessageID: md.MessageID("trade", "BTCUSDT", fmt.Sprint("BINANCE-", i)), TradeID: fmt.Sprint("BINANCE-", i), Symbol: "BTCUSDT", Exchange: "BINANCE",
					AssetClass: md.Crypto, Timestamp: md.Timestamp(1723161255342000 + int64(i)), Price: md.MustDecimal("61837.63"),
					Quantity: md.MustDecimal("0.02"), Currency: "USDT", Side: md.Sell, TradeConditions: []string{}, IngestionTimestamp: 1723161256000000,
				}
				if err := bus.Produce(ctx, p, record.Trade, &tr); err != nil {
					t.Fatal(err)
				}
			}
			if queued, err := p.Close(ctx); err != nil || queued != 0 {
				t.Fatalf("close: %d queued, %v", queued, err)
			}
			cl, err := bus.NewClient(brokers, sec, kgo.ConsumeTopics(topo.Prefix+"market.crypto.trades.binance"),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			got := 0
			readCtx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			for got < n && readCtx.Err() == nil {
				fs := cl.PollFetches(readCtx)
				for _, e := range fs.Errors() {
					if readCtx.Err() == nil {
						t.Fatalf("fetch: %v", e.Err)
					}
				}
				got += fs.NumRecords()
			}
			if got != n {
				t.Fatalf("read %d records through SASL_SSL, produced %d", got, n)
			}
		})
	}
}

// What the listener refuses is said at once in one line naming the broker
// and what was refused; a password never appears in it.
func TestCheckSaysWhatTheBrokerRefused(t *testing.T) {
	k := testsvc.KafkaSecured(t)
	otherCA := bustest.OtherCA(t)
	wrongCA := saslSecurity(k, config.SASLScramSHA512, k.Password)
	wrongCA.TLS.CAFile = otherCA
	wrongName := saslSecurity(k, config.SASLScramSHA512, k.Password)
	wrongName.TLS.ServerName = "kafka.example.com"
	for _, c := range []struct {
		name    string
		brokers string
		sec     config.KafkaSecurity
		want    string
	}{
		{"PLAIN password", k.SASLBrokers, saslSecurity(k, config.SASLPlain, "not-the-password"),
			"kafka " + k.SASLBrokers + ": SASL authentication failed (PLAIN, user " + k.User + "): "},
		{"SCRAM password", k.SASLBrokers, saslSecurity(k, config.SASLScramSHA512, "not-the-password"),
			"kafka " + k.SASLBrokers + ": SASL authentication failed (SCRAM-SHA-512, user " + k.User + "): "},
		{"mechanism", k.SASLBrokers, saslSecurity(k, config.SASLScramSHA256, k.Password),
			"kafka " + k.SASLBrokers + ": the broker does not take SASL mechanism SCRAM-SHA-256 (user " + k.User + ")"},
		{"CA", k.SASLBrokers, wrongCA, "kafka " + k.SASLBrokers + ": TLS: the broker's certificate does not verify against " + otherCA},
		{"server name", k.SASLBrokers, wrongName, "kafka " + k.SASLBrokers + ": TLS: the broker's certificate does not verify against " + k.CAFile},
		{"plaintext listener", k.Plaintext, saslSecurity(k, config.SASLPlain, k.Password),
			"kafka " + k.Plaintext + ": the broker closed the connection at once: is SASL_SSL its listener's security protocol"},
	} {
		t.Run(c.name, func(t *testing.T) {
			sec, err := bus.NewSecurity(c.sec)
			if err != nil {
				t.Fatal(err)
			}
			err = bus.Check(context.Background(), strings.Split(c.brokers, ","), sec)
			if err == nil || !strings.HasPrefix(err.Error(), c.want) || strings.Contains(err.Error(), "\n") ||
				strings.Contains(err.Error(), "not-the-password") || strings.Contains(err.Error(), k.Password) {
				t.Fatalf("got %v\nwant %q…", err, c.want)
			}
			t.Log(err)
		})
	}
	// A cluster that is down is no refusal: the clients wait for it.
	sec, _ := bus.NewSecurity(saslSecurity(k, config.SASLPlain, k.Password))
	if err := bus.Check(context.Background(), []string{"127.0.0.1:1"}, sec); err != nil {
		t.Fatalf("a broker that is down: %v", err)
	}
}

// The registry client refuses a server its CA did not sign and a wrong
// password, each in a line naming the registry.
func TestRegistryOverHTTPSRefusals(t *testing.T) {
	regURL, regCA := bustest.HTTPSRegistry(t, "k2-registry", "registry-secret")
	ctx := context.Background()
	for _, c := range []struct {
		name string
		k    config.Kafka
		want string
	}{
		{"system roots", config.Kafka{Registry: regURL, RegistryAuth: config.Credentials{User: "k2-registry", Password: "registry-secret"}},
			"certificate signed by unknown authority"},
		{"password", config.Kafka{Registry: regURL, RegistryTLS: config.TLSFiles{CAFile: regCA},
			RegistryAuth: config.Credentials{User: "k2-registry", Password: "wrong"}}, "Unauthorized"},
	} {
		t.Run(c.name, func(t *testing.T) {
			reg, err := bus.RegistryClient(c.k, registry.WithRegisterRetry(0))
			if err != nil {
				t.Fatal(err)
			}
			_, err = reg.Subjects(ctx)
			if err == nil || !strings.Contains(err.Error(), "schema registry "+regURL) || !strings.Contains(err.Error(), c.want) ||
				strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %v, want %q", err, c.want)
			}
			t.Log(err)
		})
	}
}

// The SSL listener takes a client certificate the CA signed, given as
// files; without one the broker's refusal is said in one line.
func TestClientCertificate(t *testing.T) {
	k := testsvc.KafkaSecured(t)
	ctx := context.Background()
	brokers := strings.Split(k.SSLBrokers, ",")
	withCert := config.KafkaSecurity{Protocol: config.SSL, TLS: config.TLSFiles{CAFile: k.CAFile, CertFile: k.CertFile, KeyFile: k.KeyFile}}
	sec, err := bus.NewSecurity(withCert)
	if err != nil {
		t.Fatal(err)
	}
	topo := checkedTopics(t, brokers, sec)
	cl, err := bus.NewClient(brokers, sec)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	topics, err := kadm.NewClient(cl).ListTopics(ctx, topo.Prefix+"market.crypto.trades.binance")
	if err != nil || topics.Error() != nil || len(topics) != 1 {
		t.Fatalf("the topics made through the SSL listener: %v %v", topics, err)
	}

	without, _ := bus.NewSecurity(config.KafkaSecurity{Protocol: config.SSL, TLS: config.TLSFiles{CAFile: k.CAFile}})
	err = bus.Check(ctx, brokers, without)
	want := "kafka " + k.SSLBrokers + ": TLS: the broker refused the handshake"
	if err == nil || !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("no client certificate: %v\nwant %q…", err, want)
	}
	t.Log(err)

	// A key that is not the certificate's is refused before any dial.
	mismatched := withCert
	mismatched.TLS.KeyFile = filepath.Join(t.TempDir(), "other.key")
	os.WriteFile(mismatched.TLS.KeyFile, []byte("-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n"), 0o600)
	if _, err := bus.NewSecurity(mismatched); err == nil || !strings.Contains(err.Error(), "--kafka-tls-cert-file "+k.CertFile+", --kafka-tls-key-file ") {
		t.Fatalf("a key that is not the certificate's: %v", err)
	}
}
