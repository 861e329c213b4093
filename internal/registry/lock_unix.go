//go:build unix

package registry

import (
	"errors"
	"os"
	"syscall"
)

// lockFile takes an exclusive, non-blocking flock on the log so two
// processes (or two Registries in one) never append to the same log: each
// would replay a different state and hand out the same ids to different
// schemas. The kernel drops the lock when the process dies, so a kill -9
// never leaves the directory locked.
func lockFile(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return errors.New("the registry directory is already open (by another process or another Registry)")
	}
	return err
}

func unlockFile(f *os.File) {
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}
