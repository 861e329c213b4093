package bench

import (
	"os/exec"
	"runtime"
	"syscall"
)

// startChild starts cmd so that the kernel kills it if this process dies
// (a benchmark killed with -9 leaves no k2 up behind). The parent-death
// signal follows the thread that started the child, so the calling
// goroutine keeps that thread until it ends, which must be after the
// child has exited.
func startChild(cmd *exec.Cmd) error {
	runtime.LockOSThread()
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	return cmd.Start()
}
