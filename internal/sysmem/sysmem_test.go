package sysmem

import (
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
