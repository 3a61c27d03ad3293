// Package train runs DDPM training (Algorithm 1 of Ho et al. 2020): draw a
// batch x0, a timestep t uniformly, noise ε, form x_t by eq. 4, take a
// gradient step on the chosen objective (L_simple by default, eq. 14) with
// Adam, linear warm-up and global-norm clipping, and keep an exponential
// moving average of the weights for sampling.
//
// All randomness (batches, t, ε, dropout, flips) comes from one PCG
// generator whose state is saved in every checkpoint, so a run resumed from
// step N is bit-identical to one that never stopped.
package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/engine/optim"
	"github.com/ddpm-go/ddpm/model/unet"
)

// Options are the run's training settings; they are stored in the
// checkpoint and restored by --resume.
type Options struct {
	Data      string  `json:"data"`       // data set spec (mnist, fashion-mnist, cifar10:DIR, folder:DIR)
	Config    string  `json:"config"`     // U-Net config name
	Steps     int     `json:"steps"`      // total optimizer steps of the run
	Batch     int     `json:"batch"`      // images per step
	LR        float64 `json:"lr"`         // Adam learning rate after warm-up (paper: 2e-4)
	Warmup    int     `json:"warmup"`     // linear warm-up steps (paper: 5000)
	GradClip  float64 `json:"grad_clip"`  // global gradient-norm clip (paper: 1.0); 0 disables
	EMADecay  float64 `json:"ema_decay"`  // EMA decay (paper: 0.9999)
	Flip      bool    `json:"flip"`       // random horizontal flips (paper: on for CIFAR-10)
	Seed      uint64  `json:"seed"`       // seeds every random draw of the run
	CkptEvery int     `json:"ckpt_every"` // checkpoint interval in steps; 0: only at the end
	SkipNaN   bool    `json:"skip_nan"`   // skip a step whose loss or gradient is not finite instead of stopping
}

// DefaultOptions are the paper's settings scaled to a CPU run.
func DefaultOptions() Options {
	return Options{Data: "mnist", Config: "small", Steps: 3000, Batch: 32, LR: 2e-4, Warmup: 200,
		GradClip: 1, EMADecay: 0.999, Seed: 0, CkptEvery: 500}
}

// Validate reports the first out-of-range option.
func (o Options) Validate() error {
	switch {
	case o.Steps <= 0:
		return fmt.Errorf("steps must be positive, got %d", o.Steps)
	case o.Batch <= 0:
		return fmt.Errorf("batch must be positive, got %d", o.Batch)
	case !(o.LR > 0) || math.IsInf(o.LR, 0):
		return fmt.Errorf("lr must be positive and finite, got %g", o.LR)
	case o.Warmup < 0:
		return fmt.Errorf("warmup must be ≥ 0, got %d", o.Warmup)
	case o.GradClip < 0 || math.IsNaN(o.GradClip):
		return fmt.Errorf("grad-clip must be ≥ 0, got %g", o.GradClip)
	case !(o.EMADecay >= 0 && o.EMADecay < 1):
		return fmt.Errorf("ema decay must be in [0, 1), got %g", o.EMADecay)
	case o.CkptEvery < 0:
		return fmt.Errorf("checkpoint interval must be ≥ 0, got %d", o.CkptEvery)
	}
	return nil
}

// ErrNonFinite reports a NaN or Inf loss or gradient.
var ErrNonFinite = errors.New("loss or gradient is not finite")

// Trainer holds a run's model, optimizer, EMA, data and random state.
type Trainer struct {
	Opt  Options
	UCfg unet.Config
	DCfg diffusion.Config

	Model *unet.UNet
	Diff  *diffusion.Diffusion
	Adam  *optim.Adam
	EMA   *optim.EMA
	Data  *data.Dataset
	Step  int // optimizer steps taken so far

	pcg *rand.PCG
	rng *rand.Rand

	// Step buffers, allocated once.
	idx                    []int
	t                      []int
	x0, xt, eps, out, dOut []float32
}

// New starts a fresh run: the model is initialised from the seed.
func New(opt Options, ucfg unet.Config, dcfg diffusion.Config, ds *data.Dataset) (*Trainer, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	tr, err := build(opt, ucfg, dcfg, ds)
	if err != nil {
		return nil, err
	}
	tr.Model.Init(rand.New(rand.NewPCG(opt.Seed, 0x6d6f64656c)))
	tr.Adam = optim.NewAdam(tr.Model.NumParams(), opt.LR)
	tr.EMA = optim.NewEMA(tr.Model.Weights(), opt.EMADecay)
	return tr, nil
}

func build(opt Options, ucfg unet.Config, dcfg diffusion.Config, ds *data.Dataset) (*Trainer, error) {
	d, err := diffusion.New(dcfg)
	if err != nil {
		return nil, err
	}
	ucfg.OutCh = d.OutChannels(ucfg.InCh)
	m, err := unet.New(ucfg)
	if err != nil {
		return nil, err
	}
	if ds.C != ucfg.InCh {
		return nil, fmt.Errorf("data set %s has %d channels, config %s takes %d", ds.Name, ds.C, opt.Config, ucfg.InCh)
	}
	if ds.H != ds.W || ds.H > ucfg.Res {
		return nil, fmt.Errorf("data set %s has %d×%d images, config %s takes %d×%d", ds.Name, ds.H, ds.W, opt.Config, ucfg.Res, ucfg.Res)
	}
	pcg := rand.NewPCG(opt.Seed, 0x7472616e)
	B, D := opt.Batch, ucfg.InCh*ucfg.Res*ucfg.Res
	return &Trainer{
		Opt: opt, UCfg: m.Config(), DCfg: dcfg, Model: m, Diff: d, Data: ds,
		pcg: pcg, rng: rand.New(pcg),
		idx: make([]int, B), t: make([]int, B),
		x0: make([]float32, B*D), xt: make([]float32, B*D), eps: make([]float32, B*D),
		out: make([]float32, B*ucfg.OutCh*ucfg.Res*ucfg.Res), dOut: make([]float32, B*ucfg.OutCh*ucfg.Res*ucfg.Res),
	}, nil
}

// Resume restores a run from its checkpoint. steps, when positive, replaces
// the run's total step count (to extend a finished run).
func Resume(path string, ds *data.Dataset, steps int) (*Trainer, error) {
	c, _, err := checkpoint.Load(checkpoint.Path(path))
	if err != nil {
		return nil, err
	}
	var opt Options
	if err := json.Unmarshal(c.Train, &opt); err != nil {
		return nil, fmt.Errorf("checkpoint %s: training options: %w", path, err)
	}
	if steps > 0 {
		opt.Steps = steps
	}
	tr, err := build(opt, c.UNet, c.Diffusion, ds)
	if err != nil {
		return nil, err
	}
	if err := tr.pcg.UnmarshalBinary(c.RNG); err != nil {
		return nil, fmt.Errorf("checkpoint %s: random state: %w", path, err)
	}
	copy(tr.Model.Weights(), c.Model)
	tr.Adam = optim.NewAdam(tr.Model.NumParams(), opt.LR)
	copy(tr.Adam.M, c.AdamM)
	copy(tr.Adam.V, c.AdamV)
	tr.Adam.StepCount = c.AdamStep
	tr.EMA = optim.NewEMA(c.EMA, opt.EMADecay)
	tr.Step = c.Step
	return tr, nil
}

// DataSpec is the data set the options name, for reloading on resume.
func DataSpec(path string) (Options, error) {
	c, _, err := checkpoint.Load(checkpoint.Path(path))
	if err != nil {
		return Options{}, err
	}
	var opt Options
	if err := json.Unmarshal(c.Train, &opt); err != nil {
		return Options{}, fmt.Errorf("checkpoint %s: training options: %w", path, err)
	}
	return opt, nil
}

// TrainStep takes one optimizer step (Algorithm 1) and returns the loss
// and the gradient norm before clipping. A non-finite loss or gradient
// returns ErrNonFinite without touching the weights, Adam or the EMA.
func (tr *Trainer) TrainStep() (loss, gradNorm float64, err error) {
	B, res := tr.Opt.Batch, tr.UCfg.Res
	for i := range tr.idx {
		tr.idx[i] = tr.rng.IntN(tr.Data.N)
	}
	tr.Data.ToFloat(tr.x0, tr.idx, res)
	if tr.Opt.Flip {
		data.RandomFlip(tr.x0, B, tr.UCfg.InCh, res, res, tr.rng)
	}
	tr.Diff.RandomTimesteps(tr.t, tr.rng)
	diffusion.FillNormal(tr.eps, tr.rng)
	tr.Diff.QSample(tr.xt, tr.x0, tr.eps, tr.t)

	tr.Model.Forward(tr.out, tr.xt, tr.t, B, true, tr.rng)
	loss, _ = tr.Diff.TrainingLoss(tr.out, tr.x0, tr.xt, tr.eps, tr.t, tr.dOut)
	tr.Step++
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return loss, math.NaN(), ErrNonFinite
	}
	g := tr.Model.Grads()
	clear(g)
	tr.Model.Backward(tr.dOut, nil)
	gradNorm = optim.GradNorm(g)
	if math.IsNaN(gradNorm) || math.IsInf(gradNorm, 0) {
		return loss, gradNorm, ErrNonFinite
	}
	if tr.Opt.GradClip > 0 && gradNorm > tr.Opt.GradClip {
		scale := float32(tr.Opt.GradClip / (gradNorm + 1e-6))
		for i := range g {
			g[i] *= scale
		}
	}
	tr.Adam.LR = optim.WarmupLR(tr.Opt.LR, tr.Step, tr.Opt.Warmup)
	tr.Adam.Step(tr.Model.Weights(), g)
	tr.EMA.Update(tr.Model.Weights())
	return loss, gradNorm, nil
}

// Checkpoint captures the run's state.
func (tr *Trainer) Checkpoint() (*checkpoint.Checkpoint, error) {
	rs, err := tr.pcg.MarshalBinary()
	if err != nil {
		return nil, err
	}
	o, err := json.Marshal(tr.Opt)
	if err != nil {
		return nil, err
	}
	return &checkpoint.Checkpoint{
		UNet: tr.UCfg, Diffusion: tr.DCfg, Train: o, Step: tr.Step, AdamStep: tr.Adam.StepCount, RNG: rs,
		Model: tr.Model.Weights(), EMA: tr.EMA.W, AdamM: tr.Adam.M, AdamV: tr.Adam.V,
	}, nil
}

// Save writes the run's checkpoint into dir atomically.
func (tr *Trainer) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create run directory: %w", err)
	}
	c, err := tr.Checkpoint()
	if err != nil {
		return err
	}
	return checkpoint.Save(filepath.Join(dir, checkpoint.FileName), c, tr.Model.Params())
}

// Progress receives the state after each step.
type Progress func(step int, loss, gradNorm float64)

// Run trains until Opt.Steps, checkpointing into dir every CkptEvery steps,
// at the end, and when ctx is cancelled (SIGINT/SIGTERM), then returns
// ctx's error in that case.
func (tr *Trainer) Run(ctx context.Context, dir string, progress Progress) error {
	for tr.Step < tr.Opt.Steps {
		if ctx.Err() != nil {
			if err := tr.Save(dir); err != nil {
				return err
			}
			return ctx.Err()
		}
		loss, gn, err := tr.TrainStep()
		if errors.Is(err, ErrNonFinite) {
			if tr.Opt.SkipNaN {
				continue
			}
			return fmt.Errorf("step %d: %w (loss %g, grad norm %g); the last good checkpoint is kept", tr.Step, err, loss, gn)
		}
		if progress != nil {
			progress(tr.Step, loss, gn)
		}
		if tr.Opt.CkptEvery > 0 && tr.Step%tr.Opt.CkptEvery == 0 && tr.Step < tr.Opt.Steps {
			if err := tr.Save(dir); err != nil {
				return err
			}
		}
	}
	return tr.Save(dir)
}
