//go:build !unix

package registry

import "os"

// lockFile is a no-op where flock does not exist; there, the caller must
// make sure only one Registry opens a directory.
func lockFile(*os.File) error { return nil }

func unlockFile(*os.File) {}
