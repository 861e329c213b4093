//go:build !linux

package bench

import (
	"os/exec"
	"time"
)

// startChild starts cmd; only Linux can tie its life to this process's.
func startChild(cmd *exec.Cmd) error { return cmd.Start() }

// selfCPU is the CPU time this process has used: unknown (-1) here.
func selfCPU() time.Duration { return -1 }

// machineCPU is the CPU time the machine's cores have been busy: unknown
// (-1) here.
func machineCPU() time.Duration { return -1 }
