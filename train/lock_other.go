//go:build !unix

package train

// LockDir is a no-op where flock(2) is not available.
func LockDir(dir string) (release func(), err error) { return func() {}, nil }
