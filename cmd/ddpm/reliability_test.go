//go:build linux

package main

// Reliability tests that run the real binary and need Linux: training
// killed with SIGKILL at random moments, stopped with SIGINT/SIGTERM and
// resumed, always compared with an uninterrupted run; and checkpoint
// writes that fail for real (a full tmpfs, RLIMIT_FSIZE). The binary and
// the data fixtures come from cli_test.go.

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/train"
)

// killArgs is the run the interruption tests use: tiny enough to take a
// few seconds, with checkpoints every 3 steps, dropout and flips on so
// every random draw is exercised.
func killArgs(t *testing.T, out string, steps int) []string {
	return []string{"train", "--data", "folder:" + folderFixture(t), "--config", "tiny", "--steps", strconv.Itoa(steps),
		"--batch", "2", "--ckpt-every", "3", "--dropout", "0.1", "--flip", "--seed", "5", "--lr", "1e-3",
		"--warmup", "3", "--quiet", "--out", out}
}

const killSteps = 24

var baseline struct {
	once sync.Once
	ckpt []byte
	dur  time.Duration
	err  string
}

// killBaseline is the final checkpoint of the uninterrupted run, and how
// long that run took.
func killBaseline(t *testing.T) ([]byte, time.Duration) {
	t.Helper()
	baseline.once.Do(func() {
		out := filepath.Join(testDir, "baseline")
		ddpmBin(t) // not part of the timing
		start := time.Now()
		r := runBin(t, nil, killArgs(t, out, killSteps)...)
		baseline.dur = time.Since(start)
		if r.code != 0 {
			baseline.err = r.stderr
			return
		}
		baseline.ckpt, _ = os.ReadFile(filepath.Join(out, checkpoint.FileName))
	})
	if baseline.err != "" {
		t.Fatalf("baseline run failed: %s", baseline.err)
	}
	return baseline.ckpt, baseline.dur
}

// TestKillAnyMoment kills training with SIGKILL at random moments (early,
// often before the first checkpoint; at a random point after it; and as a
// checkpoint write is under way), then checks the guarantees: the newest checkpoint
// is whole (no fallback needed), it is no older than any checkpoint seen
// before the kill (at most one interval is lost), and resuming (or, with
// no checkpoint yet, starting again) finishes with exactly the
// uninterrupted run's result.
func TestKillAnyMoment(t *testing.T) {
	want, dur := killBaseline(t)
	trials := []string{"early", "at random", "during a write"}
	if testing.Short() {
		trials = trials[1:]
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d; the uninterrupted run took %v", seed, dur)
	rng := rand.New(rand.NewPCG(seed, 0))
	for i, kind := range trials {
		t.Run(fmt.Sprintf("%d %s", i, kind), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "run")
			cmd := exec.Command(ddpmBin(t), killArgs(t, out, killSteps)...)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			seen := -1 // newest checkpoint step observed before the kill
			var deadline time.Time
			switch kind {
			case "early":
				deadline = time.Now().Add(time.Duration(rng.Int64N(int64(dur / 4))))
			case "at random":
				deadline = time.Now().Add(time.Minute) // reset at the first checkpoint
			case "during a write":
				deadline = time.Now().Add(time.Minute)
			}
			done := false
		poll:
			for time.Now().Before(deadline) {
				select {
				case <-exited:
					done = true
					break poll
				default:
				}
				if kind == "during a write" && seen >= 3 {
					// Poll only the cheap glob, to catch the few
					// milliseconds a write takes.
					if len(tempFiles(out)) > 0 {
						break
					}
				} else {
					if s := newestStep(out); s > seen {
						if seen < 0 && kind == "at random" {
							deadline = time.Now().Add(time.Duration(rng.Int64N(int64(dur / 2))))
						}
						seen = s
					}
				}
				time.Sleep(time.Millisecond)
			}
			if !done {
				cmd.Process.Signal(syscall.SIGKILL)
				<-exited
			}
			t.Logf("killed after seeing step %d (finished first: %v); unfinished writes: %d", seen, done, len(tempFiles(out)))

			s, err := train.Open(out)
			switch {
			case err != nil && seen < 0:
				// Killed before the first checkpoint: a fresh start must
				// work in the same directory.
				r := runBin(t, nil, killArgs(t, out, killSteps)...)
				mustSucceed(t, r, "restart")
			case err != nil:
				t.Fatalf("after SIGKILL: %v (step %d had been written)", err, seen)
			default:
				if s.Fallback != nil {
					t.Fatalf("the newest checkpoint was damaged by SIGKILL: %v", s.Fallback)
				}
				if st := s.Checkpoint.Step; st < seen || st%3 != 0 && st != killSteps {
					t.Fatalf("after SIGKILL the newest checkpoint is step %d; step %d had been written", st, seen)
				}
				r := runBin(t, nil, "train", "--resume", "--out", out, "--quiet")
				mustSucceed(t, r, "resume")
			}
			if !bytes.Equal(readFile(t, filepath.Join(out, checkpoint.FileName)), want) {
				t.Fatal("the killed and resumed run differs from the uninterrupted one")
			}
			if tmp := tempFiles(out); len(tmp) > 0 {
				t.Fatalf("temporary files left after the resumed run: %v", tmp)
			}
		})
	}
}

var interruptedAt = regexp.MustCompile(`interrupted: checkpoint at step (\d+) written`)

// TestSignals stops training with SIGINT and SIGTERM once its first
// checkpoint exists: the process must write a checkpoint of the step it
// reached, exit 0, and resume to the uninterrupted run's exact result.
func TestSignals(t *testing.T) {
	want, _ := killBaseline(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "run")
			cmd := exec.Command(ddpmBin(t), killArgs(t, out, killSteps)...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			for newestStep(out) < 3 {
				select {
				case err := <-exited:
					t.Fatalf("the run ended before its first checkpoint: %v\n%s", err, stderr.String())
				case <-time.After(2 * time.Millisecond):
				}
			}
			cmd.Process.Signal(sig)
			if err := <-exited; err != nil {
				t.Fatalf("after %v: %v\n%s", sig, err, stderr.String())
			}
			m := interruptedAt.FindStringSubmatch(stderr.String())
			if m == nil {
				if newestStep(out) == killSteps {
					t.Skip("the run finished before the signal arrived")
				}
				t.Fatalf("no interruption message:\n%s", stderr.String())
			}
			step, _ := strconv.Atoi(m[1])
			if got := newestStep(out); got != step {
				t.Fatalf("message says step %d, checkpoint holds %d", step, got)
			}
			r := runBin(t, nil, "train", "--resume", "--out", out, "--quiet")
			mustSucceed(t, r, "resume")
			if !bytes.Equal(readFile(t, filepath.Join(out, checkpoint.FileName)), want) {
				t.Fatalf("the run stopped by %v at step %d and resumed differs from the uninterrupted one", sig, step)
			}
		})
	}
}

// TestDiskFull trains into a small tmpfs that holds two checkpoint
// generations but not a third file: the write fails with the kernel's
// ENOSPC, reported on one line, and both generations survive intact. It
// needs permission to mount (root); TestFileSizeLimit covers the same path
// everywhere with RLIMIT_FSIZE.
func TestDiskFull(t *testing.T) {
	want, _ := killBaseline(t)
	size := len(want)
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, fmt.Sprintf("size=%d", size*5/2)); err != nil {
		t.Skipf("cannot mount a tmpfs (%v)", err)
	}
	defer syscall.Unmount(mnt, 0)
	out := filepath.Join(mnt, "run")
	r := runBin(t, nil, killArgs(t, out, 12)...)
	checkCleanFailure(t, r, 1, "no space left on device")
	if !strings.Contains(r.stderr, "step 9:") {
		t.Fatalf("the failing write should be the third checkpoint (step 9):\n%s", r.stderr)
	}
	s, err := train.Open(out)
	if err != nil || s.Fallback != nil || s.Checkpoint.Step != 6 {
		t.Fatalf("after the failed write: %+v, %v; want the step-6 checkpoint intact", s, err)
	}
	if c, _, err := checkpoint.Load(filepath.Join(out, checkpoint.PrevFileName)); err != nil || c.Step != 3 {
		t.Fatalf("previous generation after the failed write: %v", err)
	}
	if tmp := tempFiles(out); len(tmp) > 0 {
		t.Fatalf("temporary files left on the full disk: %v", tmp)
	}
}

// TestFileSizeLimit makes every checkpoint write fail part-way (the
// kernel refuses to grow a file past RLIMIT_FSIZE, set by the shell's
// ulimit) while resuming a run: the error is one line, the checkpoint the
// run resumed from is untouched and no partial file is left.
func TestFileSizeLimit(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	want, _ := killBaseline(t)
	out := filepath.Join(t.TempDir(), "run")
	mustSucceed(t, runBin(t, nil, killArgs(t, out, 3)...), "first run")
	before := readFile(t, filepath.Join(out, checkpoint.FileName))
	// A quarter of a checkpoint in the 512-byte blocks of POSIX ulimit -f
	// (half if this sh counts 1024-byte blocks, as bash does outside
	// POSIX mode).
	blocks := len(want) / 4 / 512
	cmd := exec.Command("sh", "-c", fmt.Sprintf(`ulimit -f %d && exec "$0" "$@"`, blocks), ddpmBin(t),
		"train", "--resume", "--steps", "6", "--quiet", "--out", out)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	r := result{stderr: stderr.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	}
	checkCleanFailure(t, r, 1, "file too large")
	if !bytes.Equal(before, readFile(t, filepath.Join(out, checkpoint.FileName))) {
		t.Fatal("the checkpoint the run resumed from changed")
	}
	if tmp := tempFiles(out); len(tmp) > 0 {
		t.Fatalf("partial files left: %v", tmp)
	}
}
