package main

import (
	"errors"
	"fmt"

	"github.com/ddpm-go/ddpm/imgio"
)

// Output flags are checked before a command loads a model or starts its
// work, so that a typo in a path costs a second, not the minutes of
// sampling before the save fails: a known extension, an existing and
// writable directory. Nothing is created by the checks.

// checkImageOut checks the image file that flag names (empty: not asked
// for), as .png, .jpg or .jpeg by default or with only exts (a plot
// writer makes PNGs alone). A bad extension is a usage error.
func checkImageOut(flag, path string, exts ...string) error {
	if path == "" {
		return nil
	}
	return outErr(flag, imgio.CheckOutput(path, exts...))
}

// checkFileOut checks that a file of any kind (weights) can be written to
// the path that flag names.
func checkFileOut(flag, path string) error {
	return outErr(flag, imgio.CheckFile(path))
}

// checkDirOut checks that the directory flag names can receive files: it
// exists, or its parent does and it can be made there.
func checkDirOut(flag, dir string) error {
	if dir == "" {
		return nil
	}
	return outErr(flag, imgio.CheckOutputDir(dir))
}

// outErr prefixes err, which starts with the path, with the flag.
func outErr(flag string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, imgio.ErrFormat):
		return usageErr("--%s %v", flag, err)
	}
	return fmt.Errorf("--%s %w", flag, err)
}
