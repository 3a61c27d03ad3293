package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
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
	"github.com/ddpm-go/ddpm/model/unet"
)

// benchResult is what `ddpm bench --json` prints.
type benchResult struct {
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

func init() {
	register("bench", "time a training and a sampling step of a U-Net config (optionally against PyTorch)", runBench)
}

func runBench(args []string) error {
	fs := newFlags("bench", "[--config small] [--batch 32] [--steps 10] [--json] [--torch SCRIPT]")
	config := fs.String("config", "small", configHelp("U-Net config"))
	batch := fs.Int("batch", 32, "batch size")
	steps := fs.Int("steps", 10, "timed steps of each kind (the median is reported)")
	warmup := fs.Int("warmup", 2, "untimed steps first")
	mode := fs.String("mode", "both", "train, sample or both")
	asJSON := fs.Bool("json", false, "print one JSON object")
	torch := fs.String("torch", "", "also run this PyTorch reference (torch_unet_bench.py) in the same run and report the ratio")
	python := fs.String("python", "/usr/bin/python3", "Python for --torch")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *batch <= 0 || *steps <= 0 || *warmup < 0 {
		return usageErr("--batch and --steps must be positive, --warmup ≥ 0")
	}
	if *mode != "train" && *mode != "sample" && *mode != "both" {
		return usageErr("--mode must be train, sample or both")
	}
	cfg, err := unet.ConfigByName(*config)
	if err != nil {
		return usageErr("%v", err)
	}
	cfg.Dropout = 0 // as the reference's timing (dropout costs little either way)
	m, err := unet.New(cfg)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(0, 1))
	m.Init(rng)
	d, err := diffusion.New(diffusion.DefaultConfig())
	if err != nil {
		return err
	}
	B, D := *batch, cfg.InCh*cfg.Res*cfg.Res
	flops := unet.ForwardFLOPs(cfg)
	res := benchResult{Framework: "ddpm-go " + runtime.Version(), Kernel: gemm.Kernel(), Config: *config, Batch: B,
		Params: m.NumParams(), Threads: runtime.GOMAXPROCS(0), FwdGFLOPPerImg: round(flops/1e9, 4)}

	if *mode != "sample" {
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
		med, lo := timeSteps(step, *warmup, *steps)
		res.TrainMS, res.TrainMinMS = round(med, 2), round(lo, 2)
		res.TrainGFLOPS = round(3*flops*float64(B)/med/1e6, 1)
		res.TrainImagesPerS = round(float64(B)/med*1e3, 1)
	}
	if *mode != "train" {
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
		med, lo := timeSteps(step, *warmup, *steps)
		res.SampleMS, res.SampleMinMS = round(med, 2), round(lo, 2)
		res.SampleGFLOPS = round(flops*float64(B)/med/1e6, 1)
		res.SampleImgPerS = round(float64(B)/med*1e3, 1)
	}
	res.PeakRSSMB = peakRSSMB()

	if *torch != "" {
		tr, err := runTorch(*python, *torch, *config, B, *steps, *warmup, *mode)
		if err != nil {
			return err
		}
		res.Torch = tr
		if v, ok := nested(tr, "train", "median_ms"); ok && res.TrainMS > 0 {
			res.TrainRatio = round(res.TrainMS/v, 3)
		}
		if v, ok := nested(tr, "sample", "median_ms"); ok && res.SampleMS > 0 {
			res.SampleRatio = round(res.SampleMS/v, 3)
		}
	}

	if *asJSON {
		b, _ := json.Marshal(res)
		fmt.Println(string(b))
		return nil
	}
	fmt.Printf("config %s, batch %d, %d params, %.4f GFLOP/image forward, %s, GEMM kernel %s\n",
		res.Config, res.Batch, res.Params, res.FwdGFLOPPerImg, plural(res.Threads, "thread"), res.Kernel)
	fmt.Printf("%-8s %10s %10s %10s %10s %12s\n", "step", "median ms", "min ms", "GFLOP/s", "images/s", "vs PyTorch")
	row := func(name string, med, lo, gf, ips, ratio float64) {
		r := "-"
		if ratio > 0 {
			r = fmt.Sprintf("%.2f×", ratio)
		}
		fmt.Printf("%-8s %10.1f %10.1f %10.1f %10.1f %12s\n", name, med, lo, gf, ips, r)
	}
	if res.TrainMS > 0 {
		row("train", res.TrainMS, res.TrainMinMS, res.TrainGFLOPS, res.TrainImagesPerS, res.TrainRatio)
	}
	if res.SampleMS > 0 {
		row("sample", res.SampleMS, res.SampleMinMS, res.SampleGFLOPS, res.SampleImgPerS, res.SampleRatio)
	}
	if res.Torch != nil {
		tm, _ := nested(res.Torch, "train", "median_ms")
		sm, _ := nested(res.Torch, "sample", "median_ms")
		fmt.Printf("PyTorch (%v): train %.1f ms, sample %.1f ms (time ratio ours/theirs: < 1 is faster)\n", res.Torch["framework"], tm, sm)
	}
	fmt.Printf("peak RSS %.0f MB\n", res.PeakRSSMB)
	return nil
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

func runTorch(python, script, config string, batch, steps, warmup int, mode string) (map[string]any, error) {
	cmd := exec.Command(python, script, "--config", config, "--batch", strconv.Itoa(batch),
		"--steps", strconv.Itoa(steps), "--warmup", strconv.Itoa(warmup), "--mode", mode,
		"--threads", strconv.Itoa(runtime.GOMAXPROCS(0)))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("PyTorch reference %s: %w (is python3-torch installed? apt-get install -y python3-torch)", script, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var r map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		return nil, fmt.Errorf("PyTorch reference printed no JSON: %w", err)
	}
	return r, nil
}

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
func peakRSSMB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return round(kb/1024, 1)
		}
	}
	return 0
}

func round(v float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	return float64(int64(v*p+0.5)) / p
}
