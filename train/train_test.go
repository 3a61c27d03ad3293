package train

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/model/unet"
)

// synthetic is a small in-memory data set for the tiny config (3×16×16).
func synthetic() *data.Dataset {
	const n, c, s = 16, 3, 16
	rng := rand.New(rand.NewPCG(1, 2))
	pix := make([]uint8, n*c*s*s)
	for i := range pix {
		pix[i] = uint8(rng.IntN(256))
	}
	return &data.Dataset{Name: "synthetic", N: n, C: c, H: s, W: s, Pixels: pix}
}

// testOptions are a run of a few steps that exercises every random draw:
// batches, timesteps, noise, flips and dropout.
func testOptions(steps int) Options {
	return Options{Data: "synthetic", Config: "tiny", Steps: steps, Batch: 2, LR: 1e-3, Warmup: 2,
		GradClip: 1, EMADecay: 0.9, Flip: true, Seed: 7, CkptEvery: 2}
}

func newTrainer(t *testing.T, opt Options) *Trainer {
	t.Helper()
	ucfg, err := unet.ConfigByName("tiny")
	if err != nil {
		t.Fatal(err)
	}
	ucfg.Dropout = 0.1
	tr, err := New(opt, ucfg, diffusion.DefaultConfig(), synthetic())
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func readCkpt(t *testing.T, dir string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, checkpoint.FileName))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func resumeRun(t *testing.T, dir string, steps int) *Trainer {
	t.Helper()
	tr, err := Resume(dir, synthetic(), steps)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Run(context.Background(), dir, nil); err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestExactResume checks that stopping and resuming changes nothing: the
// final checkpoint file (weights, EMA, Adam moments, step, random state)
// is byte-identical to that of a run that never stopped, whether the stop
// came at a checkpoint step, between checkpoints (an interrupt) or from a
// run that ended and was extended with more steps.
func TestExactResume(t *testing.T) {
	const steps = 6
	ref := t.TempDir()
	if err := newTrainer(t, testOptions(steps)).Run(context.Background(), ref, nil); err != nil {
		t.Fatal(err)
	}
	want := readCkpt(t, ref)

	t.Run("extend", func(t *testing.T) {
		dir := t.TempDir()
		if err := newTrainer(t, testOptions(steps/2)).Run(context.Background(), dir, nil); err != nil {
			t.Fatal(err)
		}
		resumeRun(t, dir, steps)
		if !bytes.Equal(readCkpt(t, dir), want) {
			t.Fatal("a run extended from step 3 to 6 differs from a 6-step run")
		}
	})
	t.Run("interrupt", func(t *testing.T) {
		dir := t.TempDir()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		tr := newTrainer(t, testOptions(steps))
		err := tr.Run(ctx, dir, func(step int, _, _ float64) {
			if step == 3 { // between the checkpoints at 2 and 4
				cancel()
			}
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run after cancel returned %v", err)
		}
		s, err := Open(dir)
		if err != nil || s.Checkpoint.Step != 3 {
			t.Fatalf("interrupted run saved %v, %v; want step 3", s, err)
		}
		resumeRun(t, dir, 0)
		if !bytes.Equal(readCkpt(t, dir), want) {
			t.Fatal("a run interrupted at step 3 and resumed differs from an uninterrupted one")
		}
	})
}

// TestGenerations checks that the run directory keeps the newest
// checkpoint and the one before it.
func TestGenerations(t *testing.T) {
	dir := t.TempDir()
	if err := newTrainer(t, testOptions(6)).Run(context.Background(), dir, nil); err != nil {
		t.Fatal(err)
	}
	for name, step := range map[string]int{checkpoint.FileName: 6, checkpoint.PrevFileName: 4} {
		c, _, err := checkpoint.Load(filepath.Join(dir, name))
		if err != nil || c.Step != step {
			t.Errorf("%s: step %v, %v; want %d", name, c, err, step)
		}
	}
	// Resuming a finished run without new steps must not rewrite it, which
	// would replace the previous generation with a copy of the newest.
	resumeRun(t, dir, 0)
	if c, _, err := checkpoint.Load(filepath.Join(dir, checkpoint.PrevFileName)); err != nil || c.Step != 4 {
		t.Fatalf("previous generation after a no-op resume: %v, %v", c, err)
	}
}

func flipByte(t *testing.T, path string, off int64) { flipBits(t, path, off, 0x10) }

func flipBits(t *testing.T, path string, off int64, mask byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= mask
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestResumeFallback damages the newest checkpoint in several ways and
// checks that resuming falls back to the previous one, says why, finishes
// with the same result as an undamaged run, and keeps the damaged file
// aside instead of rotating it over the good previous generation.
func TestResumeFallback(t *testing.T) {
	ref := t.TempDir()
	if err := newTrainer(t, testOptions(6)).Run(context.Background(), ref, nil); err != nil {
		t.Fatal(err)
	}
	want := readCkpt(t, ref)
	cases := []struct {
		name   string
		damage func(t *testing.T, path string)
		reason string
	}{
		{"bit flip in a weight", func(t *testing.T, p string) { flipByte(t, p, int64(len(want)-100)) }, "checksum mismatch"},
		{"bit flip in the header", func(t *testing.T, p string) {
			// The options are a JSON string inside the JSON header.
			i := bytes.Index(want, []byte(`lr\":0.001`))
			if i < 0 {
				t.Fatal("learning rate not found in the header")
			}
			// 0.001 → 0.009: still valid JSON, so only the checksum,
			// which covers the metadata, can tell.
			flipBits(t, p, int64(i+len(`lr\":0.00`)), 0x08)
		}, "checksum mismatch"},
		{"truncated", func(t *testing.T, p string) { os.Truncate(p, int64(len(want)/2)) }, "truncated"},
		{"missing", func(t *testing.T, p string) { os.Remove(p) }, "no such file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := newTrainer(t, testOptions(5)).Run(context.Background(), dir, nil); err != nil {
				t.Fatal(err)
			}
			// Newest: step 5; previous: step 4.
			cur := filepath.Join(dir, checkpoint.FileName)
			tc.damage(t, cur)
			s, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			if s.Fallback == nil || !strings.Contains(s.Fallback.Error(), tc.reason) {
				t.Fatalf("Fallback = %v, want a reason mentioning %q", s.Fallback, tc.reason)
			}
			if s.Path != checkpoint.PrevPath(cur) || s.Checkpoint.Step != 4 {
				t.Fatalf("resumed from %s step %d, want the previous generation at step 4", s.Path, s.Checkpoint.Step)
			}
			tr, err := s.Resume(synthetic(), 6)
			if err != nil {
				t.Fatal(err)
			}
			if err := tr.Run(context.Background(), dir, nil); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(readCkpt(t, dir), want) {
				t.Fatal("the run resumed from the previous generation differs from an undamaged run")
			}
			if c, _, err := checkpoint.Load(checkpoint.PrevPath(cur)); err != nil || c.Step != 4 {
				t.Fatalf("previous generation after the fallback run: %v, %v; want the good step-4 file", c, err)
			}
			if _, err := os.Stat(cur + CorruptSuffix); err != nil && tc.name != "missing" {
				t.Fatalf("damaged checkpoint not kept aside: %v", err)
			}
		})
	}

	t.Run("both damaged", func(t *testing.T) {
		dir := t.TempDir()
		if err := newTrainer(t, testOptions(4)).Run(context.Background(), dir, nil); err != nil {
			t.Fatal(err)
		}
		cur := filepath.Join(dir, checkpoint.FileName)
		flipByte(t, cur, int64(len(want)-100))
		os.Truncate(checkpoint.PrevPath(cur), 1000)
		_, err := Open(dir)
		if err == nil || !strings.Contains(err.Error(), "newest:") || !strings.Contains(err.Error(), "previous:") {
			t.Fatalf("Open = %v, want an error describing both files", err)
		}
	})
	t.Run("empty directory", func(t *testing.T) {
		_, err := Open(t.TempDir())
		if err == nil || !strings.Contains(err.Error(), "holds no checkpoint") {
			t.Fatalf("Open = %v", err)
		}
	})
}

// TestNonFinite injects NaN and Inf into the loss and the gradient and
// checks the policy: stop with the step named and the last checkpoint
// untouched, or with SkipNaN skip the step, and never let a non-finite
// value reach the weights, the EMA or a checkpoint.
func TestNonFinite(t *testing.T) {
	nanLoss := func(at int) func(int, *float64, []float32) {
		return func(step int, loss *float64, _ []float32) {
			if loss != nil && step == at {
				*loss = math.NaN()
			}
		}
	}
	infGrad := func(at int) func(int, *float64, []float32) {
		return func(step int, _ *float64, g []float32) {
			if g != nil && step == at {
				g[len(g)/2] = float32(math.Inf(1))
			}
		}
	}
	nanFrom := func(at int) func(int, *float64, []float32) {
		return func(step int, loss *float64, _ []float32) {
			if loss != nil && step >= at {
				*loss = math.NaN()
			}
		}
	}
	cases := []struct {
		name    string
		hook    func(int, *float64, []float32)
		skip    bool
		wantErr string // "" for success
		saved   int    // step of the newest checkpoint afterwards
		skipped int
	}{
		{"NaN loss stops", nanLoss(3), false, "step 3: loss or gradient is not finite", 2, 0},
		{"Inf gradient stops", infGrad(5), false, "step 5: loss or gradient is not finite", 4, 0},
		{"NaN loss skipped", nanLoss(3), true, "", 8, 1},
		{"Inf gradient skipped", infGrad(5), true, "", 8, 1},
		{"persistent NaN stops despite skipping", nanFrom(3), true, "20 steps in a row", 2, MaxConsecutiveSkips - 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			opt := testOptions(8)
			opt.SkipNaN = tc.skip
			if tc.name == "persistent NaN stops despite skipping" {
				opt.Steps = 40
			}
			tr := newTrainer(t, opt)
			var reported []int
			tr.OnSkip = func(step int, loss, gn float64) { reported = append(reported, step) }
			faultHook = tc.hook
			err := tr.Run(context.Background(), dir, nil)
			faultHook = nil
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Run = %v, want %q", err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "the last good checkpoint (step") {
				t.Errorf("error %q does not say which checkpoint is kept", err)
			}
			if tr.Skipped != tc.skipped || len(reported) != tc.skipped {
				t.Errorf("skipped %d (reported %v), want %d", tr.Skipped, reported, tc.skipped)
			}
			c, _, lerr := checkpoint.Load(filepath.Join(dir, checkpoint.FileName))
			if lerr != nil || c.Step != tc.saved {
				t.Fatalf("checkpoint after the run: %v, %v; want step %d", c, lerr, tc.saved)
			}
			for name, w := range map[string][]float32{"weights": tr.Model.Weights(), "EMA": tr.EMA.W, "Adam m": tr.Adam.M, "Adam v": tr.Adam.V} {
				if !finite(w) {
					t.Errorf("%s hold non-finite values", name)
				}
			}
			if err != nil {
				// Nothing ran after the last checkpoint but failing steps,
				// so the state in memory is exactly the saved one.
				if !equalBits(tr.EMA.W, c.EMA) || !equalBits(tr.Model.Weights(), c.Model) {
					t.Error("a failing step changed the weights or the EMA")
				}
			}
		})
	}
}

// TestDiverged uses a learning rate that overflows float32 in the first
// update, as a real run would: the weights become Inf, which no skip can
// undo, so the run stops before the EMA or a checkpoint sees them.
func TestDiverged(t *testing.T) {
	for _, skip := range []bool{false, true} {
		dir := t.TempDir()
		opt := testOptions(4)
		opt.LR, opt.Warmup, opt.SkipNaN = 1e39, 0, skip
		tr := newTrainer(t, opt)
		ema := append([]float32(nil), tr.EMA.W...)
		err := tr.Run(context.Background(), dir, nil)
		if !errors.Is(err, ErrDiverged) || !strings.Contains(err.Error(), "step 1:") || !strings.Contains(err.Error(), "no checkpoint was written") {
			t.Fatalf("skip=%v: Run = %v, want ErrDiverged at step 1", skip, err)
		}
		if !equalBits(ema, tr.EMA.W) {
			t.Fatalf("skip=%v: the EMA changed", skip)
		}
		if err := tr.Save(dir); !errors.Is(err, ErrDiverged) {
			t.Fatalf("skip=%v: Save of non-finite weights = %v", skip, err)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Fatalf("skip=%v: files written: %v", skip, ents)
		}
	}
}

// TestStaleTemps checks that a run removes the temporary file a killed
// writer left behind.
func TestStaleTemps(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "."+checkpoint.FileName+".tmp-123")
	if err := os.WriteFile(stale, []byte("half a checkpoint"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := newTrainer(t, testOptions(1)).Run(context.Background(), dir, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale temporary file still there: %v", err)
	}
}

func TestValidate(t *testing.T) {
	for name, mod := range map[string]func(*Options){
		"steps":  func(o *Options) { o.Steps = -1 },
		"batch":  func(o *Options) { o.Batch = 0 },
		"lr":     func(o *Options) { o.LR = math.Inf(1) },
		"lrNaN":  func(o *Options) { o.LR = math.NaN() },
		"warmup": func(o *Options) { o.Warmup = -1 },
		"decay":  func(o *Options) { o.Decay = "step" },
		"clip":   func(o *Options) { o.GradClip = math.NaN() },
		"ema":    func(o *Options) { o.EMADecay = 1 },
		"ckpt":   func(o *Options) { o.CkptEvery = -5 },
	} {
		o := testOptions(1)
		mod(&o)
		if err := o.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, o)
		}
	}
	if err := testOptions(1).Validate(); err != nil {
		t.Fatal(err)
	}
}

func equalBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func TestLockDir(t *testing.T) {
	dir := t.TempDir()
	release, err := LockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LockDir(dir); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second lock of a locked run directory: err = %v, want an in-use error", err)
	}
	release()
	again, err := LockDir(dir)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	again()
}
