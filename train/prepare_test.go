package train

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/internal/text"
	"github.com/ddpm-go/ddpm/model/unet"
)

// greyFolder writes n w×h grey PNGs into a new folder, a gradient each.
func greyFolder(t *testing.T, n, w, h int) string {
	t.Helper()
	dir := t.TempDir()
	for k := range n {
		g := image.NewGray(image.Rect(0, 0, w, h))
		for y := range h {
			for x := range w {
				g.SetGray(x, y, color.Gray{uint8(8*x + 4*y + 30*k)})
			}
		}
		var b bytes.Buffer
		if err := png.Encode(&b, g); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%d.png", k)), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// tinySetup is a new two-step run of tiny1 (32×32 grey) on folder.
func tinySetup(dir, folder string) Setup {
	o := DefaultOptions()
	o.Data, o.Config, o.Steps, o.Batch, o.CkptEvery, o.LR = "folder:"+folder, "tiny1", 2, 2, 0, 1e-3
	return Setup{Dir: dir, Options: o, Diffusion: diffusion.DefaultConfig(), Given: Given{}}
}

// prepare is Prepare for a run that must be set up; the session is closed
// with the test.
func prepare(t *testing.T, s Setup) *Session {
	t.Helper()
	sess, err := Prepare(s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	return sess
}

// refused checks that Prepare refuses s with an ErrInvalidOption (or,
// when !usage, another error) whose message contains want.
func refused(t *testing.T, s Setup, usage bool, want string) {
	t.Helper()
	sess, err := Prepare(s)
	if err == nil {
		sess.Close()
		t.Fatalf("Prepare accepted a run it should refuse with %q", want)
	}
	if errors.Is(err, ErrInvalidOption) != usage || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q (invalid option: %v); want %q (invalid option: %v)", err, errors.Is(err, ErrInvalidOption), want, usage)
	}
}

// TestPrepareRun: a new run is prepared, trained and summed up; it is not
// started again over its checkpoint; a resume refuses changed settings,
// takes more steps, and says where it continues.
func TestPrepareRun(t *testing.T) {
	folder := greyFolder(t, 3, 32, 32)
	dir := filepath.Join(t.TempDir(), "run")
	s := prepare(t, tinySetup(dir, folder))
	want := "config tiny1 (" + text.Count(44969) + " parameters) on folder (3 images), batch 2, eps/fixedlarge/simple, T=1000, linear schedule"
	if got := s.Describe(); got != want {
		t.Errorf("Describe() = %q, want %q", got, want)
	}
	steps := 0
	if err := s.Train(context.Background(), func(int, float64, float64) { steps++ }); err != nil {
		t.Fatal(err)
	}
	sum := s.Finish(context.Background())
	if steps != 2 || sum.Steps != 2 || sum.Warning != nil || sum.Checkpoint != checkpoint.Path(dir) || sum.Preview != filepath.Join(dir, PreviewName) {
		t.Errorf("progress saw %d steps; summary %+v", steps, sum)
	}
	if rs, err := ReadLossLog(dir); err != nil || len(rs) != 1 || rs[0].Step != 2 {
		t.Errorf("loss log %+v, %v: want the line flushed at the end, step 2", rs, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !HasCheckpoint(dir) {
		t.Fatal("no checkpoint")
	}
	refused(t, tinySetup(dir, folder), false, "already holds a checkpoint: pass --resume")

	resume := tinySetup(dir, folder)
	resume.Resume = true
	resume.Options.LR = 0.5
	resume.Given = Given{"lr": true, "out": true}
	refused(t, resume, true, "--lr 0.5 differs from the run's 0.001: a resumed run keeps its settings")
	resume.Given = Given{"steps": true}
	resume.Options.Steps = 1
	refused(t, resume, true, "--steps 1 is below the run's step 2")

	var lines []string
	resume.Given = Given{"steps": true, "lr": false, "dropout": true, "data": true, "config": true}
	resume.Options.Steps = 3
	resume.Log = func(line string) { lines = append(lines, line) }
	s = prepare(t, resume)
	if fmt.Sprint(lines) != fmt.Sprintf("[resuming %s at step 2 of 3]", dir) || s.Opt.LR != 1e-3 {
		t.Errorf("log %q, lr %g", lines, s.Opt.LR)
	}
	if err := s.Train(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if sum := s.Finish(context.Background()); sum.Steps != 1 {
		t.Errorf("resumed summary %+v, want 1 step", sum)
	}
}

// TestPrepareInit: a run from an init model carries its process, network
// and training data unless given; a network or variance it cannot take is
// refused naming what would fit.
func TestPrepareInit(t *testing.T) {
	folder := greyFolder(t, 2, 32, 32)
	cfg, _ := unet.ConfigByName("tiny1")
	net, err := unet.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	net.Init(rand.New(rand.NewPCG(1, 2)))
	process := diffusion.DefaultConfig()
	process.Schedule, process.T, process.Var = diffusion.CosineBeta, 50, diffusion.FixedSmall
	rec, _ := json.Marshal(Options{Data: "folder:" + folder, Config: "tiny1"})
	init := &Init{Net: net, Process: process, Metadata: map[string]string{"train": string(rec)}}
	setup := func(given Given) Setup {
		s := tinySetup(filepath.Join(t.TempDir(), "run"), "")
		s.Options.Data, s.Options.Config, s.Options.Init = "mnist", "small", "base"
		s.Given = given
		s.LoadInit = func(name string) (*Init, error) {
			if name != "base" {
				t.Errorf("LoadInit(%q)", name)
			}
			return init, nil
		}
		return s
	}
	s := prepare(t, setup(Given{}))
	if s.DCfg.Schedule != diffusion.CosineBeta || s.DCfg.T != 50 || s.DCfg.Var != diffusion.FixedSmall ||
		s.Opt.Config != "tiny1" || s.Opt.Data != "folder:"+folder || s.UCfg.Ch != 8 {
		t.Errorf("run %+v %+v, want the init model's process, network and data", s.DCfg, s.Opt)
	}
	if !equalBits(s.EMA.W, net.Weights()) {
		t.Error("the run does not start from the init model's weights")
	}
	given := setup(Given{"T": true})
	given.Diffusion.T = 80
	if s := prepare(t, given); s.DCfg.T != 80 || s.DCfg.Schedule != diffusion.CosineBeta {
		t.Errorf("--T 80: process %+v", s.DCfg)
	}
	refused(t, setup(Given{"config": true}), true, "--init base is a tiny1 network (32×32 grey, ch 8 × [1 2]")
	learned := setup(Given{"var": true})
	learned.Diffusion.Var = diffusion.Learned
	refused(t, learned, true, "--init base outputs 1 channel (trained with --var fixedsmall); --var learned needs 2")
	noLoader := setup(Given{})
	noLoader.LoadInit = nil
	refused(t, noLoader, true, "no Setup.LoadInit")
}

// TestPrepareRefusals: options and data that cannot make a run are
// refused before anything is written, as invalid options where the user
// has a setting to change.
func TestPrepareRefusals(t *testing.T) {
	folder := greyFolder(t, 2, 40, 40)
	dir := filepath.Join(t.TempDir(), "run")
	bad := func(edit func(*Setup)) Setup {
		s := tinySetup(dir, folder)
		edit(&s)
		return s
	}
	refused(t, bad(func(s *Setup) { s.Options.Batch = 0 }), true, "batch must be positive, got 0")
	refused(t, bad(func(s *Setup) { d := 1.0; s.Dropout = &d }), true, "--dropout must be in [0, 1), got 1")
	refused(t, bad(func(s *Setup) { s.Diffusion.T = checkpoint.MaxT + 1 }), true, "is more than the supported")
	refused(t, bad(func(s *Setup) { s.Diffusion.Var = diffusion.Fitted }), true, "is measured on a trained network")
	refused(t, bad(func(s *Setup) { s.Options.Config = "nope" }), true, "nope")
	refused(t, bad(func(s *Setup) { s.Options.Data, s.Options.Resize = "mnist", true }), true, "mnist has a fixed geometry")
	refused(t, bad(func(s *Setup) {}), false, "0.png is 40×40 grey; config tiny1 wants 32×32 grey — pass --resize to scale")
	refused(t, bad(func(s *Setup) { s.Resume = true }), false, "no run to resume")
	if _, err := os.Stat(dir); err == nil {
		t.Error("a refused run made its directory")
	}
}

// TestSettingText: settings read as their flags print them, so a refused
// resume shows both values as the command line would.
func TestSettingText(t *testing.T) {
	o, dc := DefaultOptions(), diffusion.DefaultConfig()
	o.LR, o.Seed, dc.Schedule = 2e-4, 7, diffusion.CosineBeta
	dropout := float64(float32(0.1))
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	fs.Float64("lr", o.LR, "")
	fs.Uint64("seed", o.Seed, "")
	fs.Float64("dropout", dropout, "")
	fs.Bool("flip", o.Flip, "")
	fs.Int("T", dc.T, "")
	for _, name := range []string{"lr", "seed", "dropout", "flip", "T"} {
		if got, ok := setting(name, o, dc, dropout); !ok || got != fs.Lookup(name).Value.String() {
			t.Errorf("%s: %q, %v; the flag prints %q", name, got, ok, fs.Lookup(name).Value.String())
		}
	}
	if got, _ := setting("schedule", o, dc, dropout); got != "cosine" {
		t.Errorf("schedule %q", got)
	}
	for _, name := range Settings() {
		if _, ok := setting(name, o, dc, dropout); !ok {
			t.Errorf("setting %q has no text", name)
		}
	}
	if _, ok := setting("steps", o, dc, dropout); ok {
		t.Error("steps is not a setting: a resume may change it")
	}
}

// TestFileMetadata reads a checkpoint's recorded training options from its
// header.
func TestFileMetadata(t *testing.T) {
	dir := t.TempDir()
	tr := newTrainer(t, testOptions(1))
	if err := tr.Save(dir); err != nil {
		t.Fatal(err)
	}
	meta, err := FileMetadata(checkpoint.Path(dir))
	if err != nil {
		t.Fatal(err)
	}
	init := &Init{Net: tr.Model, Metadata: meta}
	if o := init.recorded(); o.Data != "synthetic" || o.Config != "tiny" || init.configName() != "tiny" {
		t.Errorf("recorded options %+v, config name %q", o, init.configName())
	}
	if _, err := FileMetadata(filepath.Join(dir, "missing")); err == nil {
		t.Error("no error for a missing file")
	}
}
