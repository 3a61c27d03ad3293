// Package sysmem says how much memory this process can still allocate, so
// that a command can refuse work that cannot fit with one clear line instead
// of dying in the runtime's "fatal error: out of memory".
package sysmem

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Available returns the bytes this process can still allocate without
// swapping or being killed: the smaller of the kernel's MemAvailable
// (/proc/meminfo) and the room left under the process's cgroup memory
// limit (v2 memory.max − memory.current, or v1 memory.limit_in_bytes −
// memory.usage_in_bytes), when there is one. ok is false when neither
// can be read (not Linux).
func Available() (bytes float64, ok bool) {
	b, ok := available(os.ReadFile)
	return float64(b), ok
}

// available is Available over a file reader, for tests.
func available(read func(string) ([]byte, error)) (uint64, bool) {
	var best uint64
	ok := false
	take := func(v uint64) {
		if !ok || v < best {
			best, ok = v, true
		}
	}
	if b, err := read("/proc/meminfo"); err == nil {
		if v, found := meminfo(b, "MemAvailable"); found {
			take(v)
		}
	}
	if v, found := cgroupRoom(read); found {
		take(v)
	}
	return best, ok
}

// meminfo reads one "Key:   N kB" field of /proc/meminfo, in bytes.
func meminfo(b []byte, key string) (uint64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, rest, found := strings.Cut(sc.Text(), ":")
		if !found || k != key {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0, false
		}
		v, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, false
		}
		if len(f) > 1 && f[1] == "kB" {
			v *= 1024
		}
		return v, true
	}
	return 0, false
}

// cgroupRoom is the memory left under this process's cgroup limit, found
// through /proc/self/cgroup; found is false without a limit.
func cgroupRoom(read func(string) ([]byte, error)) (uint64, bool) {
	b, err := read("/proc/self/cgroup")
	if err != nil {
		return 0, false
	}
	var best uint64
	found := false
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var dir, limitFile, usageFile string
		switch {
		case parts[0] == "0" && parts[1] == "": // cgroup v2
			dir, limitFile, usageFile = "/sys/fs/cgroup", "memory.max", "memory.current"
		case strings.Contains(","+parts[1]+",", ",memory,"): // v1 memory controller
			dir, limitFile, usageFile = "/sys/fs/cgroup/memory", "memory.limit_in_bytes", "memory.usage_in_bytes"
		default:
			continue
		}
		// Inside a cgroup namespace the process's own group is the root
		// of the mount; outside it is the path /proc names.
		for _, d := range []string{filepath.Join(dir, parts[2]), dir} {
			limit, ok := readUint(read, filepath.Join(d, limitFile))
			if !ok {
				continue
			}
			// v1 reports "no limit" as a huge page-rounded number.
			if limit >= 1<<60 {
				break
			}
			usage, _ := readUint(read, filepath.Join(d, usageFile))
			room := uint64(0)
			if limit > usage {
				room = limit - usage
			}
			if !found || room < best {
				best, found = room, true
			}
			break
		}
	}
	return best, found
}

// readUint reads a file holding one number ("max" is no number).
func readUint(read func(string) ([]byte, error), path string) (uint64, bool) {
	b, err := read(path)
	if err != nil {
		return 0, false
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return v, err == nil
}

// Fits reports, in one line, work that needs more than the available
// memory: what names the work, hint says what to do instead.
func Fits(need float64, what, hint string) error {
	avail, ok := Available()
	if !ok || need <= avail {
		return nil
	}
	return fmt.Errorf("%s need about %s of memory; this machine has %s available — %s", what, Size(need), Size(avail), hint)
}

// Size formats a byte count with a decimal unit: 3.2 TB, 21 GB, 512 MB.
func Size(b float64) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB", "EB"}
	u := 0
	for b >= 1000 && u < len(units)-1 {
		b /= 1000
		u++
	}
	if b >= 10 || u == 0 {
		return fmt.Sprintf("%.0f %s", b, units[u])
	}
	return fmt.Sprintf("%.1f %s", b, units[u])
}
