package lake_test

import (
	"context"
	"encoding/pem"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/k2-market-data/k2/internal/lake"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/testsvc"
)

// commitAndRead opens the lake, commits 50 trades and reads them back.
func commitAndRead(t *testing.T, opts lake.Options) {
	t.Helper()
	opts.Tables = record.Tables()
	l, err := lake.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	w, _ := record.Trade.Writer(l)
	if _, err := w.Commit(context.Background(), testTrades("BTCUSDT", 1, 50), nil); err != nil {
		t.Fatal(err)
	}
	if got := scanTrades(t, l); len(got) != 50 {
		t.Fatalf("read back %d trades, committed 50", len(got))
	}
}

// awsChainOnly clears every AWS variable that could hand the SDK
// credentials other than the ones a test gives, and keeps it off the
// instance metadata service.
func awsChainOnly(t *testing.T) {
	for _, v := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_DEFAULT_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, nil, 0o600)
	t.Setenv("AWS_CONFIG_FILE", empty)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", empty)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// K2 takes no S3 keys: they come from the AWS SDK's usual chain, here the
// environment and a profile of the shared credentials file; a wrong key in
// the environment is refused in a line naming the warehouse.
func TestS3CredentialsFromTheAWSChain(t *testing.T) {
	s3 := testsvc.S3(t)
	keyless := lake.S3Options{Endpoint: s3.Endpoint, Region: s3.Region}
	t.Run("environment", func(t *testing.T) {
		awsChainOnly(t)
		t.Setenv("AWS_ACCESS_KEY_ID", s3.AccessKey)
		t.Setenv("AWS_SECRET_ACCESS_KEY", s3.SecretKey)
		commitAndRead(t, lake.Options{Catalog: filepath.Join(t.TempDir(), "catalog.db"), Warehouse: testsvc.NewS3Prefix(t), S3: keyless})
	})
	t.Run("profile", func(t *testing.T) {
		awsChainOnly(t)
		creds := filepath.Join(t.TempDir(), "credentials")
		os.WriteFile(creds, []byte("[default]\naws_access_key_id = nobody\naws_secret_access_key = nothing\n\n"+
			"[k2-lake]\naws_access_key_id = "+s3.AccessKey+"\naws_secret_access_key = "+s3.SecretKey+"\n"), 0o600)
		t.Setenv("AWS_SHARED_CREDENTIALS_FILE", creds)
		t.Setenv("AWS_PROFILE", "k2-lake")
		commitAndRead(t, lake.Options{Catalog: filepath.Join(t.TempDir(), "catalog.db"), Warehouse: testsvc.NewS3Prefix(t), S3: keyless})
	})
	t.Run("wrong secret", func(t *testing.T) {
		awsChainOnly(t)
		t.Setenv("AWS_ACCESS_KEY_ID", s3.AccessKey)
		t.Setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
		warehouse := testsvc.NewS3Prefix(t)
		_, err := lake.Open(context.Background(), lake.Options{Tables: record.Tables(),
			Catalog: filepath.Join(t.TempDir(), "catalog.db"), Warehouse: warehouse, S3: keyless})
		if err == nil || !strings.Contains(err.Error(), "warehouse "+warehouse) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("a wrong secret from the environment: %v", err)
		}
		t.Log(err)
	})
}

// The PostgreSQL catalog's URL is handed to pgx whole, so sslmode and
// sslrootcert work: with verify-full against the test CA the catalog's
// connections are TLS, and against a CA that did not sign the server's
// certificate opening the lake fails in a line that names the catalog
// without its password.
func TestPostgresCatalogOverVerifiedTLS(t *testing.T) {
	catalog := testsvc.FreshPostgresTLSDB(t)
	commitAndRead(t, lake.Options{Catalog: catalog, Warehouse: filepath.Join(t.TempDir(), "warehouse")})

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, catalog)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var ssl bool
	var version string
	if err := conn.QueryRow(ctx, "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl, &version); err != nil || !ssl {
		t.Fatalf("the catalog's connection is not TLS: ssl=%v %v", ssl, err)
	}
	t.Logf("catalog connection: %s", version)

	// Another CA: the certificate of a throwaway HTTPS server.
	other := httptest.NewTLSServer(nil)
	other.Close()
	otherCA := filepath.Join(t.TempDir(), "other-ca.pem")
	os.WriteFile(otherCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: other.Certificate().Raw}), 0o644)
	u, _ := url.Parse(catalog)
	q := u.Query()
	q.Set("sslrootcert", otherCA)
	u.RawQuery = q.Encode()
	_, err = lake.Open(ctx, lake.Options{Tables: record.Tables(), Catalog: u.String(), Warehouse: filepath.Join(t.TempDir(), "warehouse")})
	pass, _ := u.User.Password()
	if err == nil || !strings.Contains(err.Error(), "catalog") || !strings.Contains(err.Error(), "certificate") ||
		strings.Contains(err.Error(), ":"+pass+"@") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("a server certificate from another CA: %v", err)
	}
	t.Log(err)
}
