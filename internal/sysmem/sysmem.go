// Package sysmem says how much memory the machine has free, so that a
// command can refuse work that cannot fit with one clear line instead of
// dying with the runtime's out-of-memory trace.
package sysmem

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Available is the memory the kernel can give without swapping
// (MemAvailable of /proc/meminfo), in bytes; ok is false where it is not
// known (other systems), and then every check passes.
func Available() (bytes float64, ok bool) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, found := strings.CutPrefix(sc.Text(), "MemAvailable:")
		if !found {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
		return kb * 1024, err == nil
	}
	return 0, false
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
