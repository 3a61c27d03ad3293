package main

import (
	"bytes"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/train"
)

// dirHasCheckpoint reports whether a refused run left a checkpoint.
func dirHasCheckpoint(dir string) bool { return train.HasCheckpoint(dir) }

// TestTrainSettingFlags: the flags that define a run are the settings
// train.Prepare knows by name (a resume compares them, --init carries the
// process among them), so a new one cannot be forgotten there.
func TestTrainSettingFlags(t *testing.T) {
	fs := flag.NewFlagSet("settings", flag.ContinueOnError)
	o, dc, dropout := train.DefaultOptions(), diffusion.DefaultConfig(), -1.0
	settingFlags(fs, &o, &dc, &dropout)
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	want := train.Settings()
	sort.Strings(want)
	if fmt.Sprint(names) != fmt.Sprint(want) {
		t.Errorf("setting flags %v, train.Settings %v", names, want)
	}
}

// imageFolder writes one PNG per name into a new folder: w×h, RGB or grey,
// a different gradient in each.
func imageFolder(t *testing.T, specs map[string][3]int) string {
	t.Helper()
	dir := t.TempDir()
	k := 0
	for name, s := range specs {
		w, h, c := s[0], s[1], s[2]
		var img image.Image
		if c == 1 {
			g := image.NewGray(image.Rect(0, 0, w, h))
			for y := range h {
				for x := range w {
					g.SetGray(x, y, color.Gray{uint8(8*x + 4*y + 30*k)})
				}
			}
			img = g
		} else {
			rgb := image.NewRGBA(image.Rect(0, 0, w, h))
			for y := range h {
				for x := range w {
					rgb.SetRGBA(x, y, color.RGBA{uint8(8*x + 30*k), uint8(8 * y), uint8(60 * k), 255})
				}
			}
			img = rgb
		}
		var b bytes.Buffer
		if err := png.Encode(&b, img); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		k++
	}
	return dir
}

// TestTrainFolderRefusals: a folder, flags or batch that do not fit the
// config are refused before training, in one line that names the image
// (or what is wrong) and the flag that would fix it.
func TestTrainFolderRefusals(t *testing.T) {
	photos := imageFolder(t, map[string][3]int{"cat1.png": {64, 48, 3}, "cat3.png": {64, 48, 3}})
	mixed := imageFolder(t, map[string][3]int{"a.png": {32, 32, 3}, "b.png": {32, 32, 3}, "c.png": {40, 40, 3}})
	rgb32 := imageFolder(t, map[string][3]int{"a.png": {32, 32, 3}})
	grey32 := imageFolder(t, map[string][3]int{"a.png": {32, 32, 1}})
	out := filepath.Join(t.TempDir(), "run")
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"size and colour", []string{"--data", "folder:" + photos, "--config", "small"}, 1,
			fmt.Sprintf("ddpm train: folder:%s: cat1.png is 64×48 RGB; config small wants 32×32 grey — pass --resize to scale, --channels 1 to convert, or pick a config with --config", photos)},
		{"size only", []string{"--data", "folder:" + photos, "--config", "tiny32"}, 1,
			"cat1.png is 64×48 RGB; config tiny32 wants 32×32 RGB — pass --resize to scale, or pick a config with --config"},
		{"colour only", []string{"--data", "folder:" + rgb32, "--config", "tiny1"}, 1,
			"a.png is 32×32 RGB; config tiny1 wants 32×32 grey — pass --channels 1 to convert, or use --config cifar or emoji32 or rgb32 or tiny32"},
		{"grey into RGB", []string{"--data", "folder:" + grey32, "--config", "tiny32"}, 1,
			"a.png is 32×32 grey; config tiny32 wants 32×32 RGB — pass --channels 3 to convert, or use --config small or tiny1"},
		{"colour after resize", []string{"--data", "folder:" + photos, "--config", "tiny1", "--resize"}, 1,
			"cat1.png is 64×48 RGB; config tiny1 wants 32×32 grey — pass --channels 1 to convert, or pick a config with --config"},
		{"mixed sizes", []string{"--data", "folder:" + mixed, "--config", "tiny32"}, 1,
			"mixes image sizes (a.png is 32×32, c.png is 40×40); config tiny32 wants 32×32 RGB — pass --resize to scale them all"},
		{"channels not the config's", []string{"--data", "folder:" + photos, "--config", "small", "--channels", "3"}, 2,
			"--channels 3: config small takes grey images; pass --channels 1 or pick a config for RGB images"},
		{"channels 2", []string{"--data", "folder:" + photos, "--config", "small", "--channels", "2"}, 2,
			"channels must be 1 (grey) or 3 (RGB), got 2"},
		{"resize on mnist", []string{"--data", "mnist", "--config", "small", "--resize"}, 2,
			"--resize and --channels fit folder:DIR images to the config; mnist has a fixed geometry"},
		{"absurd batch", []string{"--data", "folder:" + rgb32, "--config", "tiny32", "--batch", "100000000"}, 2,
			"--batch 100000000 needs about "},
		{"log-every 0", []string{"--data", "folder:" + rgb32, "--config", "tiny32", "--log-every", "0"}, 2,
			"--log-every must be ≥ 1"},
		{"preview-every -2", []string{"--data", "folder:" + rgb32, "--config", "tiny32", "--preview-every", "-2"}, 2,
			"want a number of steps ≥ 0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runBin(t, nil, append(append([]string{"train"}, tc.args...), "--steps", "1", "--quiet", "--out", out)...)
			checkCleanFailure(t, r, tc.code, tc.want)
			if n := strings.Count(strings.TrimSpace(r.stderr), "\n"); n != 0 {
				t.Errorf("%d lines on stderr, want one:\n%s", n+1, r.stderr)
			}
		})
	}
	if dirHasCheckpoint(out) {
		t.Error("a refused run wrote a checkpoint")
	}
}

// TestTrainFolderResize trains tiny1 (32×32 grey) on 64×48 RGB pictures
// with --resize --channels 1, then resumes it: the run directory holds a
// loss log with a line per --log-every steps and no step twice, even when
// the first run logged past its last checkpoint, and a preview grid.
func TestTrainFolderResize(t *testing.T) {
	dir := imageFolder(t, map[string][3]int{"a.png": {64, 48, 3}, "b.png": {64, 48, 3}, "c.png": {48, 64, 3}})
	out := filepath.Join(t.TempDir(), "run")
	args := []string{"train", "--data", "folder:" + dir, "--config", "tiny1", "--resize", "--channels", "1",
		"--batch", "2", "--ckpt-every", "2", "--log-every", "2", "--out", out}
	r := runBin(t, nil, append(args, "--steps", "4")...)
	mustSucceed(t, r, "train with --resize --channels 1")
	if !strings.Contains(r.stderr, "on folder (3 images), resized to 32×32, converted to grey") {
		t.Errorf("the banner does not say how the images were fitted:\n%s", r.stderr)
	}
	// stderr is a pipe here: plain lines, no carriage-return frames.
	if strings.Contains(r.stderr, "\r") || !strings.Contains(r.stderr, "step 4/4 (100%)") {
		t.Errorf("progress on a pipe:\n%q", r.stderr)
	}
	if w, h := pngSize(t, filepath.Join(out, train.PreviewName)); w < 4*32 || h < 4*32 || w > 4*32+10 {
		t.Errorf("preview is %d×%d, want a 4×4 grid of 32×32", w, h)
	}
	steps := func() []int {
		rs, err := train.ReadLossLog(out)
		if err != nil {
			t.Fatal(err)
		}
		var s []int
		for _, r := range rs {
			if !(r.Loss > 0 && r.LR > 0 && r.GradNorm > 0 && r.ImgPerSec > 0 && r.Elapsed > 0) {
				t.Errorf("incomplete line %+v", r)
			}
			s = append(s, r.Step)
		}
		return s
	}
	if got := fmt.Sprint(steps()); got != "[2 4]" {
		t.Fatalf("loss log steps %s, want [2 4]", got)
	}
	// A run that logged past its checkpoint (killed between the two).
	f, err := os.OpenFile(filepath.Join(out, train.LossLogName), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, `{"step":6,"loss":1,"lr":1,"grad_norm":1,"img_per_s":1,"elapsed_s":99}`)
	f.Close()
	mustSucceed(t, runBin(t, nil, "train", "--resume", "--steps", "6", "--quiet", "--out", out), "resume")
	if got := fmt.Sprint(steps()); got != "[2 4 6]" {
		t.Fatalf("loss log steps after the resume %s, want [2 4 6]", got)
	}
	rs, _ := train.ReadLossLog(out)
	if rs[2].Elapsed >= 99 {
		t.Errorf("the stale line survived the resume: %+v", rs[2])
	}
	// Repeating the command line with --resume is fine; changing how the
	// images are fitted is not.
	mustSucceed(t, runBin(t, nil, append(args, "--steps", "6", "--quiet", "--resume")...), "resume with the same flags")
	r = runBin(t, nil, "train", "--resume", "--channels", "3", "--steps", "8", "--quiet", "--out", out)
	checkCleanFailure(t, r, 2, "--channels 3 differs from the run's 1")
}

// TestTrainInitCarriesProcess: --init brings its model's diffusion process
// (here a cosine schedule over T = 50), its network when --config is not
// given and its training data when --data is not; a flag given explicitly
// wins; another --config is refused naming the one to use.
func TestTrainInitCarriesProcess(t *testing.T) {
	dir := imageFolder(t, map[string][3]int{"a.png": {32, 32, 1}, "b.png": {32, 32, 1}})
	tmp := t.TempDir()
	base := filepath.Join(tmp, "base")
	mustSucceed(t, runBin(t, nil, "train", "--data", "folder:"+dir, "--config", "tiny1", "--schedule", "cosine", "--T", "50",
		"--var", "fixedsmall", "--steps", "2", "--batch", "2", "--preview-every", "0", "--quiet", "--out", base), "base run")
	if _, err := os.Stat(filepath.Join(base, train.PreviewName)); err == nil {
		t.Error("--preview-every 0 wrote a preview")
	}
	load := func(run string) *checkpoint.Checkpoint {
		t.Helper()
		c, _, err := checkpoint.Load(checkpoint.Path(run))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	cases := []struct {
		name     string
		args     []string
		schedule diffusion.BetaSchedule
		T        int
	}{
		{"alone", nil, diffusion.CosineBeta, 50},
		{"same config", []string{"--config", "tiny1"}, diffusion.CosineBeta, 50},
		{"schedule given", []string{"--schedule", "linear"}, diffusion.LinearBeta, 50},
		{"T given", []string{"--T", "80"}, diffusion.CosineBeta, 80},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			run := filepath.Join(tmp, strings.ReplaceAll(tc.name, " ", "-"))
			r := runBin(t, nil, append([]string{"train", "--init", base, "--steps", "1", "--batch", "2", "--quiet", "--out", run}, tc.args...)...)
			mustSucceed(t, r, "init run")
			c := load(run)
			if c.Diffusion.Schedule != tc.schedule || c.Diffusion.T != tc.T || c.Diffusion.Var != diffusion.FixedSmall {
				t.Errorf("process %+v, want the %v schedule over T = %d with the init model's fixedsmall", c.Diffusion, tc.schedule, tc.T)
			}
			if c.UNet.Res != 32 || c.UNet.InCh != 1 || c.UNet.Ch != 8 {
				t.Errorf("network %+v, want tiny1's", c.UNet)
			}
			if !strings.Contains(r.stderr, "training config tiny1") || !strings.Contains(r.stderr, "on folder (2 images)") {
				t.Errorf("banner:\n%s", r.stderr)
			}
		})
	}
	r := runBin(t, nil, "train", "--init", base, "--config", "small", "--steps", "1", "--quiet", "--out", filepath.Join(tmp, "other"))
	checkCleanFailure(t, r, 2, "is a tiny1 network (32×32 grey, ch 8 × [1 2]")
	checkCleanFailure(t, r, 2, "pass --config tiny1, or leave --config out")
	r = runBin(t, nil, "train", "--init", base, "--var", "learned", "--steps", "1", "--quiet", "--out", filepath.Join(tmp, "learned"))
	checkCleanFailure(t, r, 2, "outputs 1 channel (trained with --var fixedsmall); --var learned needs 2")
}
