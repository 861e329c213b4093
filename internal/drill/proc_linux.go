package drill

import (
	"os/exec"
	"syscall"
)

// setParentDeath has the kernel kill the child if the drill dies: a drill
// killed mid-way leaves no k2 behind.
func setParentDeath(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
