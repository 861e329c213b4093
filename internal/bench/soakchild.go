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

	"github.com/k2-market-data/k2/internal/stack"
)

// upProcess is `k2 up` running as a child process.
type upProcess struct {
	cmd        *exec.Cmd
	dataDir    string
	logPath    string
	metricsURL string
	done       chan struct{} // closed when the process has exited
	waitErr    error
	stopped    bool
}

// bannerHTTP reads where k2 up serves HTTP from the line it prints:
// "K2 up · kafka … · schema registry http://… · http://ADDR · data …".
var bannerHTTP = regexp.MustCompile(` · http://(\S+)`)

// startUp runs k2 up with the synthetic market under root and waits until
// it serves. Every address is chosen by the kernel (port 0) and read back
// from k2 up's banner. The process is killed if ctx ends, and on Linux if
// this process dies.
func startUp(ctx context.Context, o SoakOptions, root string) (*upProcess, error) {
	p := &upProcess{dataDir: filepath.Join(root, "data"), logPath: filepath.Join(root, "k2-up.log"), done: make(chan struct{})}
	args := []string{"--data-dir", p.dataDir, "--log-level", "warn", "up", "--feed", "synth",
		"--rate", strconv.FormatFloat(o.Rate, 'f', -1, 64),
		"--http-listen", "127.0.0.1:0", "--broker-listen", "127.0.0.1:0", "--registry-listen", "127.0.0.1:0"}
	if o.MemoryLimit != "" {
		args = append(args, "--memory-limit", o.MemoryLimit)
	}
	p.cmd = exec.CommandContext(ctx, o.Exe, args...)
	// The child runs on K2's defaults in the scratch directory: settings
	// of this shell (K2_CATALOG, K2_CONFIG…) could point it elsewhere.
	p.cmd.Env = withoutK2Settings(os.Environ())
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
		return nil, fmt.Errorf("k2 up: %w", err)
	}
	select {
	case addr := <-banner:
		p.metricsURL = "http://" + addr + "/metrics"
		return p, nil
	case <-p.done:
		return nil, p.failure()
	case <-time.After(2 * time.Minute):
		p.stop()
		return nil, fmt.Errorf("k2 up did not start within 2 minutes: %s", p.logTail())
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	}
}

// withoutK2Settings drops K2_* variables from an environment.
func withoutK2Settings(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "K2_") {
			out = append(out, kv)
		}
	}
	return out
}

// exited says whether k2 up has exited.
func (p *upProcess) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// failure says why k2 up exited, with the end of its log.
func (p *upProcess) failure() error {
	return fmt.Errorf("k2 up exited (%v): %s", p.waitErr, p.logTail())
}

// logTail is the end of k2 up's log (its stdout and stderr), on one line.
func (p *upProcess) logTail() string {
	b, _ := os.ReadFile(p.logPath)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], " | ")
}

// stop asks k2 up to stop (SIGTERM), as a service manager would, and
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
		return fmt.Errorf("k2 up did not stop within %s of SIGTERM; killed", stack.StopTimeout+5*time.Second)
	}
}
