// Package train runs DDPM training (Algorithm 1 of Ho et al. 2020): draw a
// batch x0, a timestep t uniformly, noise ε, form x_t by eq. 4, take a
// gradient step on the chosen objective (L_simple by default, eq. 14) with
// Adam, linear warm-up and global-norm clipping, and keep an exponential
// moving average of the weights for sampling.
//
// All randomness (batches, t, ε, dropout, flips) comes from one PCG
// generator whose state is saved in every checkpoint, so a run resumed from
// step N is bit-identical to one that never stopped.
//
// Prepare sets up a whole run as ddpm train does (new, resumed, or from a
// trained model, with its data checked against the network); the Session
// it returns trains it with the loss log and previews beside the
// checkpoints.
package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/engine/optim"
	"github.com/ddpm-go/ddpm/model/unet"
	"github.com/ddpm-go/ddpm/weights"
)

// Options are the run's training settings; they are stored in the
// checkpoint and restored by --resume.
type Options struct {
	Data      string  `json:"data"`               // data set spec (mnist, fashion-mnist, cifar10:DIR, folder:DIR)
	Config    string  `json:"config"`             // U-Net config name
	Steps     int     `json:"steps"`              // total optimizer steps of the run
	Batch     int     `json:"batch"`              // images per step
	LR        float64 `json:"lr"`                 // Adam learning rate after warm-up (paper: 2e-4)
	Warmup    int     `json:"warmup"`             // linear warm-up steps (paper: 5000)
	Decay     string  `json:"lr_decay,omitempty"` // after warm-up: constant ("" too, the paper's), cosine or linear to 0 at Steps
	GradClip  float64 `json:"grad_clip"`          // global gradient-norm clip (paper: 1.0); 0 disables
	EMADecay  float64 `json:"ema_decay"`          // EMA decay (paper: 0.9999)
	Flip      bool    `json:"flip"`               // random horizontal flips (paper: on for CIFAR-10)
	Seed      uint64  `json:"seed"`               // seeds every random draw of the run
	CkptEvery int     `json:"ckpt_every"`         // checkpoint interval in steps; 0: only at the end
	SkipNaN   bool    `json:"skip_nan"`           // skip a step whose loss or gradient is not finite instead of stopping
	Init      string  `json:"init,omitempty"`     // model whose weights the run started from ("": a random init)

	// How folder images were fitted to the network (see data.Strict).
	// Runs from before these fields (StrictFit false) had every folder
	// image cropped, resized and converted, and are resumed that way.
	StrictFit bool `json:"strict_fit,omitempty"` // folder images fitted only as Resize and Channels allow
	Resize    bool `json:"resize,omitempty"`     // scale folder images to the network's resolution (area filter, centre crop)
	Channels  int  `json:"channels,omitempty"`   // convert folder images to this many channels (0: no conversion)

	// Neither changes the run; both may change on --resume.
	LogEvery     int `json:"log_every,omitempty"`     // a loss.jsonl line every N steps (0: DefaultLogEvery)
	PreviewEvery int `json:"preview_every,omitempty"` // preview.png every N steps; 0: with each checkpoint; PreviewNever: never
}

// PreviewNever is the PreviewEvery of a run without previews.
const PreviewNever = -1

// DefaultLogEvery is the loss log's default interval, in steps.
const DefaultLogEvery = 10

// LogInterval is the loss log's interval in steps.
func (o Options) LogInterval() int {
	if o.LogEvery > 0 {
		return o.LogEvery
	}
	return DefaultLogEvery
}

// PreviewInterval is how many steps apart previews are written during the
// run (0: none during it). Every run with previews (PreviewEvery ≠
// PreviewNever) also writes one at its end.
func (o Options) PreviewInterval() int {
	switch {
	case o.PreviewEvery > 0:
		return o.PreviewEvery
	case o.PreviewEvery == PreviewNever:
		return 0
	}
	return o.CkptEvery // with each checkpoint (and at the end; 0: at the end only)
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
	case o.Decay != "" && !slices.Contains(optim.LRDecays(), o.Decay):
		return fmt.Errorf("lr decay must be one of %s, got %q", strings.Join(optim.LRDecays(), ", "), o.Decay)
	case o.GradClip < 0 || math.IsNaN(o.GradClip):
		return fmt.Errorf("grad-clip must be ≥ 0, got %g", o.GradClip)
	case !(o.EMADecay >= 0 && o.EMADecay < 1):
		return fmt.Errorf("ema decay must be in [0, 1), got %g", o.EMADecay)
	case o.CkptEvery < 0:
		return fmt.Errorf("checkpoint interval must be ≥ 0, got %d", o.CkptEvery)
	case o.LogEvery < 0:
		return fmt.Errorf("log-every must be ≥ 1, got %d", o.LogEvery)
	case o.PreviewEvery < PreviewNever:
		return fmt.Errorf("preview-every must be ≥ 0, got %d", o.PreviewEvery)
	case o.Channels != 0 && o.Channels != 1 && o.Channels != 3:
		return fmt.Errorf("channels must be 1 (grey) or 3 (RGB), got %d", o.Channels)
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

	// Saved is the step of the newest checkpoint on disk (−1: none yet).
	Saved int
	// Skipped counts the steps skipped as non-finite (Opt.SkipNaN).
	Skipped int
	// OnSkip, if set, is told about each skipped step.
	OnSkip func(step int, loss, gradNorm float64)

	pcg *rand.PCG
	rng *rand.Rand

	preview *unet.UNet // the network Preview samples with (EMA weights), made on first use

	cleaned         bool // stale temporary files removed
	setAsideCurrent bool // the newest checkpoint is damaged (Saved.Fallback)

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

// InitFrom replaces a fresh run's random weights (and its EMA) with w, the
// weights of a trained model of the same network: fine-tuning, or
// continuing a model whose optimizer state is gone. Adam starts afresh.
func (tr *Trainer) InitFrom(w []float32) error {
	if len(w) != tr.Model.NumParams() {
		return fmt.Errorf("init: %d weights, the network has %d", len(w), tr.Model.NumParams())
	}
	if !finite(w) {
		return errors.New("init: the weights are not all finite")
	}
	copy(tr.Model.Weights(), w)
	copy(tr.EMA.W, w)
	return nil
}

func build(opt Options, ucfg unet.Config, dcfg diffusion.Config, ds *data.Dataset) (*Trainer, error) {
	d, err := diffusion.New(dcfg)
	if err != nil {
		return nil, err
	}
	ucfg.OutCh = d.OutChannels(ucfg.InCh)
	// Before any allocation: an impossible batch is an error, not the
	// runtime's fatal out-of-memory.
	if err := CheckMemory(ucfg, opt.Batch); err != nil {
		return nil, err
	}
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
		Opt: opt, UCfg: m.Config(), DCfg: dcfg, Model: m, Diff: d, Data: ds, Saved: -1,
		pcg: pcg, rng: rand.New(pcg),
		idx: make([]int, B), t: make([]int, B),
		x0: make([]float32, B*D), xt: make([]float32, B*D), eps: make([]float32, B*D),
		out: make([]float32, B*ucfg.OutCh*ucfg.Res*ucfg.Res), dOut: make([]float32, B*ucfg.OutCh*ucfg.Res*ucfg.Res),
	}, nil
}

// Saved is a run's checkpoint as found on disk, read before its data set is
// loaded so that the data can be loaded for the model the run was built
// with (its image size and channels) rather than for whatever a config name
// means today.
type Saved struct {
	Opt        Options
	Checkpoint *checkpoint.Checkpoint
	Path       string // the file it was read from
	// Fallback, when not nil, says why the newest checkpoint could not be
	// used; Path is then the previous generation. The caller should show
	// it as a warning: the run loses the steps since that checkpoint.
	Fallback error
}

// Open reads the newest readable checkpoint of the run in dir (or the file
// dir names): checkpoint.safetensors, or if that is missing, truncated or
// fails its checksum, the previous generation checkpoint.prev.safetensors.
// When neither is usable the error describes both.
func Open(dir string) (*Saved, error) {
	cur := checkpoint.Path(dir)
	if st, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("no run to resume at %s: %w", dir, pathErr(err))
	} else if !st.IsDir() {
		// An explicit file: no generations to choose from.
		s, err := open(cur)
		return s, err
	}
	prev := checkpoint.PrevPath(cur)
	s, err := open(cur)
	if err == nil {
		return s, nil
	}
	_, curStat := os.Stat(cur)
	_, prevStat := os.Stat(prev)
	if errors.Is(curStat, fs.ErrNotExist) && errors.Is(prevStat, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s holds no checkpoint to resume (%s not found)", dir, checkpoint.FileName)
	}
	if prevStat != nil {
		return nil, err
	}
	s, perr := open(prev)
	if perr != nil {
		return nil, fmt.Errorf("no usable checkpoint in %s: newest: %v; previous: %v", dir, err, perr)
	}
	s.Fallback = err
	return s, nil
}

func open(path string) (*Saved, error) {
	c, _, err := checkpoint.Load(path)
	if err != nil {
		return nil, err
	}
	var opt Options
	if err := json.Unmarshal(c.Train, &opt); err != nil {
		return nil, fmt.Errorf("checkpoint %s: training options: %w", path, err)
	}
	if err := opt.Validate(); err != nil {
		return nil, fmt.Errorf("checkpoint %s: training options: %w", path, err)
	}
	return &Saved{Opt: opt, Checkpoint: c, Path: path}, nil
}

// pathErr drops the operation and path that *fs.PathError repeats.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Resume rebuilds the run from s on the data set ds. steps, when positive,
// replaces the run's total step count (to extend a finished run).
func (s *Saved) Resume(ds *data.Dataset, steps int) (*Trainer, error) {
	c, opt := s.Checkpoint, s.Opt
	if steps > 0 {
		opt.Steps = steps
	}
	tr, err := build(opt, c.UNet, c.Diffusion, ds)
	if err != nil {
		return nil, err
	}
	if tr.Model.NumParams() != len(c.Model) {
		return nil, fmt.Errorf("checkpoint %s: %d weights, the model needs %d", s.Path, len(c.Model), tr.Model.NumParams())
	}
	if err := tr.pcg.UnmarshalBinary(c.RNG); err != nil {
		return nil, fmt.Errorf("checkpoint %s: random state: %w", s.Path, err)
	}
	copy(tr.Model.Weights(), c.Model)
	tr.Adam = optim.NewAdam(tr.Model.NumParams(), opt.LR)
	copy(tr.Adam.M, c.AdamM)
	copy(tr.Adam.V, c.AdamV)
	tr.Adam.StepCount = c.AdamStep
	tr.EMA = optim.NewEMA(c.EMA, opt.EMADecay)
	tr.Step = c.Step
	tr.Saved = c.Step
	// The newest file is damaged: the first save must not rotate it into
	// the previous generation's place, which holds the checkpoint this run
	// continues from.
	tr.setAsideCurrent = s.Fallback != nil
	return tr, nil
}

// Resume restores a run from its checkpoint (see Open for which file is
// used). steps, when positive, replaces the run's total step count (to
// extend a finished run).
func Resume(path string, ds *data.Dataset, steps int) (*Trainer, error) {
	s, err := Open(path)
	if err != nil {
		return nil, err
	}
	return s.Resume(ds, steps)
}

// faultHook, set only by tests, may overwrite the loss (grads == nil) or
// the gradient (loss == nil) of the step being taken, to exercise the
// non-finite paths with a fault at a chosen step.
var faultHook func(step int, loss *float64, grads []float32)

// TrainStep takes one optimizer step (Algorithm 1) and returns the loss
// and the gradient norm before clipping. A non-finite loss or gradient
// returns ErrNonFinite without touching the weights, Adam or the EMA (the
// step still counts and its random draws are used, so a run that skips it
// stays reproducible). Weights that become non-finite in the update (a
// learning rate so large that it overflows float32) return ErrDiverged
// before the EMA sees them.
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
	if faultHook != nil {
		faultHook(tr.Step, &loss, nil)
	}
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return loss, math.NaN(), ErrNonFinite
	}
	g := tr.Model.Grads()
	clear(g)
	tr.Model.Backward(tr.dOut, nil)
	if faultHook != nil {
		faultHook(tr.Step, nil, g)
	}
	if tr.Opt.GradClip > 0 {
		gradNorm = optim.ClipGradNorm(g, tr.Opt.GradClip) // leaves g alone when the norm is not finite
	} else {
		gradNorm = optim.GradNorm(g)
	}
	if math.IsNaN(gradNorm) || math.IsInf(gradNorm, 0) {
		return loss, gradNorm, ErrNonFinite
	}
	tr.Adam.LR = optim.ScheduledLR(tr.Opt.LR, tr.Step, tr.Opt.Warmup, tr.Opt.Steps, tr.Opt.Decay)
	tr.Adam.Step(tr.Model.Weights(), g)
	if !finite(tr.Model.Weights()) {
		return loss, gradNorm, ErrDiverged
	}
	tr.EMA.Decay = EMADecayAt(tr.Opt.EMADecay, tr.Step)
	tr.EMA.Update(tr.Model.Weights())
	return loss, gradNorm, nil
}

// ErrDiverged reports weights that became NaN or Inf in an update. Unlike
// ErrNonFinite it cannot be skipped: the weights and Adam's moments are
// already lost, so the run must go back to its last checkpoint.
var ErrDiverged = errors.New("the weights became non-finite in the update (learning rate too large?)")

// finite reports whether every value of w is finite. x−x is 0 for a
// finite x and NaN for ±Inf and NaN, so the sum of those differences is 0
// exactly when all are finite: one branch-free pass.
func finite(w []float32) bool {
	var s float32
	for _, x := range w {
		s += x - x
	}
	return s == 0
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

// CorruptSuffix is appended to the name of a damaged newest checkpoint
// when a resumed run saves for the first time (see Saved.Fallback): the
// file is kept for inspection, out of the way of the two generations.
const CorruptSuffix = ".corrupt"

// Save writes the run's checkpoint into dir atomically, keeping the
// previous one as checkpoint.prev.safetensors. It refuses to write
// non-finite weights or EMA, so a checkpoint on disk is always one that
// can be sampled from and resumed.
func (tr *Trainer) Save(dir string) error {
	if !finite(tr.Model.Weights()) || !finite(tr.EMA.W) || !finite(tr.Adam.M) || !finite(tr.Adam.V) {
		return fmt.Errorf("step %d: not saving a checkpoint: %w", tr.Step, ErrDiverged)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create run directory: %w", err)
	}
	path := filepath.Join(dir, checkpoint.FileName)
	if !tr.cleaned {
		// Temporary files of a writer that was killed; this process is
		// the run's only writer (one process per run directory).
		weights.RemoveTemps(path)
		weights.RemoveTemps(checkpoint.PrevPath(path))
		tr.cleaned = true
	}
	if tr.setAsideCurrent {
		if err := os.Rename(path, path+CorruptSuffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("set the damaged checkpoint aside: %w", err)
		}
		tr.setAsideCurrent = false
	}
	c, err := tr.Checkpoint()
	if err != nil {
		return err
	}
	if err := checkpoint.Save(path, c, tr.Model.Params()); err != nil {
		return fmt.Errorf("step %d: %w", tr.Step, err)
	}
	tr.Saved = tr.Step
	return nil
}

// Progress receives the state after each step.
type Progress func(step int, loss, gradNorm float64)

// MaxConsecutiveSkips is how many non-finite steps in a row --skip-nan
// tolerates. An isolated NaN (an unlucky batch and timestep) is worth
// skipping; a run of them means the weights themselves are broken and
// skipping would only spin through the remaining steps.
const MaxConsecutiveSkips = 20

// Run trains until Opt.Steps, checkpointing into dir every CkptEvery steps,
// at the end, and when ctx is cancelled (SIGINT/SIGTERM), then returns
// ctx's error in that case.
//
// A non-finite loss or gradient stops the run with an error naming the
// step, without saving: the checkpoints on disk are the last good ones.
// With Opt.SkipNaN such a step is skipped instead (reported through
// OnSkip), up to MaxConsecutiveSkips in a row. ErrDiverged always stops.
func (tr *Trainer) Run(ctx context.Context, dir string, progress Progress) error {
	skips := 0
	for tr.Step < tr.Opt.Steps {
		if ctx.Err() != nil {
			if err := tr.saveIfChanged(dir); err != nil {
				return err
			}
			return ctx.Err()
		}
		loss, gn, err := tr.TrainStep()
		switch {
		case errors.Is(err, ErrNonFinite) && tr.Opt.SkipNaN && skips < MaxConsecutiveSkips-1:
			skips++
			tr.Skipped++
			if tr.OnSkip != nil {
				tr.OnSkip(tr.Step, loss, gn)
			}
			continue
		case errors.Is(err, ErrNonFinite) && tr.Opt.SkipNaN:
			return fmt.Errorf("step %d: %w (loss %g, grad norm %g), %d steps in a row; stopped: %s", tr.Step, err, loss, gn, MaxConsecutiveSkips, tr.kept(dir))
		case err != nil:
			hint := ""
			if errors.Is(err, ErrNonFinite) {
				hint = " (--skip-nan skips such steps)"
			}
			return fmt.Errorf("step %d: %w (loss %g, grad norm %g); stopped: %s%s", tr.Step, err, loss, gn, tr.kept(dir), hint)
		}
		skips = 0
		if progress != nil {
			progress(tr.Step, loss, gn)
		}
		if tr.Opt.CkptEvery > 0 && tr.Step%tr.Opt.CkptEvery == 0 && tr.Step < tr.Opt.Steps {
			if err := tr.Save(dir); err != nil {
				return err
			}
		}
	}
	return tr.saveIfChanged(dir)
}

// saveIfChanged saves unless the newest checkpoint already holds this
// step (a finished run resumed without new steps, an interrupt right after
// a checkpoint): rewriting it would only push the previous generation out.
func (tr *Trainer) saveIfChanged(dir string) error {
	if tr.Step == tr.Saved && !tr.setAsideCurrent {
		return nil
	}
	return tr.Save(dir)
}

// kept describes what a stopped run leaves on disk.
func (tr *Trainer) kept(dir string) string {
	if tr.Saved < 0 {
		return "no checkpoint was written"
	}
	return fmt.Sprintf("the last good checkpoint (step %d) is kept in %s", tr.Saved, dir)
}

// EMADecayAt is the EMA decay used after step updates: the configured decay,
// warmed up as min(decay, (1+step)/(10+step)) like TensorFlow's
// ExponentialMovingAverage with num_updates and lucidrains' EMA. Without the
// warm-up a short run keeps decay^steps of the random initialisation in the
// EMA weights (5 % after 3000 steps at 0.999); with it the average starts
// from the early weights and only lengthens its window as training goes on.
// It depends on the step alone, so resumed runs stay bit-identical.
func EMADecayAt(decay float64, step int) float64 {
	return min(decay, float64(1+step)/float64(10+step))
}
