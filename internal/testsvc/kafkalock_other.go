//go:build !unix

package testsvc

func flock(uintptr, bool) error { return nil }

func funlock(uintptr) {}
