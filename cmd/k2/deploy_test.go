package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/k2-market-data/k2/deploy"
	"github.com/k2-market-data/k2/internal/api"
	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/testsvc"
	"github.com/k2-market-data/k2/internal/testutil"
)

// installedK2 is where the systemd units run k2 from.
const installedK2 = "/usr/local/bin/k2"

// deploySecrets runs deploy/compose/init-secrets.sh into a temporary
// directory and returns it: the secret files a deployment's settings name.
func deploySecrets(t *testing.T, root string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "secrets")
	if out, err := exec.Command(filepath.Join(root, "deploy", "compose", "init-secrets.sh"), dir).CombinedOutput(); err != nil {
		t.Fatalf("init-secrets.sh: %v\n%s", err, out)
	}
	return dir
}

// Every k2 command line the compose file and the systemd units run is a
// real command with real flags, every K2_* variable they set is a setting
// of that command, and the settings (the environment and the settings
// file K2_CONFIG names, as init-secrets.sh makes it) are accepted by k2's
// own checks, the API's keys included: a role that would refuse to start
// fails here.
func TestDeploymentRunsRealCommands(t *testing.T) {
	root := testutil.RepoRoot(t)
	p, err := deploy.LoadCompose(t.Context(), root)
	if err != nil {
		t.Fatal(err)
	}
	invs, err := deploy.ComposeInvocations(p, root)
	if err != nil {
		t.Fatal(err)
	}
	secrets := deploySecrets(t, root)
	// Where each runtime puts the secrets: compose's /run/secrets/NAME and
	// systemd's credentials directory (%d), both read from what
	// init-secrets.sh makes.
	composeSecret := map[string]string{}
	for name, s := range p.Secrets {
		composeSecret["/run/secrets/"+name] = filepath.Join(secrets, filepath.Base(s.File))
	}
	creds := t.TempDir()
	for cred, file := range map[string]string{"pgpass": "k2_pgpass", "aws-credentials": "k2_aws_credentials", "settings": "k2_settings.yaml"} {
		if err := os.Symlink(filepath.Join(secrets, file), filepath.Join(creds, cred)); err != nil {
			t.Fatal(err)
		}
	}
	units, err := deploy.Units(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range units {
		inv, err := u.Invocation(root, installedK2)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range inv.Env {
			inv.Env[k] = strings.ReplaceAll(v, "%d", creds)
		}
		invs = append(invs, inv)
	}
	if len(invs) < 10 {
		t.Fatalf("%d k2 command lines, want the compose file's five and the units' six", len(invs))
	}
	// An environment file several units load (k2.env) may hold settings
	// some of them ignore; each must be read by one of them.
	loads := map[string]int{}
	for _, inv := range invs {
		for _, f := range uniq(inv.From) {
			loads[f]++
		}
	}
	sharedRead := map[string]bool{}
	for _, inv := range invs {
		t.Run(strings.ReplaceAll(inv.Where, "/", "_"), func(t *testing.T) {
			for k, v := range inv.Env {
				if f, ok := composeSecret[v]; ok {
					inv.Env[k] = f
				}
			}
			for k, read := range checkInvocation(t, inv, func(k string) bool { return loads[inv.From[k]] > 1 }) {
				sharedRead[inv.From[k]+": "+k] = sharedRead[inv.From[k]+": "+k] || read
			}
		})
	}
	for k, read := range sharedRead {
		if !read {
			t.Errorf("%s is read by none of the units that load it", k)
		}
	}
}

func uniq(m map[string]string) []string {
	var out []string
	for _, v := range m {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// checkInvocation checks one command line and its environment; a K2_*
// variable for which shared is true may be one the command does not read.
// It returns, for those, whether the command reads them.
func checkInvocation(t *testing.T, inv deploy.Invocation, shared func(string) bool) map[string]bool {
	rootCmd, a := newRoot()
	cmd, rest, err := rootCmd.Find(inv.Args)
	if err != nil || !cmd.Runnable() {
		t.Fatalf("%s runs k2 %s: no such command (%v)", inv.Where, strings.Join(inv.Args, " "), err)
	}
	if err := cmd.ParseFlags(rest); err != nil {
		t.Fatalf("%s runs k2 %s: %v", inv.Where, strings.Join(inv.Args, " "), err)
	}
	if err := cmd.ValidateArgs(cmd.Flags().Args()); err != nil {
		t.Fatalf("%s runs k2 %s: %v", inv.Where, strings.Join(inv.Args, " "), err)
	}
	settings := map[string]bool{config.EnvName("config"): true}
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if config.IsSetting(f) {
			settings[config.EnvName(f.Name)] = true
		}
	})
	// Only the invocation's K2_* variables: none of this process's.
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, config.EnvPrefix) && !strings.HasPrefix(k, "K2_TEST_") || k == "GOMEMLIMIT" {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	sharedRead := map[string]bool{}
	for k, v := range inv.Env {
		switch {
		case !strings.HasPrefix(k, config.EnvPrefix):
		case shared(k):
			sharedRead[k] = settings[k]
		case !settings[k]:
			t.Errorf("%s sets %s, which %s does not read", inv.Where, k, cmd.CommandPath())
		}
		t.Setenv(k, v)
	}
	// setUp applies the environment and the settings file, checks every
	// value, and sets the heap limit, which this test process keeps not.
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	if err := a.setUp(cmd); err != nil {
		t.Fatalf("%s: k2 %s refuses its settings: %v", inv.Where, strings.Join(inv.Args, " "), err)
	}
	if cmd.Flags().Lookup("api-keys") != nil {
		if _, err := api.NewGuard(api.GuardOptions{API: a.cfg.API, Listen: a.cfg.HTTP.Listen,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}); err != nil {
			t.Fatalf("%s: the API would not start: %v", inv.Where, err)
		}
	}
	return sharedRead
}

// The systemd units pass systemd-analyze verify, with ExecStart pointed at
// a k2 built from this tree (verify checks that the binary exists and is
// executable; the units name /usr/local/bin/k2, where it is installed).
// A copy whose binary is missing fails, so verify is really checking.
func TestSystemdUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		msg := "systemd-analyze is not installed (Debian's systemd package); scripts/test-services.sh start installs it"
		if os.Getenv(testsvc.EnvRequireServices) == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	root := testutil.RepoRoot(t)
	bin := k2Binary(t)
	units, err := deploy.Units(root)
	if err != nil {
		t.Fatal(err)
	}
	verify := func(binary string) map[string]string {
		dir := t.TempDir()
		src := filepath.Join(root, deploy.SystemdDir)
		err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(src, path)
			if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, rel)), 0o755); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, rel), []byte(strings.ReplaceAll(string(b), installedK2, binary)), 0o644)
		})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, u := range units {
			cmd := exec.Command(analyze, "verify", "--man=no", filepath.Join(dir, u.Name))
			b, err := cmd.CombinedOutput()
			if err != nil || len(b) > 0 {
				out[u.Name] = strings.TrimSpace(string(b)) + " (" + errString(err) + ")"
			}
		}
		return out
	}
	for unit, problem := range verify(bin) {
		t.Errorf("systemd-analyze verify %s: %s", unit, problem)
	}
	if broken := verify(filepath.Join(t.TempDir(), "no-k2")); len(broken) != len(units) {
		t.Errorf("with the binary missing, verify failed on %d of %d units", len(broken), len(units))
	}
}

func errString(err error) string {
	if err == nil {
		return "exit 0"
	}
	return err.Error()
}

// The deployments keep passwords out of settings: the catalog URL has
// none, and K2 (through PostgreSQL's client) reads it from PGPASSFILE,
// and S3 credentials from the AWS credentials file, in the formats
// init-secrets.sh writes. The built binary opens the lake that way on the
// test S3 server and on the test PostgreSQL behind a front that asks for
// a password, as a production server does (the test server trusts local
// connections); with a wrong password in either file it fails with one
// line that names the catalog or the warehouse and shows no password.
func TestSecretsFromFilesReachTheLake(t *testing.T) {
	bin := k2Binary(t)
	pg, err := url.Parse(testsvc.FreshPostgresDB(t))
	if err != nil {
		t.Fatal(err)
	}
	s3 := testsvc.S3(t)
	pgPassword := "pg-" + randomWord(t)
	front := passwordFront(t, pg.Host, pgPassword)
	catalog := *pg
	catalog.User = url.User(pg.User.Username())
	catalog.Host = front
	dir := t.TempDir()
	pgpass := filepath.Join(dir, "k2_pgpass")
	awsCreds := filepath.Join(dir, "k2_aws_credentials")
	write := func(pgPass, s3Secret string) {
		t.Helper()
		line := strings.Join([]string{catalog.Hostname(), catalog.Port(), strings.TrimPrefix(pg.Path, "/"), pg.User.Username(), pgPass}, ":")
		if err := os.WriteFile(pgpass, []byte(line), 0o600); err != nil {
			t.Fatal(err)
		}
		creds := "[default]\naws_access_key_id = " + s3.AccessKey + "\naws_secret_access_key = " + s3Secret + "\n"
		if err := os.WriteFile(awsCreds, []byte(creds), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	warehouse := testsvc.NewS3Prefix(t)
	status := func() (string, string, error) {
		cmd := exec.Command(bin, "lake", "status", "--json")
		cmd.Env = []string{
			"PATH=" + os.Getenv("PATH"), "HOME=" + dir,
			"K2_DATA_DIR=" + filepath.Join(dir, "data"),
			"K2_CATALOG=" + catalog.String(),
			"K2_WAREHOUSE=" + warehouse,
			"K2_S3_ENDPOINT=" + s3.Endpoint, "K2_S3_REGION=" + s3.Region,
			"PGPASSFILE=" + pgpass, "AWS_SHARED_CREDENTIALS_FILE=" + awsCreds,
		}
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}

	write(pgPassword, s3.SecretKey)
	out, errOut, err := status()
	if err != nil {
		t.Fatalf("k2 lake status with the secrets in files: %v: %s", err, errOut)
	}
	var tables []struct{ Table string }
	if err := json.Unmarshal([]byte(out), &tables); err != nil || len(tables) == 0 {
		t.Fatalf("k2 lake status --json: %v: %s", err, out)
	}

	wrongPG, wrongS3 := "wrong-"+randomWord(t), "wrong-"+randomWord(t)
	for _, c := range []struct{ what, pgPass, s3Secret, names string }{
		{"catalog password", wrongPG, s3.SecretKey, "catalog"},
		{"S3 secret", pgPassword, wrongS3, "warehouse"},
	} {
		write(c.pgPass, c.s3Secret)
		_, errOut, err := status()
		line := strings.TrimSpace(errOut)
		if err == nil || strings.Count(line, "\n") > 0 || !strings.HasPrefix(line, "k2: "+c.names) {
			t.Errorf("a wrong %s: %v, %q; want one line naming the %s", c.what, err, line, c.names)
		}
		for _, secret := range []string{pgPassword, wrongPG, wrongS3, s3.SecretKey} {
			if strings.Contains(errOut, secret) {
				t.Errorf("a wrong %s: the error shows a password: %q", c.what, errOut)
			}
		}
	}
}

func randomWord(t *testing.T) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// passwordFront listens on a loopback port in front of the PostgreSQL at
// upstream and asks each client for password (in clear text, on this
// machine only), as a server with password authentication does: a wrong
// one gets PostgreSQL's own error, the right one a connection passed
// through to upstream. It stops with the test.
func passwordFront(t *testing.T, upstream, password string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				be := pgproto3.NewBackend(c, c)
				msg, err := be.ReceiveStartupMessage()
				if _, ssl := msg.(*pgproto3.SSLRequest); ssl && err == nil {
					c.Write([]byte("N"))
					msg, err = be.ReceiveStartupMessage()
				}
				startup, ok := msg.(*pgproto3.StartupMessage)
				if err != nil || !ok {
					return
				}
				be.Send(&pgproto3.AuthenticationCleartextPassword{})
				if be.Flush() != nil || be.SetAuthType(pgproto3.AuthTypeCleartextPassword) != nil {
					return
				}
				m, err := be.Receive()
				if pw, ok := m.(*pgproto3.PasswordMessage); err != nil || !ok || pw.Password != password {
					be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "28P01",
						Message: fmt.Sprintf("password authentication failed for user %q", startup.Parameters["user"])})
					be.Flush()
					return
				}
				up, err := net.Dial("tcp", upstream)
				if err != nil {
					return
				}
				defer up.Close()
				fe := pgproto3.NewFrontend(up, up)
				fe.Send(startup)
				if fe.Flush() != nil {
					return
				}
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
	return ln.Addr().String()
}

// settingsDoc is the reference table of docs/operations/configuration.md,
// between these markers.
const (
	settingsBegin = "<!-- settings: generated by TestConfigurationDocListsEverySetting; K2_UPDATE_DOCS=1 rewrites it -->"
	settingsEnd   = "<!-- settings: end -->"
)

// docs/operations/configuration.md lists every setting with its variable,
// default, the commands that read it and what it does, as the commands
// define them. K2_UPDATE_DOCS=1 rewrites the table from them.
func TestConfigurationDocListsEverySetting(t *testing.T) {
	path := filepath.Join(testutil.RepoRoot(t), "docs", "operations", "configuration.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i, j := strings.Index(doc, settingsBegin), strings.Index(doc, settingsEnd)
	if i < 0 || j < i {
		t.Fatalf("%s has no settings table between %q and %q", path, settingsBegin, settingsEnd)
	}
	rootCmd, _ := newRoot()
	want := settingsTable(rootCmd)
	got := doc[i+len(settingsBegin) : j]
	if got == want {
		return
	}
	if os.Getenv("K2_UPDATE_DOCS") == "1" {
		if err := os.WriteFile(path, []byte(doc[:i+len(settingsBegin)]+want+doc[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote the settings table of %s", path)
		return
	}
	gl, wl := strings.Split(got, "\n"), strings.Split(want, "\n")
	for n := 0; n < max(len(gl), len(wl)); n++ {
		if n >= len(gl) || n >= len(wl) || gl[n] != wl[n] {
			g, w := "(none)", "(none)"
			if n < len(gl) {
				g = gl[n]
			}
			if n < len(wl) {
				w = wl[n]
			}
			t.Fatalf("%s's settings table is not the commands' (first difference, line %d):\n doc:  %s\n want: %s\nrun K2_UPDATE_DOCS=1 go test ./cmd/k2 -run TestConfigurationDocListsEverySetting", path, n+1, g, w)
		}
	}
}

// settingsTable is a Markdown table of every setting: flag, variable,
// default (each command's where they differ), the top-level commands that
// read it, and its help text.
func settingsTable(root *cobra.Command) string {
	type setting struct {
		usage    string
		defaults map[string][]string // default → commands
		commands map[string]bool
		order    []string
	}
	all := map[string]*setting{}
	var names []string
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Runnable() && !c.Hidden {
			top := strings.Fields(c.CommandPath())
			visit := func(f *pflag.Flag) {
				if !config.IsSetting(f) {
					return
				}
				s := all[f.Name]
				if s == nil {
					s = &setting{usage: f.Usage, defaults: map[string][]string{}, commands: map[string]bool{}}
					all[f.Name] = s
					names = append(names, f.Name)
				}
				if len(top) > 1 && !s.commands[top[1]] {
					s.commands[top[1]] = true
					s.order = append(s.order, top[1])
				}
				def := f.DefValue
				if def == "[]" {
					def = ""
				}
				if len(top) > 1 && !slices.Contains(s.defaults[def], top[1]) {
					s.defaults[def] = append(s.defaults[def], top[1])
				}
			}
			c.LocalFlags().VisitAll(visit)
			c.InheritedFlags().VisitAll(visit)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	slices.Sort(names)
	var runnable int
	for _, c := range root.Commands() {
		if c.Runnable() || c.HasSubCommands() {
			runnable++
		}
	}
	cell := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	var sb strings.Builder
	sb.WriteString("\n\n| setting | variable | default | read by | what it does |\n|---|---|---|---|---|\n")
	for _, name := range names {
		s := all[name]
		var def string
		if len(s.defaults) == 1 {
			for d := range s.defaults {
				def = codeOr(d)
			}
		} else {
			var parts []string
			for d, cmds := range s.defaults {
				slices.Sort(cmds)
				parts = append(parts, strings.Join(cmds, ", ")+": "+codeOr(d))
			}
			slices.Sort(parts)
			def = strings.Join(parts, "; ")
		}
		readBy := "every command"
		if len(s.commands) < runnable {
			slices.Sort(s.order)
			readBy = strings.Join(s.order, ", ")
		}
		sb.WriteString("| `--" + name + "` | `" + config.EnvName(name) + "` | " + cell(def) + " | " + readBy + " | " + cell(s.usage) + " |\n")
	}
	sb.WriteString("\n")
	return sb.String()
}

func codeOr(def string) string {
	if def == "" {
		return "none"
	}
	return "`" + def + "`"
}
