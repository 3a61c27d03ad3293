//go:build unix

package train

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// LockDir takes an exclusive lock on the run directory dir (the file
// dir/.lock), so that a second `ddpm train` on the same run fails at once
// instead of interleaving its checkpoints with the first one's. The lock is
// an flock(2): the kernel drops it when the process ends however it ends,
// so a crash never leaves a stale lock behind. release unlocks.
func LockDir(dir string) (release func(), err error) {
	path := filepath.Join(dir, ".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("locking the run directory: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("run directory %s is in use by another ddpm train (lock %s)", dir, path)
		}
		return nil, fmt.Errorf("locking the run directory %s: %w", dir, err)
	}
	return func() { f.Close() }, nil
}
