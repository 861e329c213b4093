//go:build !linux

package bench

import "os/exec"

// startChild starts cmd; only Linux can tie its life to this process's.
func startChild(cmd *exec.Cmd) error { return cmd.Start() }
