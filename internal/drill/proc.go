package drill

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/k2-market-data/k2/internal/config"
)

// Proc is a k2 role running as a child process, restartable on the same
// command line, addresses and data: what a service manager does.
type Proc struct {
	Name string // broker, sink, api, up: also its log's name
	// HTTP is where it serves /ready and /metrics (host:port).
	HTTP string
	args []string
	env  []string
	log  string
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
	// Started is when the current run was started.
	Started time.Time
	waitErr error
}

// startTimeout bounds a start: a role that has not printed its banner by
// then will not.
const startTimeout = 60 * time.Second

// Start runs `k2 ARGS…` as the child named name, with the installation's
// settings in its environment, and waits until it prints its banner
// ("K2 <role> · …"), which it does once it serves. httpAddr is its
// --http-listen, given in args.
func (e *Env) Start(ctx context.Context, name, httpAddr string, settings []string, args ...string) (*Proc, error) {
	p := &Proc{Name: name, HTTP: httpAddr, args: args, env: settings, log: filepath.Join(e.Dir, name+".log"), dir: e.Dir}
	e.procs = append(e.procs, p)
	if err := p.start(ctx, e.Exe); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Proc) start(ctx context.Context, exe string) error {
	log, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("%s: log: %w", p.Name, err)
	}
	fmt.Fprintf(log, "--- %s k2 %s\n", time.Now().UTC().Format(time.RFC3339Nano), strings.Join(p.args, " "))
	p.cmd = exec.Command(exe, p.args...)
	p.cmd.Dir = p.dir
	p.cmd.Env = append(config.WithoutSettings(os.Environ()), p.env...)
	p.cmd.Stderr = log
	setParentDeath(p.cmd)
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		log.Close()
		return err
	}
	p.done = make(chan struct{})
	banner := make(chan string, 1)
	started := make(chan error, 1)
	done := p.done
	// The parent-death signal follows the thread that started the child:
	// this goroutine keeps it until the child has exited.
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		p.Started = time.Now()
		if err := p.cmd.Start(); err != nil {
			log.Close()
			started <- err
			return
		}
		started <- nil
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "K2 ") {
				select {
				case banner <- sc.Text():
				default:
				}
			}
			fmt.Fprintln(log, sc.Text())
		}
		io.Copy(io.Discard, out)
		p.waitErr = p.cmd.Wait()
		log.Close()
		close(done)
	}()
	if err := <-started; err != nil {
		close(done)
		return fmt.Errorf("%s: %w", p.Name, err)
	}
	select {
	case <-banner:
		return nil
	case <-done:
		return fmt.Errorf("%s exited at start (%v): %s", p.Name, p.waitErr, p.LogTail(3))
	case <-time.After(startTimeout):
		p.Kill()
		return fmt.Errorf("%s did not start within %s: %s", p.Name, startTimeout, p.LogTail(3))
	case <-ctx.Done():
		p.Kill()
		return ctx.Err()
	}
}

// Restart starts the process again on its command line, as a service
// manager would after it died.
func (e *Env) Restart(ctx context.Context, p *Proc) error {
	if p.Running() {
		return fmt.Errorf("%s: restart while it runs", p.Name)
	}
	return p.start(ctx, e.Exe)
}

// Running reports whether the process runs.
func (p *Proc) Running() bool {
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Proc) Kill() {
	if !p.Running() {
		return
	}
	p.cmd.Process.Kill()
	<-p.done
}

// Pause stops the process with SIGSTOP, holding its connections open, as
// a process stalled (on a slow disk, a long pause) is; Resume continues it.
func (p *Proc) Pause() {
	if p.Running() {
		p.cmd.Process.Signal(syscall.SIGSTOP)
	}
}

// Resume continues a paused process (SIGCONT).
func (p *Proc) Resume() {
	if p.Running() {
		p.cmd.Process.Signal(syscall.SIGCONT)
	}
}

// Stop asks the process to stop (SIGTERM), killing it if it has not
// within 20 s.
func (p *Proc) Stop() error {
	if !p.Running() {
		return nil
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		var ee *exec.ExitError
		if errors.As(p.waitErr, &ee) {
			return fmt.Errorf("%s stopped with %v: %s", p.Name, p.waitErr, p.LogTail(3))
		}
		return nil
	case <-time.After(20 * time.Second):
		p.Kill()
		return fmt.Errorf("%s did not stop within 20 s of SIGTERM; killed", p.Name)
	}
}

// Exited waits up to d for the process to exit by itself and says
// whether it did.
func (p *Proc) Exited(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// Ready asks the process's /ready: nil when every check passes.
func (p *Proc) Ready(ctx context.Context) error {
	_, err := get(ctx, "http://"+p.HTTP+"/ready")
	return err
}

// LogTail is the last n lines of the process's log, on one line.
func (p *Proc) LogTail(n int) string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}

// LogContains reports whether the process's log holds s.
func (p *Proc) LogContains(s string) bool {
	b, _ := os.ReadFile(p.log)
	return strings.Contains(string(b), s)
}

// LogLine is the last line holding s that the process's current run
// logged (since its start line), or "".
func (p *Proc) LogLine(s string) string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(string(b), "\n")
	for i := len(lines) - 1; i >= 0 && !strings.HasPrefix(lines[i], "--- "); i-- {
		if strings.Contains(lines[i], s) {
			return lines[i]
		}
	}
	return ""
}

var probe = &http.Client{Timeout: 2 * time.Second}

// get GETs url and returns the body of a 200 answer; any other answer
// is an error saying what it was.
func get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := probe.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %.300s", url, resp.Status, strings.Join(strings.Fields(string(b)), " "))
	}
	return b, nil
}

// freeAddr is a loopback address free now: roles restart on fixed
// addresses, where their clients expect them.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
