package sysmem

import (
	"os"
	"strings"
	"testing"
)

func TestSize(t *testing.T) {
	for _, tc := range []struct {
		b    float64
		want string
	}{{0, "0 B"}, {999, "999 B"}, {1500, "1.5 kB"}, {21e9, "21 GB"}, {3.2e12, "3.2 TB"}} {
		if got := Size(tc.b); got != tc.want {
			t.Errorf("Size(%g) = %q, want %q", tc.b, got, tc.want)
		}
	}
}

func TestFits(t *testing.T) {
	avail, ok := Available()
	if !ok {
		t.Skip("no /proc/meminfo")
	}
	if avail <= 0 {
		t.Fatalf("available %g", avail)
	}
	if err := Fits(1, "one byte", "-"); err != nil {
		t.Error(err)
	}
	err := Fits(avail*1000, "a lot", "ask for less")
	if err == nil || !strings.Contains(err.Error(), "ask for less") || strings.Contains(err.Error(), "\n") {
		t.Errorf("Fits(1000× available) = %v", err)
	}
}

// TestCgroupLimit: a cgroup's remaining room wins over MemAvailable when
// smaller, for cgroup v2 and v1; a v1 "no limit" is ignored.
func TestCgroupLimit(t *testing.T) {
	const meminfo = "MemTotal: 24000000 kB\nMemAvailable: 20000000 kB\n"
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  uint64
	}{
		{"no cgroup", map[string]string{"/proc/meminfo": meminfo}, 20000000 * 1024},
		{"v2 limit", map[string]string{"/proc/meminfo": meminfo, "/proc/self/cgroup": "0::/ci\n",
			"/sys/fs/cgroup/ci/memory.max": "4000000000\n", "/sys/fs/cgroup/ci/memory.current": "1000000000\n"}, 3000000000},
		{"v2 max", map[string]string{"/proc/meminfo": meminfo, "/proc/self/cgroup": "0::/\n",
			"/sys/fs/cgroup/memory.max": "max\n"}, 20000000 * 1024},
		{"v1 limit", map[string]string{"/proc/meminfo": meminfo, "/proc/self/cgroup": "4:memory:/job\n",
			"/sys/fs/cgroup/memory/job/memory.limit_in_bytes": "2000000000\n", "/sys/fs/cgroup/memory/job/memory.usage_in_bytes": "500000000\n"}, 1500000000},
		{"v1 unlimited", map[string]string{"/proc/meminfo": meminfo, "/proc/self/cgroup": "4:memory:/\n",
			"/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n"}, 20000000 * 1024},
	} {
		read := func(p string) ([]byte, error) {
			if s, ok := tc.files[p]; ok {
				return []byte(s), nil
			}
			return nil, os.ErrNotExist
		}
		if got, ok := available(read); !ok || got != tc.want {
			t.Errorf("%s: available = %d, %v; want %d", tc.name, got, ok, tc.want)
		}
	}
}
