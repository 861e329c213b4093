package testsvc_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	icebergio "github.com/apache/iceberg-go/io"
	_ "github.com/apache/iceberg-go/io/gocloud/s3" // registers s3:// for icebergio.LoadFS
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/k2-market-data/k2/internal/testsvc"
)

func TestPostgres(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	base := testsvc.Postgres(t)
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect %s: %v", base, err)
	}
	defer conn.Close(ctx)
	if err := conn.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	var version string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&version); err != nil {
		t.Fatal(err)
	}
	t.Logf("PostgreSQL %s at %s", version, base)

	var dbName string
	t.Run("fresh-db", func(t *testing.T) {
		u := testsvc.FreshPostgresDB(t)
		db, err := pgx.Connect(ctx, u)
		if err != nil {
			t.Fatalf("connect %s: %v", u, err)
		}
		defer db.Close(ctx)
		if err := db.QueryRow(ctx, "SELECT current_database()").Scan(&dbName); err != nil {
			t.Fatal(err)
		}
		var tables int
		if err := db.QueryRow(ctx,
			"SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'").Scan(&tables); err != nil {
			t.Fatal(err)
		}
		if tables != 0 {
			t.Fatalf("fresh database %s has %d tables", dbName, tables)
		}
		if _, err := db.Exec(ctx, "CREATE TABLE t (x numeric(38, 18)); INSERT INTO t VALUES (1.5)"); err != nil {
			t.Fatal(err)
		}
	})
	if dbName == "" {
		t.Fatal("fresh-db did not report its database")
	}
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", dbName).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("database %s still exists after its test ended", dbName)
	}
}

func s3Client(c testsvc.S3Config) *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(c.Endpoint),
		Region:       c.Region,
		Credentials:  credentials.NewStaticCredentialsProvider(c.AccessKey, c.SecretKey, ""),
		UsePathStyle: true,
	})
}

func TestS3(t *testing.T) {
	c := testsvc.S3(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := s3Client(c)

	prefix := testsvc.NewS3Prefix(t)
	wantPrefix := "s3://" + c.Bucket + "/TestS3-"
	if !strings.HasPrefix(prefix, wantPrefix) {
		t.Fatalf("NewS3Prefix = %q, want prefix %q", prefix, wantPrefix)
	}
	if other := testsvc.NewS3Prefix(t); other == prefix {
		t.Fatalf("NewS3Prefix returned %q twice", prefix)
	}
	key := strings.TrimPrefix(prefix, "s3://"+c.Bucket+"/") + "/hello.txt"
	body := []byte("K2 says hello " + time.Now().UTC().Format(time.RFC3339Nano))

	if _, err := cl.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(c.Bucket), Key: aws.String(key), Body: bytes.NewReader(body),
	}); err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	got, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(c.Bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("GetObject: %v", err)
	}
	data, err := io.ReadAll(got.Body)
	got.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, body) {
		t.Fatalf("GetObject = %q, want %q", data, body)
	}
	list, err := cl.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket: aws.String(c.Bucket), Prefix: aws.String(strings.TrimSuffix(key, "hello.txt")),
	})
	if err != nil {
		t.Fatalf("ListObjectsV2: %v", err)
	}
	if len(list.Contents) != 1 || aws.ToString(list.Contents[0].Key) != key {
		t.Fatalf("ListObjectsV2 = %d objects, want just %s", len(list.Contents), key)
	}
	if _, err := cl.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(c.Bucket), Key: aws.String(key)}); err != nil {
		t.Fatalf("DeleteObject: %v", err)
	}
	_, err = cl.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(c.Bucket), Key: aws.String(key)})
	var nf *types.NotFound
	if !errors.As(err, &nf) {
		t.Fatalf("HeadObject after delete: err = %v, want NotFound", err)
	}
}

// TestPyIceberg proves the PyIceberg side of the harness: PyIceberg itself
// writes a small table (scripts/pyiceberg_smoke.py) into an S3 warehouse, with
// a SQLite and with a PostgreSQL catalog, and scripts/pyiceberg_check.py
// reads it back through RunPyIceberg.
func TestPyIceberg(t *testing.T) {
	c := testsvc.S3(t)
	testsvc.Python(t)

	catalogs := map[string]func(t *testing.T) string{
		"sqlite": func(t *testing.T) string {
			return "sqlite:///" + filepath.Join(t.TempDir(), "catalog.db")
		},
		"postgres": func(t *testing.T) string {
			return testsvc.FreshPostgresDB(t) // postgres:// is accepted for postgresql+psycopg2://
		},
	}
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			uri := catalogs[name](t)
			warehouse := testsvc.NewS3Prefix(t)
			common := append([]string{"--catalog-uri", uri, "--warehouse", warehouse}, c.PyIcebergArgs()...)

			want := testsvc.RunPythonScript(t, "pyiceberg_smoke.py", append(common, "--table", "market_data.trades")...)
			if loc := want["metadata_location"].(string); !strings.HasPrefix(loc, warehouse+"/") {
				t.Fatalf("metadata_location %s is not under %s", loc, warehouse)
			}

			got := table(t, testsvc.RunPyIceberg(t, append(common, "--table", "market_data.trades")...), "market_data.trades")
			for _, k := range []string{"rows", "decimal_sums", "snapshot_id", "metadata_location"} {
				if !reflect.DeepEqual(got[k], want[k]) {
					t.Errorf("%s = %v, want %v", k, got[k], want[k])
				}
			}
			for col, mm := range want["min_max"].(map[string]any) {
				if g := got["min_max"].(map[string]any)[col]; !reflect.DeepEqual(g, mm) {
					t.Errorf("min_max[%s] = %v, want %v", col, g, mm)
				}
			}
			if s := fmt.Sprint(got["partition_spec"]); !strings.Contains(s, "symbol: identity") {
				t.Errorf("partition_spec = %s", s)
			}
			schema, _ := json.Marshal(got["schema"])
			if !strings.Contains(string(schema), `"name":"price","required":true,"type":"decimal(18, 8)"`) {
				t.Errorf("schema = %s", schema)
			}

			filtered := table(t, testsvc.RunPyIceberg(t,
				append(common, "--table", "market_data.trades", "--filter", "symbol = 'BHP'")...), "market_data.trades")
			if filtered["rows"] != want["bhp_rows"] {
				t.Errorf("filtered rows = %v, want %v", filtered["rows"], want["bhp_rows"])
			}

			static := table(t, testsvc.RunPyIceberg(t, append(c.PyIcebergArgs(),
				"--metadata-location", want["metadata_location"].(string), "--table", "market_data.trades")...),
				"market_data.trades")
			if static["rows"] != want["rows"] || !reflect.DeepEqual(static["decimal_sums"], want["decimal_sums"]) {
				t.Errorf("static table: rows %v sums %v, want %v %v",
					static["rows"], static["decimal_sums"], want["rows"], want["decimal_sums"])
			}
		})
	}
}

func table(t *testing.T, out map[string]any, name string) map[string]any {
	t.Helper()
	tables, _ := out["tables"].(map[string]any)
	tbl, ok := tables[name].(map[string]any)
	if !ok {
		t.Fatalf("no table %s in %v", name, out)
	}
	return tbl
}

// TestIcebergGoS3IO checks that iceberg-go's own S3 FileIO (the one K2's
// writer uses) works against the test S3 server with S3Config.IcebergProps:
// a write large enough for a multipart upload, a read back, a ranged read and
// a delete.
func TestIcebergGoS3IO(t *testing.T) {
	c := testsvc.S3(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	prefix := testsvc.NewS3Prefix(t)

	fsys, err := icebergio.LoadFS(ctx, c.IcebergProps(), prefix)
	if err != nil {
		t.Fatalf("LoadFS(%s): %v", prefix, err)
	}
	wfs, ok := fsys.(icebergio.WriteFileIO)
	if !ok {
		t.Fatalf("%T is not a WriteFileIO", fsys)
	}
	data := make([]byte, 12<<20+12345)
	for i := range data {
		data[i] = byte(i*7 + i>>11)
	}
	name := prefix + "/data/probe.bin"
	w, err := wfs.Create(name)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := io.Copy(w, bytes.NewReader(data)); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close writer: %v", err)
	}
	f, err := fsys.Open(name)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer f.Close()
	got, err := io.ReadAll(f)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, differs from the %d written", len(got), len(data))
	}
	part := make([]byte, 1000)
	if _, err := f.ReadAt(part, 7<<20); err != nil {
		t.Fatalf("ReadAt: %v", err)
	}
	if !bytes.Equal(part, data[7<<20:7<<20+1000]) {
		t.Fatal("ReadAt returned the wrong bytes")
	}
	if err := fsys.Remove(name); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := fsys.Open(name); err == nil {
		t.Fatal("Open after Remove succeeded")
	}
}

// tailWriter keeps the last lines written to it.
type tailWriter struct {
	mu    sync.Mutex
	lines []string
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lines = append(w.lines, strings.TrimRight(string(p), "\n"))
	if len(w.lines) > 400 {
		w.lines = append(w.lines[:0:0], w.lines[len(w.lines)-300:]...)
	}
	return len(p), nil
}

// kafkaOpts are the options of every test client: the test broker, and a
// debug log that is printed only if the test fails.
func kafkaOpts(t *testing.T, opts ...kgo.Opt) []kgo.Opt {
	t.Helper()
	w := &tailWriter{}
	name := fmt.Sprintf("client %p", w)
	t.Cleanup(func() {
		if t.Failed() {
			w.mu.Lock()
			defer w.mu.Unlock()
			t.Logf("kgo log of %s (last %d lines):\n%s", name, len(w.lines), strings.Join(w.lines, "\n"))
		}
	})
	return append([]kgo.Opt{
		kgo.SeedBrokers(testsvc.KafkaSeeds(t)...),
		kgo.WithLogger(kgo.BasicLogger(w, kgo.LogLevelDebug, func() string {
			return time.Now().Format("15:04:05.000 ")
		})),
	}, opts...)
}

// kafkaClient returns a kgo client of the test broker, closed when the test ends.
func kafkaClient(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kafkaOpts(t, opts...)...)
	if err != nil {
		t.Fatalf("kgo.NewClient: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// kafkaProducer is an idempotent producer with acks=all (kgo's defaults,
// spelled out) writing to topic.
func kafkaProducer(t *testing.T, topic string) *kgo.Client {
	return kafkaClient(t,
		kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(5*time.Millisecond),
	)
}

// createKafkaTopic creates topic and waits until the broker's metadata shows
// it with a leader for every partition: CreateTopics returns once the
// controller has committed the topic, a moment before the broker serves it.
func createKafkaTopic(ctx context.Context, t *testing.T, adm *kadm.Client, topic string, partitions int32) {
	t.Helper()
	resp, err := adm.CreateTopic(ctx, partitions, -1, nil, topic)
	if err != nil {
		t.Fatalf("CreateTopic %s: %v", topic, err)
	}
	if resp.Err != nil {
		t.Fatalf("CreateTopic %s: %v (%s)", topic, resp.Err, resp.ErrMessage)
	}
	waitKafkaTopic(ctx, t, adm, topic)
}

func waitKafkaTopic(ctx context.Context, t *testing.T, adm *kadm.Client, topic string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		td, err := adm.ListTopics(ctx, topic)
		var last error = err
		if err == nil {
			d := td[topic]
			last = d.Err
			if d.Err == nil && len(d.Partitions) > 0 {
				ready := true
				for _, p := range d.Partitions {
					if p.Err != nil || p.Leader < 0 {
						ready, last = false, fmt.Errorf("partition %d: leader %d, err %v", p.Partition, p.Leader, p.Err)
					}
				}
				if ready {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %s not ready after 30s: %v", topic, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// produceN writes records k-<i>/v-<i> for i in [from, from+n) and checks that
// each was acknowledged by an idempotent producer.
func produceN(ctx context.Context, t *testing.T, cl *kgo.Client, from, n int) {
	t.Helper()
	const batch = 100
	for i := from; i < from+n; i += batch {
		var rs []*kgo.Record
		for j := i; j < from+n && j < i+batch; j++ {
			rs = append(rs, &kgo.Record{Key: []byte("k-" + strconv.Itoa(j)), Value: []byte("v-" + strconv.Itoa(j))})
		}
		res := cl.ProduceSync(ctx, rs...)
		if err := res.FirstErr(); err != nil {
			t.Fatalf("produce records %d..%d: %v", i, i+len(rs)-1, err)
		}
		for _, r := range res {
			if r.Record.ProducerID < 0 {
				t.Fatalf("record %s has producer id %d: the producer is not idempotent", r.Record.Key, r.Record.ProducerID)
			}
		}
	}
}

// consumeUntil polls cl until it has n records, failing on errors, duplicates,
// malformed records or a timeout; it returns the record indexes it saw, sorted.
func consumeUntil(ctx context.Context, t *testing.T, cl *kgo.Client, n int) []int {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	seen := make(map[int]bool, n)
	partitions := map[int32]bool{}
	for len(seen) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records before %v", len(seen), n, ctx.Err())
		}
		for _, e := range fs.Errors() {
			t.Fatalf("fetch %s/%d: %v", e.Topic, e.Partition, e.Err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			i, err := strconv.Atoi(strings.TrimPrefix(string(r.Key), "k-"))
			if err != nil || string(r.Value) != "v-"+strconv.Itoa(i) {
				t.Fatalf("unexpected record %s/%d@%d: %q=%q", r.Topic, r.Partition, r.Offset, r.Key, r.Value)
			}
			if seen[i] {
				t.Fatalf("record %q delivered twice (%s/%d@%d)", r.Key, r.Topic, r.Partition, r.Offset)
			}
			seen[i] = true
			partitions[r.Partition] = true
		})
	}
	if len(seen) != n {
		t.Fatalf("consumed %d records, want %d", len(seen), n)
	}
	out := make([]int, 0, n)
	for i := range seen {
		out = append(out, i)
	}
	sort.Ints(out)
	return out
}

// consumeGroup consumes n records of topic in consumer group, commits their
// offsets and leaves the group.
func consumeGroup(ctx context.Context, t *testing.T, topic, group string, n int) []int {
	t.Helper()
	cl, err := kgo.NewClient(kafkaOpts(t,
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := consumeUntil(ctx, t, cl, n)
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("commit offsets of group %s: %v", group, err)
	}
	return got
}

// retryAdmin retries an admin request for up to 15 s. A kadm client that was
// idle across a broker restart can fail its first requests with EOF (kgo does
// not retry a sharded FindCoordinator that hits a dead connection).
func retryAdmin(t *testing.T, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		t.Logf("%s: %v (retrying)", what, err)
		time.Sleep(200 * time.Millisecond)
	}
}

func endOffsetSum(ctx context.Context, t *testing.T, adm *kadm.Client, topic string) int64 {
	t.Helper()
	var offs kadm.ListedOffsets
	retryAdmin(t, "ListEndOffsets "+topic, func() (err error) {
		if offs, err = adm.ListEndOffsets(ctx, topic); err == nil {
			err = offs.Error()
		}
		return err
	})
	var sum int64
	offs.Each(func(o kadm.ListedOffset) { sum += o.Offset })
	return sum
}

// committedSum is the sum of the offsets that group committed for topic.
func committedSum(ctx context.Context, t *testing.T, adm *kadm.Client, group, topic string) int64 {
	t.Helper()
	var offs kadm.OffsetResponses
	retryAdmin(t, "FetchOffsets "+group, func() (err error) {
		if offs, err = adm.FetchOffsets(ctx, group); err == nil {
			err = offs.Error()
		}
		return err
	})
	var sum int64
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic {
			sum += o.At
		}
	})
	return sum
}

func partitionCount(ctx context.Context, t *testing.T, adm *kadm.Client, topic string) int {
	t.Helper()
	var td kadm.TopicDetails
	retryAdmin(t, "ListTopics "+topic, func() (err error) {
		td, err = adm.ListTopics(ctx, topic)
		return err
	})
	d, ok := td[topic]
	if !ok || d.Err != nil {
		t.Fatalf("topic %s: present %v, err %v", topic, ok, d.Err)
	}
	return len(d.Partitions)
}

func seq(from, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = from + i
	}
	return out
}

// TestKafka proves the broker of scripts/test-services.sh: its settings, a
// topic created with kadm, 1000 records through an idempotent acks=all
// producer, and a consumer group that reads them all and commits.
func TestKafka(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	brokers := testsvc.Kafka(t)
	prefix := testsvc.KafkaTopicPrefix(t)
	if !strings.HasPrefix(prefix, "k2t-TestKafka-") || !strings.HasSuffix(prefix, "-") {
		t.Fatalf("KafkaTopicPrefix = %q, want k2t-TestKafka-<random>-", prefix)
	}
	if other := testsvc.KafkaTopicPrefix(t); other == prefix {
		t.Fatalf("KafkaTopicPrefix returned %q twice", prefix)
	}
	adm := kadm.NewClient(kafkaClient(t))

	meta, err := adm.BrokerMetadata(ctx)
	if err != nil {
		t.Fatalf("metadata from %s: %v", brokers, err)
	}
	if len(meta.Brokers) != 1 {
		t.Fatalf("brokers = %v, want one", meta.Brokers)
	}
	t.Logf("Kafka at %s: cluster %s, controller %d, broker %s:%d",
		brokers, meta.Cluster, meta.Controller, meta.Brokers[0].Host, meta.Brokers[0].Port)

	cfgs, err := adm.DescribeBrokerConfigs(ctx, meta.Brokers[0].NodeID)
	if err != nil {
		t.Fatalf("DescribeBrokerConfigs: %v", err)
	}
	want := map[string]string{
		"auto.create.topics.enable":                "false",
		"num.partitions":                           "3",
		"offsets.topic.replication.factor":         "1",
		"group.initial.rebalance.delay.ms":         "0",
		"transaction.state.log.replication.factor": "1",
	}
	for _, rc := range cfgs {
		for _, c := range rc.Configs {
			if w, ok := want[c.Key]; ok {
				if c.MaybeValue() != w {
					t.Errorf("broker config %s = %q, want %q", c.Key, c.MaybeValue(), w)
				}
				delete(want, c.Key)
			}
		}
	}
	if len(want) != 0 {
		t.Errorf("broker configs missing: %v", want)
	}

	// No auto-creation, even when a client asks for it.
	missing := prefix + "never-created"
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(missing)
	req.Topics = append(req.Topics, rt)
	req.AllowAutoTopicCreation = true
	resp, err := req.RequestWith(ctx, kafkaClient(t))
	if err != nil {
		t.Fatalf("metadata request: %v", err)
	}
	if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("metadata for %s with auto-creation: %+v, want UNKNOWN_TOPIC_OR_PARTITION", missing, resp.Topics)
	}

	// A topic created with the broker's defaults gets num.partitions.
	dflt := prefix + "defaults"
	if r, err := adm.CreateTopic(ctx, -1, -1, nil, dflt); err != nil || r.Err != nil {
		t.Fatalf("CreateTopic %s with defaults: %v %v", dflt, err, r.Err)
	}
	waitKafkaTopic(ctx, t, adm, dflt)
	if n := partitionCount(ctx, t, adm, dflt); n != 3 {
		t.Errorf("topic with default partitions has %d, want 3", n)
	}

	topic := prefix + "trades"
	createKafkaTopic(ctx, t, adm, topic, 3)
	if n := partitionCount(ctx, t, adm, topic); n != 3 {
		t.Fatalf("topic %s has %d partitions, want 3", topic, n)
	}

	const n = 1000
	start := time.Now()
	produceN(ctx, t, kafkaProducer(t, topic), 0, n)
	t.Logf("produced %d records in %v", n, time.Since(start).Round(time.Millisecond))
	offs, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	offs.Each(func(o kadm.ListedOffset) {
		if o.Offset == 0 {
			t.Errorf("partition %d got no records", o.Partition)
		}
	})
	if sum := endOffsetSum(ctx, t, adm, topic); sum != n {
		t.Fatalf("end offsets add up to %d, want %d", sum, n)
	}

	group := prefix + "group"
	start = time.Now()
	got := consumeGroup(ctx, t, topic, group, n)
	t.Logf("consumed %d records in group %s in %v", len(got), group, time.Since(start).Round(time.Millisecond))
	if !reflect.DeepEqual(got, seq(0, n)) {
		t.Fatalf("consumed records %v..., want 0..%d", got[:10], n-1)
	}
	if c := committedSum(ctx, t, adm, group, topic); c != n {
		t.Fatalf("group %s committed offsets adding up to %d, want %d", group, c, n)
	}
	lags, err := adm.Lag(ctx, group)
	if err != nil {
		t.Fatalf("Lag: %v", err)
	}
	if l := lags[group].Lag.Total(); l != 0 {
		t.Errorf("group %s lag = %d, want 0", group, l)
	}
}

// A passing test's topics are deleted when it ends: a run of the suite no
// longer leaves gigabytes on the shared broker.
func TestKafkaTopicPrefixDeletesAPassingTestsTopics(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adm := kadm.NewClient(kafkaClient(t))
	var topic string
	t.Run("creates", func(t *testing.T) {
		topic = testsvc.KafkaTopicPrefix(t) + "trades"
		if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
	})
	if t.Failed() {
		return
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		topics, err := adm.ListTopics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !topics.Has(topic) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %s still on the broker after its test passed", topic)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
