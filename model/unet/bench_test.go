package unet

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ddpm-go/ddpm/engine/nn"
	"github.com/ddpm-go/ddpm/engine/optim"
)

// benchSetup builds an initialised model and a random batch, the same
// workload as the reference script's train/sample timings.
func benchSetup(b *testing.B, name string, n int) (*UNet, []float32, []float32, []int, *rand.Rand) {
	return benchSetupConfig(b, benchConfig(b, name), n)
}

// benchConfig is the config called name.
func benchConfig(b *testing.B, name string) Config {
	cfg, err := ConfigByName(name)
	if err != nil {
		b.Fatal(err)
	}
	return cfg
}

// benchSetupConfig is benchSetup for a config that has no name.
func benchSetupConfig(b *testing.B, cfg Config, n int) (*UNet, []float32, []float32, []int, *rand.Rand) {
	u, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	u.Init(rng)
	sz := n * cfg.InCh * cfg.Res * cfg.Res
	x, eps := make([]float32, sz), make([]float32, sz)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
		eps[i] = float32(rng.NormFloat64())
	}
	t := make([]int, n)
	for i := range t {
		t[i] = rng.IntN(1000)
	}
	return u, x, eps, t, rng
}

func report(b *testing.B, flopsPerStep float64) {
	sec := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(sec*1e3, "ms/step")
	b.ReportMetric(flopsPerStep/sec/1e9, "GFLOP/s")
}

// BenchmarkTrainStepSmall: forward + MSE + backward + Adam on the small
// config at batch 32 (the reference's --config small --mode train). FLOPs
// are counted as 3× the forward, as the reference does.
func BenchmarkTrainStepSmall(b *testing.B) { trainStep(b, "small", 32) }

// BenchmarkTrainStepMNISTFast: a training step of mnist-fast (the first
// shipped models' network) at the batch it was trained with
// (64), with the convs' backward (input and weight gradients) through the
// Winograd transforms and through the GEMM path.
func BenchmarkTrainStepMNISTFast(b *testing.B) {
	for _, gemmPath := range []bool{true, false} {
		name := "winograd-backward"
		if gemmPath {
			name = "gemm-backward"
		}
		b.Run(name, func(b *testing.B) {
			trainStep(b, "mnist-fast", 64, func(l *nn.Conv2d) { l.NoWinogradBackward = gemmPath })
		})
	}
}

// trainStep times forward + MSE + backward + Adam of config name at batch n,
// with the model's convs set up by the optional convPath.
func trainStep(b *testing.B, name string, n int, convPath ...func(*nn.Conv2d)) {
	u, x, eps, t, rng := benchSetup(b, name, n)
	u.eachConv(convPath...)
	out, dOut := make([]float32, len(x)), make([]float32, len(x))
	opt := optim.NewAdam(u.NumParams(), 2e-4)
	step := func() {
		u.Forward(out, x, t, n, true, rng)
		nn.MSELoss(dOut, out, eps)
		u.ZeroGrads()
		u.Backward(dOut, nil)
		opt.Step(u.Weights(), u.Grads())
	}
	step() // size the buffers outside the timing
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		step()
	}
	report(b, 3*ForwardFLOPs(u.Config())*float64(n))
}

// BenchmarkSampleStepSmall: one forward pass at batch 32 in eval mode (the
// network part of a DDPM sampling step).
func BenchmarkSampleStepSmall(b *testing.B) { sampleStep(b, "small", 32) }

// BenchmarkSampleStepMNISTFast: one forward pass of mnist-fast (the first
// shipped models' network) at batch 64, the unit
// of `ddpm sample --n 64`, with the Winograd convolutions and without.
func BenchmarkSampleStepMNISTFast(b *testing.B) {
	for _, direct := range []bool{true, false} {
		name := "winograd"
		if direct {
			name = "direct"
		}
		b.Run(name, func(b *testing.B) {
			sampleStep(b, "mnist-fast", 64, func(l *nn.Conv2d) { l.NoWinograd = direct })
		})
	}
}

// BenchmarkSampleStepMNISTDeep: the same for the retired mnist-deep (the
// same FLOPs as mnist-fast in twice the layers), the baseline of
// BenchmarkSampleStepWider.
func BenchmarkSampleStepMNISTDeep(b *testing.B) { sampleStep(b, "mnist-deep", 64) }

// BenchmarkSampleStepMNISTDeeper: the same for mnist-deeper (mnist-deep with
// a third residual block at 7×7), the shipped MNIST and Fashion-MNIST
// models' network: one step of `ddpm sample --n 64`, which runs 1000 of them.
func BenchmarkSampleStepMNISTDeeper(b *testing.B) { sampleStep(b, "mnist-deeper", 64) }

// BenchmarkSampleStepWider prices more capacity at 7×7, where a better
// MNIST model would add it: mnist-deep's sampling step beside trial
// networks with 96 channels at 7×7, three blocks per level, or deeper
// levels (blocks-2-2-3 is mnist-deeper). Compare within one run.
func BenchmarkSampleStepWider(b *testing.B) {
	deep := benchConfig(b, "mnist-deep")
	trial := func(mult []int, blocks int) Config {
		c := deep
		c.ChMult, c.NumResBlocks = mult, blocks
		return c
	}
	levels := func(blocks ...int) Config {
		c := deep
		c.LevelBlocks = blocks
		return c
	}
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"mnist-deep", deep},
		{"16-32-96", trial([]int{1, 2, 6}, 2)},
		{"3-blocks", trial([]int{1, 2, 4}, 3)},
		{"16-48-96", trial([]int{1, 3, 6}, 2)},
		{"blocks-2-2-3", levels(2, 2, 3)},
		{"blocks-2-3-3", levels(2, 3, 3)},
		{"blocks-2-2-4", levels(2, 2, 4)},
		{"blocks-2-3-4", levels(2, 3, 4)},
	} {
		b.Run(tc.name, func(b *testing.B) { sampleStepConfig(b, tc.cfg, 64) })
	}
}

// sampleStep times one eval-mode forward pass of config name at batch n.
func sampleStep(b *testing.B, name string, n int, convPath ...func(*nn.Conv2d)) {
	sampleStepConfig(b, benchConfig(b, name), n, convPath...)
}

// sampleStepConfig is sampleStep for a config that has no name.
func sampleStepConfig(b *testing.B, cfg Config, n int, convPath ...func(*nn.Conv2d)) {
	u, x, _, t, _ := benchSetupConfig(b, cfg, n)
	u.eachConv(convPath...)
	out := make([]float32, len(x))
	u.Forward(out, x, t, n, false, nil)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		u.Forward(out, x, t, n, false, nil)
	}
	report(b, ForwardFLOPs(u.Config())*float64(n))
}

// eachConv applies each of fns to every conv layer of the model outside the
// attention blocks (theirs are 1×1, which no path choice affects): the
// benchmarks that compare conv paths set the layers' choices with it.
func (u *UNet) eachConv(fns ...func(*nn.Conv2d)) {
	if len(fns) == 0 {
		return
	}
	convs := []*nn.Conv2d{u.convIn, u.convOut}
	res := func(b *resBlock) {
		if b != nil {
			convs = append(convs, b.conv1, b.conv2)
			if b.nin != nil {
				convs = append(convs, b.nin)
			}
		}
	}
	res(u.mid1)
	res(u.mid2)
	for _, e := range append(slices.Clone(u.down), u.up...) {
		res(e.res)
		if e.conv != nil {
			convs = append(convs, e.conv)
		}
	}
	for _, l := range convs {
		for _, fn := range fns {
			fn(l)
		}
	}
}

// BenchmarkPredict: one Predict (the lean inference forward samplers call)
// of the paper's networks at the batches issue 26 times against ONNX
// Runtime: cifar at batch 8, celebahq256 (the 256×256 U-Net) at batch 1.
func BenchmarkPredict(b *testing.B) {
	for _, tc := range []struct {
		name string
		n    int
	}{{"cifar", 8}, {"celebahq256", 1}} {
		b.Run(tc.name, func(b *testing.B) {
			u, x, _, t, _ := benchSetup(b, tc.name, tc.n)
			out := make([]float32, len(x))
			u.Predict(out, x, t)
			b.ResetTimer()
			for b.Loop() {
				u.Predict(out, x, t)
			}
			report(b, ForwardFLOPs(u.Config())*float64(tc.n))
		})
	}
}
