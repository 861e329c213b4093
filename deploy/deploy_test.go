package deploy

import (
	"bufio"
	"context"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"

	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/testutil"
)

// The public images the deployment runs, each pinned to a release, and
// why that one.
var pinnedImages = map[string]string{
	"apache/kafka:4.4.0":                            "the Kafka the test tier runs (scripts/kafka/pom.xml)",
	"confluentinc/cp-schema-registry:8.1.1":         "keeps schemas in Kafka; no K2 role serves the registry without the embedded broker",
	"postgres:17.5":                                 "the catalog's database",
	"minio/minio:RELEASE.2025-04-22T22-12-26Z":      "the warehouse's object store",
	"minio/mc:RELEASE.2025-04-16T18-13-26Z":         "creates the warehouse's bucket",
	"prometheuscommunity/postgres-exporter:v0.16.0": "pg_up for PostgreSQLCatalogDown",
	"prom/node-exporter:v1.9.1":                     "node_* for DiskSpaceLow and HighMemoryUsage",
	"prom/prometheus:v2.53.0":                       "the Prometheus whose rule parser k2 ops alerts validate uses (v0.53.1)",
	"grafana/grafana:12.2.0":                        "the dashboards",
	// The Dockerfile's stages.
	"golang:1.26.8-bookworm": "go.mod's Go on the Debian release the project builds on",
	"debian:12.11-slim":      "the build stage's glibc",
}

// Ports the public images listen on by their own default, where the
// compose file does not set them.
var defaultPorts = map[string][]uint32{
	"prom/prometheus:v2.53.0":                       {9090},
	"grafana/grafana:12.2.0":                        {3000},
	"prometheuscommunity/postgres-exporter:v0.16.0": {9187},
	"prom/node-exporter:v1.9.1":                     {9100},
	"postgres:17.5":                                 {5432},
}

// Host paths outside the repository a service may mount, and why.
var hostMounts = map[string]string{
	"/": "node-exporter reads the host's filesystems (--path.rootfs=/host)",
}

func project(t *testing.T) (*types.Project, string) {
	t.Helper()
	root := testutil.RepoRoot(t)
	p, err := LoadCompose(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	return p, root
}

// The compose file passes the compose specification's schema and
// consistency checks, and the checks are on: the same file with one
// unknown attribute fails them.
func TestComposeFileIsValid(t *testing.T) {
	p, root := project(t)
	if len(p.Services) == 0 {
		t.Fatal("no services")
	}
	b, err := os.ReadFile(filepath.Join(root, ComposeFile))
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(b), "  kafka:\n", "  kafka:\n    restart_polcy: always\n", 1)
	if bad == string(b) {
		t.Fatal("no kafka service to break")
	}
	tmp := t.TempDir()
	if err := os.MkdirAll(filepath.Join(tmp, filepath.Dir(ComposeFile)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, ComposeFile), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCompose(context.Background(), tmp); err == nil || !strings.Contains(err.Error(), "restart_polcy") {
		t.Fatalf("a misspelt attribute loaded: %v", err)
	}
}

// Every image is the one the project builds (from deploy/docker/Dockerfile,
// with the repository as context) or a pinned public image listed above;
// so are the Dockerfile's stages, whose Go is go.mod's.
func TestImagesAreBuiltOrPinned(t *testing.T) {
	p, root := project(t)
	for _, name := range p.ServiceNames() {
		s := p.Services[name]
		switch {
		case s.Image == K2Image:
			if s.Build == nil || s.Build.Context != root || s.Build.Dockerfile != "deploy/docker/Dockerfile" {
				t.Errorf("%s: image %s is not built from deploy/docker/Dockerfile in the repository: %+v", name, s.Image, s.Build)
			}
		case s.Build != nil:
			t.Errorf("%s: builds an image other than %s", name, K2Image)
		case pinnedImages[s.Image] == "":
			t.Errorf("%s: image %q is not one of the pinned images", name, s.Image)
		}
	}
	dockerfile := filepath.Join(root, "deploy", "docker", "Dockerfile")
	if _, err := os.Stat(filepath.Join(root, "deploy", "docker", "Dockerfile.dockerignore")); err != nil {
		t.Error(err)
	}
	from := regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(readFile(t, dockerfile), -1)
	if len(from) != 2 {
		t.Fatalf("%s: %d stages, want a build and a runtime stage", dockerfile, len(from))
	}
	for _, m := range from {
		if pinnedImages[m[1]] == "" {
			t.Errorf("%s: FROM %s is not one of the pinned images", dockerfile, m[1])
		}
	}
	goVersion := regexp.MustCompile(`(?m)^go (\S+)`).FindStringSubmatch(readFile(t, filepath.Join(root, "go.mod")))
	if goVersion == nil || !strings.HasPrefix(from[0][1], "golang:"+goVersion[1]+"-") {
		t.Errorf("%s builds with %s, go.mod wants Go %v", dockerfile, from[0][1], goVersion)
	}
}

// Every file or directory a service mounts is in the repository (or a
// host path listed above), and the files the mounted configurations name
// inside the containers are among them.
func TestMountedFilesExist(t *testing.T) {
	p, root := project(t)
	for _, name := range p.ServiceNames() {
		for _, v := range p.Services[name].Volumes {
			if v.Type != types.VolumeTypeBind {
				if _, ok := p.Volumes[v.Source]; !ok {
					t.Errorf("%s: volume %q is not declared", name, v.Source)
				}
				continue
			}
			if why := hostMounts[v.Source]; why != "" {
				continue
			}
			rel, err := filepath.Rel(root, v.Source)
			if err != nil || strings.HasPrefix(rel, "..") {
				t.Errorf("%s: mounts %s, outside the repository", name, v.Source)
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("%s: mounts %s, which is not in the repository: %v", name, rel, err)
			}
		}
	}

	// Prometheus's rule files, relative to its configuration's directory.
	prom := p.Services["prometheus"]
	conf := containerFile(t, prom, "/etc/prometheus/prometheus.yml")
	var pc promConfig
	if err := yaml.Unmarshal([]byte(readFile(t, conf)), &pc); err != nil {
		t.Fatalf("%s: %v", conf, err)
	}
	if len(pc.RuleFiles) == 0 {
		t.Errorf("%s loads no rules", conf)
	}
	for _, rf := range pc.RuleFiles {
		containerFile(t, prom, path.Join("/etc/prometheus", rf))
	}

	// Grafana's provisioning: the data source the dashboards name, at the
	// compose file's Prometheus; the dashboards' directory.
	graf := p.Services["grafana"]
	var ds struct {
		Datasources []struct{ UID, Type, URL string } `yaml:"datasources"`
	}
	if err := yaml.Unmarshal([]byte(readFile(t, containerFile(t, graf, "/etc/grafana/provisioning/datasources/prometheus.yaml"))), &ds); err != nil {
		t.Fatal(err)
	}
	if len(ds.Datasources) != 1 || ds.Datasources[0].UID != "prometheus" || ds.Datasources[0].Type != "prometheus" {
		t.Fatalf("data sources %+v, want one Prometheus with uid prometheus", ds.Datasources)
	}
	dsURL := os.Expand(ds.Datasources[0].URL, func(k string) string { return envOf(graf)[k] })
	if u, err := url.Parse(dsURL); err != nil || u.Port() != "9090" || p.Services[u.Hostname()].Image != "prom/prometheus:v2.53.0" {
		t.Errorf("Grafana's data source URL %q (%s) is not the compose file's Prometheus", dsURL, ds.Datasources[0].URL)
	}
	var dash struct {
		Providers []struct {
			Type    string
			Options struct{ Path string }
		} `yaml:"providers"`
	}
	if err := yaml.Unmarshal([]byte(readFile(t, containerFile(t, graf, "/etc/grafana/provisioning/dashboards/k2.yaml"))), &dash); err != nil {
		t.Fatal(err)
	}
	if len(dash.Providers) != 1 || dash.Providers[0].Type != "file" {
		t.Fatalf("dashboard providers %+v, want one file provider", dash.Providers)
	}
	if dir := containerFile(t, graf, dash.Providers[0].Options.Path); dir != filepath.Join(root, "deploy", "grafana", "dashboards") {
		t.Errorf("Grafana's dashboards come from %s", dir)
	}
}

// containerFile is the repository file mounted at name in the service's
// container; it fails the test when none is, or the file is missing.
func containerFile(t *testing.T, s types.ServiceConfig, name string) string {
	t.Helper()
	for _, v := range s.Volumes {
		if v.Type != types.VolumeTypeBind {
			continue
		}
		if rel, ok := strings.CutPrefix(name, v.Target); ok && (rel == "" || strings.HasPrefix(rel, "/")) {
			host := filepath.Join(v.Source, filepath.FromSlash(rel))
			if _, err := os.Stat(host); err != nil {
				t.Fatalf("%s: %s in the container is %s, missing: %v", s.Name, name, host, err)
			}
			return host
		}
	}
	t.Fatalf("%s: nothing is mounted at %s", s.Name, name)
	return ""
}

// listens is where a service listens in its container, as its own
// configuration says: a K2 role on its --http-listen (K2_HTTP_LISTEN, else
// the role's default), Kafka on KAFKA_LISTENERS, the registry on its
// listeners, MinIO on its --address and --console-address, the others on
// their image's default port.
func listens(t *testing.T, s types.ServiceConfig) map[uint32]string {
	t.Helper()
	env := envOf(s)
	out := map[uint32]string{}
	add := func(hostport string) {
		host, port, err := net.SplitHostPort(hostport)
		n, perr := strconv.ParseUint(port, 10, 16)
		if err != nil || perr != nil {
			t.Fatalf("%s: listens on %q, not host:port", s.Name, hostport)
		}
		out[uint32(n)] = host
	}
	switch {
	case s.Image == K2Image:
		addr := env[config.EnvName("http-listen")]
		if addr == "" {
			addr = config.HTTPDefaults[s.Command[0]]
		}
		add(addr)
	case strings.HasPrefix(s.Image, "apache/kafka:"):
		for _, l := range strings.Split(env["KAFKA_LISTENERS"], ",") {
			_, hp, _ := strings.Cut(l, "://")
			add(hp)
		}
	case strings.HasPrefix(s.Image, "confluentinc/cp-schema-registry:"):
		u, err := url.Parse(env["SCHEMA_REGISTRY_LISTENERS"])
		if err != nil {
			t.Fatal(err)
		}
		add(u.Host)
	case strings.HasPrefix(s.Image, "minio/minio:"):
		for i, a := range s.Command {
			if a == "--address" || a == "--console-address" {
				add(s.Command[i+1])
			}
		}
	default:
		for _, p := range defaultPorts[s.Image] {
			out[p] = ""
		}
	}
	return out
}

func envOf(s types.ServiceConfig) map[string]string {
	out := map[string]string{}
	for k, v := range s.Environment {
		if v != nil {
			out[k] = *v
		}
	}
	return out
}

// Every published port is one its service listens on, on every interface
// of the container (a loopback listener cannot be published); only the
// API is published beyond the host's loopback.
func TestPublishedPortsAreListenedOn(t *testing.T) {
	p, _ := project(t)
	published := 0
	for _, name := range p.ServiceNames() {
		s := p.Services[name]
		on := listens(t, s)
		for _, port := range s.Ports {
			published++
			host, ok := on[port.Target]
			switch {
			case !ok:
				t.Errorf("%s: publishes %d, but listens on %v", name, port.Target, on)
			case host == "127.0.0.1" || host == "localhost":
				t.Errorf("%s: publishes %d, where it listens on %s only", name, port.Target, host)
			}
			if port.HostIP != "127.0.0.1" && name != "k2-api" {
				t.Errorf("%s: publishes %d on %q, beyond the host's loopback", name, port.Target, port.HostIP)
			}
		}
	}
	if published == 0 {
		t.Fatal("no port published")
	}
}

type promConfig struct {
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

// The compose file's Prometheus scrapes every K2 role at the port it
// listens on, under the job deploy/prometheus/prometheus.yml gives that
// role (the rules and dashboards read the job names), and loads the same
// rules.
func TestPrometheusScrapesEveryService(t *testing.T) {
	p, root := project(t)
	var plain, compose promConfig
	for _, c := range []struct {
		path string
		into *promConfig
	}{{filepath.Join(root, "deploy", "prometheus", "prometheus.yml"), &plain}, {containerFile(t, p.Services["prometheus"], "/etc/prometheus/prometheus.yml"), &compose}} {
		if err := yaml.Unmarshal([]byte(readFile(t, c.path)), c.into); err != nil {
			t.Fatalf("%s: %v", c.path, err)
		}
	}
	if !slices.Equal(plain.RuleFiles, compose.RuleFiles) {
		t.Errorf("rule files %v, deploy/prometheus/prometheus.yml loads %v", compose.RuleFiles, plain.RuleFiles)
	}
	plainJobs := map[string]bool{}
	for _, sc := range plain.ScrapeConfigs {
		plainJobs[sc.JobName] = true
	}
	scraped := map[string]bool{}
	for _, sc := range compose.ScrapeConfigs {
		if !plainJobs[sc.JobName] {
			t.Errorf("job %s is not one of deploy/prometheus/prometheus.yml's", sc.JobName)
		}
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				host, port, err := net.SplitHostPort(target)
				if err != nil {
					t.Fatalf("job %s: target %q: %v", sc.JobName, target, err)
				}
				s, ok := p.Services[host]
				if !ok {
					t.Errorf("job %s: target %s is no service", sc.JobName, target)
					continue
				}
				scraped[host] = true
				n, _ := strconv.Atoi(port)
				if h, ok := listens(t, s)[uint32(n)]; !ok || h == "127.0.0.1" {
					t.Errorf("job %s: %s does not listen on %s for other containers (%v)", sc.JobName, host, target, listens(t, s))
				}
				if role, isK2 := strings.CutPrefix(sc.JobName, "k2-"); isK2 && (s.Image != K2Image || s.Command[0] != role) {
					t.Errorf("job %s scrapes %s, which runs %s %v", sc.JobName, host, s.Image, s.Command)
				}
			}
		}
	}
	for _, name := range p.ServiceNames() {
		if p.Services[name].Image == K2Image && !scraped[name] {
			t.Errorf("K2 service %s is not scraped", name)
		}
	}
}

// The secrets compose.yaml mounts are what init-secrets.sh makes, in the
// directory git ignores; it keeps them when run again; the files that
// repeat a password hold the same one, for the host, port, database and
// user K2 is configured with. No environment value is a password: a
// variable that names one points at a mounted secret.
func TestSecretsComeFromFiles(t *testing.T) {
	p, root := project(t)
	compose := filepath.Join(root, filepath.Dir(ComposeFile))
	want := map[string]string{} // file → secret
	for name, s := range p.Secrets {
		if filepath.Dir(s.File) != filepath.Join(compose, "secrets") {
			t.Errorf("secret %s comes from %s, not from secrets/", name, s.File)
		}
		want[filepath.Base(s.File)] = name
	}
	dir := filepath.Join(t.TempDir(), "secrets")
	run := func() string {
		out, err := exec.Command(filepath.Join(compose, "init-secrets.sh"), dir).CombinedOutput()
		if err != nil {
			t.Fatalf("init-secrets.sh: %v\n%s", err, out)
		}
		return string(out)
	}
	run()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	made := map[string]string{}
	for _, e := range entries {
		made[e.Name()] = readFile(t, filepath.Join(dir, e.Name()))
		if _, ok := want[e.Name()]; !ok {
			t.Errorf("init-secrets.sh made %s, which compose.yaml does not mount", e.Name())
		}
	}
	for f := range want {
		if _, ok := made[f]; !ok {
			t.Errorf("compose.yaml mounts secrets/%s, which init-secrets.sh does not make", f)
		}
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("the secrets directory: %v %v, want mode 0700", st.Mode(), err)
	}
	if out := run(); strings.Contains(out, "created") {
		t.Errorf("a second run made files again:\n%s", out)
	}
	for f, content := range made {
		if readFile(t, filepath.Join(dir, f)) != content {
			t.Errorf("a second run changed %s", f)
		}
	}
	ignored := exec.Command("git", "check-ignore", "-q", filepath.Join(compose, "secrets", "postgres_password"))
	ignored.Dir = root
	if err := ignored.Run(); err != nil {
		t.Errorf("git does not ignore deploy/compose/secrets: %v", err)
	}

	// The copies of each password agree with the settings that use them.
	k2env := envOf(p.Services["k2-sink"])
	catalog, err := url.Parse(k2env[config.EnvName("catalog")])
	if err != nil {
		t.Fatal(err)
	}
	if _, hasPass := catalog.User.Password(); hasPass {
		t.Errorf("the catalog URL carries a password: it belongs in PGPASSFILE")
	}
	pgpass := strings.Join([]string{catalog.Hostname(), catalog.Port(), strings.TrimPrefix(catalog.Path, "/"), catalog.User.Username(), made["postgres_password"]}, ":")
	if strings.TrimSpace(made["k2_pgpass"]) != pgpass || made["postgres_password"] == "" {
		t.Errorf("k2_pgpass is %q, want %q", made["k2_pgpass"], pgpass)
	}
	aws := "[default]\naws_access_key_id = " + made["minio_root_user"] + "\naws_secret_access_key = " + made["minio_root_password"] + "\n"
	if made["k2_aws_credentials"] != aws {
		t.Errorf("k2_aws_credentials does not hold MinIO's root credentials:\n%s", made["k2_aws_credentials"])
	}
	if !strings.HasPrefix(envOf(p.Services["k2-sink"])[config.EnvName("warehouse")], "s3://"+envOf(p.Services["minio-init"])["BUCKET"]+"/") {
		t.Errorf("the warehouse is not in the bucket minio-init makes")
	}

	secretish := regexp.MustCompile(`(?i)pass|secret|token|api_?keys?$|credential`)
	for _, name := range p.ServiceNames() {
		s := p.Services[name]
		mounted := map[string]bool{}
		for _, sec := range s.Secrets {
			mounted["/run/secrets/"+sec.Source] = true
		}
		for k, v := range envOf(s) {
			switch {
			case strings.HasPrefix(v, "/run/secrets/"):
				if !mounted[v] {
					t.Errorf("%s: %s=%s, a secret the service does not mount", name, k, v)
				}
			case secretish.MatchString(k):
				t.Errorf("%s: %s is set in compose.yaml; it belongs in a secret file", name, k)
			}
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Every unit's environment files have samples here, hold only KEY=VALUE
// lines, and a unit's K2 settings are K2_* variables (the commands that
// read them are checked in cmd/k2).
func TestSystemdSamples(t *testing.T) {
	root := testutil.RepoRoot(t)
	units, err := Units(root)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range units {
		names = append(names, u.Name)
		inv, err := u.Invocation(root, "/usr/local/bin/k2")
		if err != nil {
			t.Error(err)
			continue
		}
		if inv.Env[config.EnvName("data-dir")] != "/var/lib/k2" || u.Service["StateDirectory"][0] != "k2" {
			t.Errorf("%s: state is not under /var/lib/k2", u.Name)
		}
		if u.Service["User"][0] != "k2" || u.Service["Restart"][0] != "on-failure" || u.Service["LimitNOFILE"] == nil || u.Service["NoNewPrivileges"][0] != "yes" {
			t.Errorf("%s: not the k2 user, restarts, limits and sandbox of k2-.service.d: %v", u.Name, u.Service)
		}
	}
	for _, want := range []string{"k2-sink.service", "k2-api.service", "k2-maintain.service", "k2-up.service", "k2-feed@binance.service", "k2-feed@kraken.service"} {
		if !slices.Contains(names, want) {
			t.Errorf("no unit %s among %v", want, names)
		}
	}
	f, err := os.Open(filepath.Join(root, SystemdDir, "k2.sysusers.conf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	user := false
	for sc := bufio.NewScanner(f); sc.Scan(); {
		user = user || strings.HasPrefix(sc.Text(), "u k2 ")
	}
	if !user {
		t.Error("k2.sysusers.conf does not make the k2 user")
	}
}
