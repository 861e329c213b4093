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
	"strings"
	"testing"
	"time"

	icebergio "github.com/apache/iceberg-go/io"
	_ "github.com/apache/iceberg-go/io/gocloud/s3" // registers s3:// for icebergio.LoadFS
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/jackc/pgx/v5"

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
