package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestCPUProfile: DDPM_CPUPROFILE writes a profile go tool pprof reads (a
// gzipped protobuf) and leaves the command's own result alone; a path that
// cannot be created is a one-line error, status 1, before the command runs.
func TestCPUProfile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cpu.prof")
	r := runBin(t, []string{"DDPM_CPUPROFILE=" + path}, "schedule", "--json", "--out", filepath.Join(t.TempDir(), "schedule.png"))
	mustSucceed(t, r, "ddpm schedule with DDPM_CPUPROFILE")
	if !bytes.HasPrefix([]byte(r.stdout), []byte("{")) {
		t.Fatalf("stdout is not the schedule's JSON: %.80q", r.stdout)
	}
	prof, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(prof) < 2 || prof[0] != 0x1f || prof[1] != 0x8b {
		t.Fatalf("profile is %d bytes and not gzipped", len(prof))
	}

	bad := filepath.Join(t.TempDir(), "no-such-dir", "cpu.prof")
	checkCleanFailure(t, runBin(t, []string{"DDPM_CPUPROFILE=" + bad}, "schedule", "--json", "--out", filepath.Join(t.TempDir(), "schedule.png")), 1, "DDPM_CPUPROFILE")
}
