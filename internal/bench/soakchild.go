package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/stack"
)

// upProcess is `k2 up` (or another role of k2) running as a child
// process.
type upProcess struct {
	name       string // "k2 up", for messages
	cmd        *exec.Cmd
	dataDir    string
	logPath    string
	baseURL    string // http://ADDR, where it serves HTTP
	metricsURL string
	done       chan struct{} // closed when the process has exited
	waitErr    error
	stopped    bool
}

// bannerHTTP reads where k2 up (or k2 api) serves HTTP from the line it
// prints:
// "K2 up · kafka … · schema registry http://… · http://ADDR · data …".
var bannerHTTP = regexp.MustCompile(` · http://(\S+)`)

// startUp runs k2 up with the synthetic market under root and waits until
// it serves.
func startUp(ctx context.Context, o SoakOptions, root string) (*upProcess, error) {
	flags := []string{"--log-level", "warn", "--feed", "synth", "--rate", strconv.FormatFloat(o.Rate, 'f', -1, 64)}
	if o.MemoryLimit != "" {
		flags = append(flags, "--memory-limit", o.MemoryLimit)
	}
	return startK2(ctx, childOptions{exe: o.Exe, role: "up", dataDir: filepath.Join(root, "data"), logPath: filepath.Join(root, "k2-up.log"), flags: flags})
}

// childOptions say which k2 to run as a child, on which data directory,
// logging where.
type childOptions struct {
	exe, dataDir, logPath string
	role                  string // up or api
	// flags are the role's flags; the listeners are added.
	flags []string
	// env are K2_* settings for the child, which otherwise runs on K2's
	// defaults.
	env []string
}

// startK2 runs a k2 role that serves HTTP (k2 up, k2 api) on c.dataDir and
// waits until it serves. Every address is chosen by the kernel (port 0)
// and read back from the role's banner. The process is killed if ctx
// ends, and on Linux if this process dies.
func startK2(ctx context.Context, c childOptions) (*upProcess, error) {
	p := &upProcess{name: "k2 " + c.role, dataDir: c.dataDir, logPath: c.logPath, done: make(chan struct{})}
	args := append([]string{"--data-dir", p.dataDir, c.role}, c.flags...)
	args = append(args, "--http-listen", "127.0.0.1:0")
	if c.role == "up" {
		args = append(args, "--broker-listen", "127.0.0.1:0", "--registry-listen", "127.0.0.1:0")
	}
	p.cmd = exec.CommandContext(ctx, c.exe, args...)
	// The child runs on K2's defaults in the scratch directory: settings
	// of this shell (K2_CATALOG, K2_CONFIG…) could point it elsewhere.
	p.cmd.Env = append(config.WithoutSettings(os.Environ()), c.env...)
	log, err := os.Create(p.logPath)
	if err != nil {
		return nil, err
	}
	p.cmd.Stderr = log
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		log.Close()
		return nil, err
	}
	banner := make(chan string, 1)
	started := make(chan error, 1)
	// startChild may tie the child's life to this goroutine's thread: the
	// goroutine lasts until the child has exited.
	go func() {
		if err := startChild(p.cmd); err != nil {
			started <- err
			log.Close()
			return
		}
		started <- nil
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := bannerHTTP.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case banner <- m[1]:
				default:
				}
			}
			fmt.Fprintln(log, sc.Text())
		}
		io.Copy(io.Discard, out)
		p.waitErr = p.cmd.Wait()
		log.Close()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("%s: %w", p.name, err)
	}
	select {
	case addr := <-banner:
		p.baseURL = "http://" + addr
		p.metricsURL = p.baseURL + "/metrics"
		return p, nil
	case <-p.done:
		return nil, p.failure()
	case <-time.After(2 * time.Minute):
		p.stop()
		return nil, fmt.Errorf("%s did not start within 2 minutes: %s", p.name, p.logTail())
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	}
}

// exited says whether the child has exited.
func (p *upProcess) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// failure says why the child exited, with the end of its log.
func (p *upProcess) failure() error {
	return fmt.Errorf("%s exited (%v): %s", p.name, p.waitErr, p.logTail())
}

// logTail is the end of the child's log (its stdout and stderr), on one line.
func (p *upProcess) logTail() string {
	b, _ := os.ReadFile(p.logPath)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], " | ")
}

// stop asks the child to stop (SIGTERM), as a service manager would, and
// kills it if it has not stopped well after its own stop timeout.
func (p *upProcess) stop() error {
	if p.stopped {
		return nil
	}
	p.stopped = true
	if p.exited() {
		return p.waitErr
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.waitErr
	case <-time.After(stack.StopTimeout + 5*time.Second):
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within %s of SIGTERM; killed", p.name, stack.StopTimeout+5*time.Second)
	}
}
