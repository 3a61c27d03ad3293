package train

import (
	"context"
	"errors"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ddpm-go/ddpm/model/unet"
)

// TestLossLog: a line every `every` steps with the mean loss and gradient
// norm of its steps; a partial window is flushed at the end; reopening at
// an earlier step (a resume from a checkpoint behind the log) drops the
// later lines and a damaged last line, and the elapsed time carries on.
func TestLossLog(t *testing.T) {
	dir := t.TempDir()
	clock := time.Unix(1000, 0)
	now := func() time.Time { clock = clock.Add(time.Second); return clock }
	open := func(step int) *LossLog {
		t.Helper()
		l, err := OpenLossLog(dir, step, 3, 4)
		if err != nil {
			t.Fatal(err)
		}
		l.now = now
		l.start, l.last = now(), clock
		return l
	}
	l := open(0)
	for s := 1; s <= 7; s++ {
		if s == 5 {
			l.Skip(s)
			continue
		}
		if err := l.Step(s, float64(s), 10*float64(s), 1e-4); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	rs, err := ReadLossLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []LossRecord{
		{Step: 3, Loss: 2, LR: 1e-4, GradNorm: 20, ImgPerSec: 12, Elapsed: 1},
		{Step: 6, Loss: 5, LR: 1e-4, GradNorm: 50, ImgPerSec: 12, Elapsed: 2, Skipped: 1},
		{Step: 7, Loss: 7, LR: 1e-4, GradNorm: 70, ImgPerSec: 4, Elapsed: 3},
	}
	if len(rs) != len(want) {
		t.Fatalf("%d lines, want %d: %+v", len(rs), len(want), rs)
	}
	for i := range want {
		if rs[i] != want[i] {
			t.Errorf("line %d = %+v, want %+v", i+1, rs[i], want[i])
		}
	}

	// A resume at step 3: lines 2 and 3 go, and a torn line too.
	f, err := os.OpenFile(filepath.Join(dir, LossLogName), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"step":8,"lo`)
	f.Close()
	l = open(3)
	if l.base != 1 {
		t.Errorf("elapsed carried over = %v, want 1 (the kept line's)", l.base)
	}
	for s := 4; s <= 6; s++ {
		l.Step(s, 1, 1, 1e-4)
	}
	l.Close()
	rs, err = ReadLossLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].Step != 3 || rs[1].Step != 6 || rs[1].Loss != 1 || rs[1].Elapsed <= rs[0].Elapsed {
		t.Errorf("after the resume: %+v, want steps 3 and 6, the second from the resumed run", rs)
	}

	// A new run in the same directory starts an empty log.
	open(0).Close()
	if rs, _ := ReadLossLog(dir); len(rs) != 0 {
		t.Errorf("a new run kept %d old lines", len(rs))
	}
	if _, err := OpenLossLog(dir, 0, 0, 1); err == nil {
		t.Error("interval 0 accepted")
	}
}

// TestPreview: the grid is a 4×4 PNG of the model's images, and taking
// previews changes nothing in the run (the checkpoint is byte-identical to
// a run without them).
func TestPreview(t *testing.T) {
	plain, withPreview := t.TempDir(), t.TempDir()
	a := newTrainer(t, testOptions(4))
	if err := a.Run(context.Background(), plain, nil); err != nil {
		t.Fatal(err)
	}
	b := newTrainer(t, testOptions(4))
	path := filepath.Join(withPreview, PreviewName)
	var perr error
	if err := b.Run(context.Background(), withPreview, func(step int, _, _ float64) {
		if perr == nil {
			perr = b.Preview(context.Background(), path)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if perr != nil {
		t.Fatal(perr)
	}
	if string(readCkpt(t, plain)) != string(readCkpt(t, withPreview)) {
		t.Fatal("previews changed the run")
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	// tiny is 16×16; the grid has a pixel or two of spacing at most.
	if w := img.Bounds().Dx(); w < 4*16 || w > 4*16+10 {
		t.Errorf("preview is %d pixels wide, want about 4×16", w)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Preview(ctx, path); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled preview: %v", err)
	}
}

// TestCheckMemory: a batch whose step cannot fit is refused in one line
// naming what it needs, what the machine has and a batch that fits.
func TestCheckMemory(t *testing.T) {
	small, _ := unet.ConfigByName("small")
	defer func(f func() (float64, bool)) { available = f }(available)
	cases := []struct {
		name  string
		avail float64
		known bool
		batch int
		want  []string // substrings; none: accepted
	}{
		{"fits", 21e9, true, 64, nil},
		{"unknown memory", 0, false, 100000000, nil},
		{"absurd batch", 21e9, true, 100000000, []string{"--batch 100000000 needs about ", " TB for a training step; this machine has 21 GB available — try --batch 128"}},
		{"a bit too much", 2e9, true, 512, []string{"--batch 512 needs about", "this machine has 2.0 GB available — try --batch 128"}},
		{"nothing fits", 50e6, true, 4, []string{"even --batch 1 needs about", "pick a smaller --config"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			available = func() (float64, bool) { return tc.avail, tc.known }
			err := CheckMemory(small, tc.batch)
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var me *MemoryError
			if !errors.As(err, &me) {
				t.Fatalf("err = %v, want a *MemoryError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %q, want %q in it", err, w)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("err spans lines: %q", err)
			}
			if me.Suggest > 0 && StepMemory(small, me.Suggest) > 0.75*tc.avail {
				t.Errorf("suggested batch %d needs %g of %g", me.Suggest, StepMemory(small, me.Suggest), tc.avail)
			}
		})
	}
}

// TestStepMemoryMeasured holds the estimate to the heap a real run of
// tiny holds after a training step and a preview: within 20 % in total at
// batch 128, and per image (the growth from batch 64 to 128). Small
// batches are not compared: the layers' per-worker scratch grows with the
// batch until the engine's caps (768 KiB of Winograd tiles a layer), which
// the estimate counts at once.
func TestStepMemoryMeasured(t *testing.T) {
	heap := func() float64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return float64(ms.HeapAlloc)
	}
	measure := func(batch int) float64 {
		opt := testOptions(1)
		opt.Batch = batch
		h0 := heap()
		tr := newTrainer(t, opt)
		if _, _, err := tr.TrainStep(); err != nil {
			t.Fatal(err)
		}
		if err := tr.Preview(context.Background(), filepath.Join(t.TempDir(), PreviewName)); err != nil {
			t.Fatal(err)
		}
		used := heap() - h0
		runtime.KeepAlive(tr)
		return used
	}
	ucfg, _ := unet.ConfigByName("tiny")
	ucfg.Dropout = 0.1
	m64, m128 := measure(64), measure(128)
	e64, e128 := StepMemory(ucfg, 64), StepMemory(ucfg, 128)
	t.Logf("batch 128: estimate %.1f MB, measured %.1f MB; per image %.2f MB, %.2f MB", e128/1e6, m128/1e6, (e128-e64)/64e6, (m128-m64)/64e6)
	if r := e128 / m128; r < 0.8 || r > 1.2 {
		t.Errorf("batch 128: estimate %.1f MB, measured %.1f MB (ratio %.2f)", e128/1e6, m128/1e6, r)
	}
	if r := (e128 - e64) / (m128 - m64); r < 0.8 || r > 1.2 || math.IsNaN(r) {
		t.Errorf("per image: estimate %.2f MB, measured %.2f MB (ratio %.2f)", (e128-e64)/64e6, (m128-m64)/64e6, r)
	}
}
