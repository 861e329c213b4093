package drill

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Runbook steps a drill runs: the runbook's blocks fenced ```sh recover
// and ```sh verify.
const (
	StepRecover = "recover"
	StepVerify  = "verify"
)

// RunbookBlocks returns the text of each block of the runbook (a path
// relative to the repository) fenced with the info string "sh STEP".
func RunbookBlocks(path, step string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("runbook: %w", err)
	}
	defer f.Close()
	var blocks []string
	var cur *strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && strings.HasPrefix(trimmed, "```"):
			if strings.Join(strings.Fields(strings.TrimPrefix(trimmed, "```")), " ") == "sh "+step {
				cur = &strings.Builder{}
			}
		case cur != nil && trimmed == "```":
			blocks = append(blocks, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line + "\n")
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("runbook %s: %w", path, err)
	}
	if cur != nil {
		return nil, fmt.Errorf("runbook %s: a ```sh %s block is not closed", path, step)
	}
	return blocks, nil
}

// RunRunbook runs the runbook's "sh STEP" blocks in order, each with
// `sh -eu` in the drill's directory, with `k2` first on PATH and the
// installation's settings in the environment (see the package comment),
// plus extra NAME=value variables the runbook names (the file a
// diagnosis found…). It returns their output; a runbook without such a
// block, or a failing command, is an error.
func (e *Env) RunRunbook(ctx context.Context, runbook, step string, in *Install, extra ...string) (string, error) {
	path := filepath.Join(e.Repo, runbook)
	blocks, err := RunbookBlocks(path, step)
	if err != nil {
		return "", err
	}
	if len(blocks) == 0 {
		return "", fmt.Errorf("runbook %s has no ```sh %s block", runbook, step)
	}
	bin := filepath.Join(e.Dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return "", err
	}
	if _, err := os.Lstat(filepath.Join(bin, "k2")); err != nil {
		if err := os.Symlink(e.Exe, filepath.Join(bin, "k2")); err != nil {
			return "", err
		}
	}
	env := append(withoutK2Settings(os.Environ()), in.Settings...)
	env = append(env, extra...)
	env = append(env, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	var out strings.Builder
	for i, b := range blocks {
		cmd := exec.CommandContext(ctx, "sh", "-eu", "-c", b)
		cmd.Dir = e.Dir
		cmd.Env = env
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return out.String(), fmt.Errorf("runbook %s, ```sh %s block %d: %v: %s", runbook, step, i+1, err, lastLine(out.String()))
		}
	}
	e.Logf("  runbook %s (%s): ran %d block(s)", runbook, step, len(blocks))
	return out.String(), nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
