//go:build unix

package testsvc

import "syscall"

func flock(fd uintptr, exclusive bool) error {
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	return syscall.Flock(int(fd), how)
}

func funlock(fd uintptr) { _ = syscall.Flock(int(fd), syscall.LOCK_UN) }
