// Package benchmark times a training step and a sampling step of a U-Net
// config, optionally beside the PyTorch reference script run with the same
// settings: what `ddpm bench` measures and prints.
package benchmark

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/engine/gemm"
	"github.com/ddpm-go/ddpm/engine/nn"
	"github.com/ddpm-go/ddpm/engine/optim"
	"github.com/ddpm-go/ddpm/internal/text"
	"github.com/ddpm-go/ddpm/model/unet"
)

// Modes of [Options].Mode: which steps are timed.
const (
	Train  = "train"
	Sample = "sample"
	Both   = "both"
)

// Options choose what [Run] times.
type Options struct {
	Config string // U-Net config name (unet.ConfigByName)
	Batch  int    // images per step
	Steps  int    // timed steps of each kind: the median and the minimum are reported
	Warmup int    // untimed steps first
	Mode   string // Train, Sample or Both

	// Torch, when set, is the PyTorch reference script (torch_unet_bench.py)
	// run with the same settings after the Go steps; Python runs it and its
	// stderr goes to TorchStderr (nil: discarded).
	Torch       string
	Python      string
	TorchStderr io.Writer
}

// Validate reports the first option out of range.
func (o Options) Validate() error {
	if o.Batch <= 0 || o.Steps <= 0 || o.Warmup < 0 {
		return errors.New("batch and steps must be positive, warmup ≥ 0")
	}
	if o.Mode != Train && o.Mode != Sample && o.Mode != Both {
		return errors.New("mode must be train, sample or both")
	}
	_, err := unet.ConfigByName(o.Config)
	return err
}

// Result is what `ddpm bench --json` prints: times in milliseconds per
// step, throughputs, and the PyTorch reference's own JSON with the time
// ratios ours/theirs (< 1: faster) when it ran.
type Result struct {
	Framework       string         `json:"framework"`
	Kernel          string         `json:"kernel"`
	Config          string         `json:"config"`
	Batch           int            `json:"batch"`
	Params          int            `json:"params"`
	Threads         int            `json:"threads"`
	FwdGFLOPPerImg  float64        `json:"fwd_gflop_per_image"`
	TrainMS         float64        `json:"train_ms,omitempty"`
	TrainMinMS      float64        `json:"train_min_ms,omitempty"`
	TrainGFLOPS     float64        `json:"train_gflops,omitempty"`
	TrainImagesPerS float64        `json:"train_images_per_s,omitempty"`
	SampleMS        float64        `json:"sample_ms,omitempty"`
	SampleMinMS     float64        `json:"sample_min_ms,omitempty"`
	SampleGFLOPS    float64        `json:"sample_gflops,omitempty"`
	SampleImgPerS   float64        `json:"sample_images_per_s,omitempty"`
	PeakRSSMB       float64        `json:"peak_rss_mb"`
	Torch           map[string]any `json:"torch,omitempty"`
	TrainRatio      float64        `json:"train_ratio_vs_torch,omitempty"`
	SampleRatio     float64        `json:"sample_ratio_vs_torch,omitempty"`
}

// Run builds the config's network (random weights, no dropout, as the
// reference times it) and times its steps on a batch of noise: a training
// step (forward, L_simple, backward, Adam) and a sampling step (one
// reverse step of Algorithm 2, walking down from t = T). The training
// step counts three forward passes of FLOPs, the sampling step one.
func Run(o Options) (*Result, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	cfg, _ := unet.ConfigByName(o.Config)
	cfg.Dropout = 0 // as the reference's timing (dropout costs little either way)
	m, err := unet.New(cfg)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(0, 1))
	m.Init(rng)
	d, err := diffusion.New(diffusion.DefaultConfig())
	if err != nil {
		return nil, err
	}
	B, D := o.Batch, cfg.InCh*cfg.Res*cfg.Res
	flops := unet.ForwardFLOPs(cfg)
	res := &Result{Framework: "ddpm-go " + runtime.Version(), Kernel: gemm.Kernel(), Config: o.Config, Batch: B,
		Params: m.NumParams(), Threads: runtime.GOMAXPROCS(0), FwdGFLOPPerImg: round(flops/1e9, 4)}

	if o.Mode != Sample {
		x0, xt, eps, out, dOut := make([]float32, B*D), make([]float32, B*D), make([]float32, B*D), make([]float32, B*D), make([]float32, B*D)
		t := make([]int, B)
		diffusion.FillNormal(x0, rng)
		adam := optim.NewAdam(m.NumParams(), 2e-4)
		step := func() {
			d.RandomTimesteps(t, rng)
			diffusion.FillNormal(eps, rng)
			d.QSample(xt, x0, eps, t)
			m.Forward(out, xt, t, B, true, rng)
			nn.MSELoss(dOut, out, eps)
			m.ZeroGrads()
			m.Backward(dOut, nil)
			adam.Step(m.Weights(), m.Grads())
		}
		med, lo := timeSteps(step, o.Warmup, o.Steps)
		res.TrainMS, res.TrainMinMS = round(med, 2), round(lo, 2)
		res.TrainGFLOPS = round(3*flops*float64(B)/med/1e6, 1)
		res.TrainImagesPerS = round(float64(B)/med*1e3, 1)
	}
	if o.Mode != Train {
		x := make([]float32, B*D)
		diffusion.FillNormal(x, rng)
		var buf diffusion.StepBuffers
		i := d.T - 1
		step := func() {
			d.SampleStep(m, x, B, i, rng, &buf)
			if i--; i < 0 {
				i = d.T - 1
			}
		}
		med, lo := timeSteps(step, o.Warmup, o.Steps)
		res.SampleMS, res.SampleMinMS = round(med, 2), round(lo, 2)
		res.SampleGFLOPS = round(flops*float64(B)/med/1e6, 1)
		res.SampleImgPerS = round(float64(B)/med*1e3, 1)
	}
	res.PeakRSSMB = peakRSSMB()

	if o.Torch != "" {
		tr, err := runTorch(o)
		if err != nil {
			return nil, err
		}
		res.Torch = tr
		if v, ok := nested(tr, "train", "median_ms"); ok && res.TrainMS > 0 {
			res.TrainRatio = round(res.TrainMS/v, 3)
		}
		if v, ok := nested(tr, "sample", "median_ms"); ok && res.SampleMS > 0 {
			res.SampleRatio = round(res.SampleMS/v, 3)
		}
	}
	return res, nil
}

// WriteTable writes the result as `ddpm bench` prints it: the network, a
// row per timed step, the reference's times and the peak memory.
func (r *Result) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "config %s, batch %d, %d params, %.4f GFLOP/image forward, %s, GEMM kernel %s\n",
		r.Config, r.Batch, r.Params, r.FwdGFLOPPerImg, text.Plural(r.Threads, "thread"), r.Kernel)
	fmt.Fprintf(w, "%-8s %10s %10s %10s %10s %12s\n", "step", "median ms", "min ms", "GFLOP/s", "images/s", "vs PyTorch")
	row := func(name string, med, lo, gf, ips, ratio float64) {
		s := "-"
		if ratio > 0 {
			s = fmt.Sprintf("%.2f×", ratio)
		}
		fmt.Fprintf(w, "%-8s %10.1f %10.1f %10.1f %10.1f %12s\n", name, med, lo, gf, ips, s)
	}
	if r.TrainMS > 0 {
		row("train", r.TrainMS, r.TrainMinMS, r.TrainGFLOPS, r.TrainImagesPerS, r.TrainRatio)
	}
	if r.SampleMS > 0 {
		row("sample", r.SampleMS, r.SampleMinMS, r.SampleGFLOPS, r.SampleImgPerS, r.SampleRatio)
	}
	if r.Torch != nil {
		tm, _ := nested(r.Torch, "train", "median_ms")
		sm, _ := nested(r.Torch, "sample", "median_ms")
		fmt.Fprintf(w, "PyTorch (%v): train %.1f ms, sample %.1f ms (time ratio ours/theirs: < 1 is faster)\n", r.Torch["framework"], tm, sm)
	}
	fmt.Fprintf(w, "peak RSS %.0f MB\n", r.PeakRSSMB)
}

// timeSteps runs fn warmup times, then steps timed times, and returns the
// median and minimum in milliseconds.
func timeSteps(fn func(), warmup, steps int) (median, minimum float64) {
	for range warmup {
		fn()
	}
	ms := make([]float64, steps)
	for i := range ms {
		t0 := time.Now()
		fn()
		ms[i] = float64(time.Since(t0).Microseconds()) / 1e3
	}
	slices.Sort(ms)
	return ms[len(ms)/2], ms[0]
}

// runTorch runs the reference script with o's settings and this process's
// thread count, and returns the JSON object of its last line of output.
func runTorch(o Options) (map[string]any, error) {
	cmd := exec.Command(o.Python, o.Torch, "--config", o.Config, "--batch", strconv.Itoa(o.Batch),
		"--steps", strconv.Itoa(o.Steps), "--warmup", strconv.Itoa(o.Warmup), "--mode", o.Mode,
		"--threads", strconv.Itoa(runtime.GOMAXPROCS(0)))
	cmd.Stderr = o.TorchStderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("PyTorch reference %s: %w (is python3-torch installed? apt-get install -y python3-torch)", o.Torch, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var r map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		return nil, fmt.Errorf("PyTorch reference printed no JSON: %w", err)
	}
	return r, nil
}

// nested is m[k1][k2] as a number, if there is one.
func nested(m map[string]any, k1, k2 string) (float64, bool) {
	sub, ok := m[k1].(map[string]any)
	if !ok {
		return 0, false
	}
	v, ok := sub[k2].(float64)
	return v, ok
}

// peakRSSMB reads the process's peak resident set (VmHWM) on Linux; 0
// elsewhere.
func peakRSSMB() float64 { return procStatusMB("VmHWM:") }

// round rounds v half up to digits decimals.
func round(v float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	return float64(int64(v*p+0.5)) / p
}
