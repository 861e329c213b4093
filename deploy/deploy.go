// Package deploy reads the deployment files beside it (the compose file
// and the systemd units) the way their runtimes do, so that tests can hold
// them to the project: the compose file against the compose specification,
// and every k2 command line they run against the real k2 commands
// (cmd/k2's tests). Nothing in the k2 binary imports it.
package deploy

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// K2Image is the image the compose file builds from deploy/docker.
const K2Image = "k2:dev"

// ComposeFile is the compose file, relative to the repository root.
var ComposeFile = filepath.Join("deploy", "compose", "compose.yaml")

// SystemdDir holds the units and the samples of /etc/k2.
var SystemdDir = filepath.Join("deploy", "systemd")

// LoadCompose loads the compose file under root as docker compose would,
// with the compose specification's schema validation and consistency
// checks on, and the environment of this process left out (so a variable
// set here cannot hide one the file lacks).
func LoadCompose(ctx context.Context, root string) (*types.Project, error) {
	path := filepath.Join(root, ComposeFile)
	opts, err := cli.NewProjectOptions([]string{path},
		cli.WithWorkingDirectory(filepath.Dir(path)),
		cli.WithEnv(nil),
		cli.WithInterpolation(true),
		cli.WithResolvedPaths(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
	)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	p, err := opts.LoadProject(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// Invocation is one k2 command line a deployment file runs: its arguments
// after the binary and its environment.
type Invocation struct {
	Where string // "compose service k2-sink", "deploy/systemd/k2-feed@kraken.service"
	Args  []string
	Env   map[string]string
	// From names where each variable of Env was set: the unit or an
	// environment file (k2.env, shared by every role's unit).
	From map[string]string
}

// ComposeInvocations are the k2 commands of the compose file's services
// that run the K2 image, each with the image's environment (its
// Dockerfile's ENV) under the service's.
func ComposeInvocations(p *types.Project, root string) ([]Invocation, error) {
	image, err := DockerfileEnv(root)
	if err != nil {
		return nil, err
	}
	var out []Invocation
	for _, name := range p.ServiceNames() {
		s := p.Services[name]
		if s.Image != K2Image {
			continue
		}
		env := maps.Clone(image)
		for k, v := range s.Environment {
			if v != nil {
				env[k] = *v
			}
		}
		out = append(out, Invocation{Where: "compose service " + name, Args: append([]string(nil), s.Command...), Env: env})
	}
	return out, nil
}

// DockerfileEnv is the environment the k2 image sets: the K=V pairs of
// deploy/docker/Dockerfile's ENV instructions.
func DockerfileEnv(root string) (map[string]string, error) {
	path := filepath.Join(root, "deploy", "docker", "Dockerfile")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "ENV ")
		if !ok {
			continue
		}
		for _, kv := range strings.Fields(rest) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return nil, fmt.Errorf("%s: ENV %s: want KEY=VALUE pairs", path, rest)
			}
			out[k] = v
		}
	}
	return out, nil
}

// Unit is a systemd unit of deploy/systemd as installed: its [Service]
// keys (drop-ins applied in order), with the instance put in for %i.
type Unit struct {
	Name    string              // k2-sink.service, k2-feed@kraken.service
	Service map[string][]string // key → values, in order of appearance
}

// Units reads the units of root's deploy/systemd, each template once per
// instance that has a sample environment file there (k2-feed@.service and
// feed-kraken.env make k2-feed@kraken.service), with the drop-ins of
// k2-.service.d applied first, as systemd applies a prefix drop-in.
func Units(root string) ([]Unit, error) {
	dir := filepath.Join(root, SystemdDir)
	files, err := filepath.Glob(filepath.Join(dir, "*.service"))
	if err != nil {
		return nil, err
	}
	dropins, err := filepath.Glob(filepath.Join(dir, "k2-.service.d", "*.conf"))
	if err != nil {
		return nil, err
	}
	sort.Strings(dropins)
	var out []Unit
	for _, f := range files {
		base := filepath.Base(f)
		names := []string{base}
		if prefix, ok := strings.CutSuffix(base, "@.service"); ok {
			names = nil
			samples, _ := filepath.Glob(filepath.Join(dir, strings.TrimPrefix(prefix, "k2-")+"-*.env"))
			for _, s := range samples {
				inst := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(s), strings.TrimPrefix(prefix, "k2-")+"-"), ".env")
				names = append(names, prefix+"@"+inst+".service")
			}
			if len(names) == 0 {
				return nil, fmt.Errorf("%s: a template with no sample instance (%s-NAME.env) beside it", f, strings.TrimPrefix(prefix, "k2-"))
			}
		}
		for _, name := range names {
			inst := ""
			if _, after, ok := strings.Cut(strings.TrimSuffix(name, ".service"), "@"); ok {
				inst = after
			}
			u := Unit{Name: name, Service: map[string][]string{}}
			for _, path := range append(append([]string(nil), dropins...), f) {
				if err := readService(path, inst, u.Service); err != nil {
					return nil, err
				}
			}
			out = append(out, u)
		}
	}
	return out, nil
}

// readService adds the [Service] keys of a unit file to into.
func readService(path, instance string, into map[string][]string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		case section == "Service":
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				return fmt.Errorf("%s:%d: %q is not Key=Value", path, n, line)
			}
			into[k] = append(into[k], strings.ReplaceAll(v, "%i", instance))
		}
	}
	return sc.Err()
}

// Invocation is the k2 command line of the unit's ExecStart, with the
// environment systemd gives it: Environment= lines, then the files of
// EnvironmentFile= (which win), each /etc/k2/NAME read from its sample
// deploy/systemd/NAME. bin is the path ExecStart must start with.
func (u Unit) Invocation(root, bin string) (Invocation, error) {
	inv := Invocation{Where: filepath.Join(SystemdDir, u.Name), Env: map[string]string{}, From: map[string]string{}}
	execs := u.Service["ExecStart"]
	if len(execs) != 1 {
		return inv, fmt.Errorf("%s: %d ExecStart lines, want 1", inv.Where, len(execs))
	}
	args := strings.Fields(execs[0])
	if len(args) == 0 || args[0] != bin {
		return inv, fmt.Errorf("%s: ExecStart=%s does not run %s", inv.Where, execs[0], bin)
	}
	inv.Args = args[1:]
	for _, line := range u.Service["Environment"] {
		for _, kv := range strings.Fields(line) {
			k, v, _ := strings.Cut(kv, "=")
			inv.Env[k], inv.From[k] = v, u.Name
		}
	}
	for _, ef := range u.Service["EnvironmentFile"] {
		optional := strings.HasPrefix(ef, "-")
		name, ok := strings.CutPrefix(strings.TrimPrefix(ef, "-"), "/etc/k2/")
		if !ok {
			return inv, fmt.Errorf("%s: EnvironmentFile=%s is not under /etc/k2", inv.Where, ef)
		}
		env, err := ReadEnvFile(filepath.Join(root, SystemdDir, name))
		if err != nil {
			if optional && os.IsNotExist(err) {
				continue
			}
			return inv, fmt.Errorf("%s: EnvironmentFile=%s has no sample: %w", inv.Where, ef, err)
		}
		for k, v := range env {
			inv.Env[k], inv.From[k] = v, name
		}
	}
	return inv, nil
}

// ReadEnvFile reads a systemd environment file: KEY=VALUE lines, # comments.
func ReadEnvFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for n, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s:%d: %q is not KEY=VALUE", path, n+1, line)
		}
		out[k] = v
	}
	return out, nil
}
