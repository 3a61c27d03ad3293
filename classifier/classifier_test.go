package classifier

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/weights"
)

func newRNG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 77)) }

func randn(rng *rand.Rand, n int, scale float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64() * scale)
	}
	return x
}

// numGrad is the central difference of loss at coordinate i of x.
func numGrad(x []float32, i int, eps float32, loss func() float64) float64 {
	orig := x[i]
	x[i] = orig + eps
	lp := loss()
	x[i] = orig - eps
	lm := loss()
	x[i] = orig
	return (lp - lm) / (float64(orig+eps) - float64(orig-eps))
}

// relErr is |a − num| relative to the larger of the two and to floor, a
// scale below which differences are float32 noise.
func relErr(a, num, floor float64) float64 {
	return math.Abs(a-num) / max(math.Abs(a), math.Abs(num), floor)
}

func TestReLU(t *testing.T) {
	in := []float32{-2, -0.5, 0, 0.25, 3}
	out := make([]float32, len(in))
	ReLUForward(out, in)
	if want := []float32{0, 0, 0, 0.25, 3}; !slices.Equal(out, want) {
		t.Fatalf("ReLU(%v) = %v, want %v", in, out, want)
	}
	dOut := []float32{1, 2, 3, 4, 5}
	dIn := make([]float32, len(in))
	ReLUBackward(dIn, dOut, out)
	if want := []float32{0, 0, 0, 4, 5}; !slices.Equal(dIn, want) {
		t.Fatalf("ReLU backward = %v, want %v", dIn, want)
	}
	// In place, as the network runs it.
	ReLUForward(in, in)
	if !slices.Equal(in, out) {
		t.Fatalf("in-place ReLU = %v, want %v", in, out)
	}
}

func TestSoftmax(t *testing.T) {
	z := []float32{0, 0, 0, 0, 1, 2, 3, 1000}
	p := make([]float32, len(z))
	Softmax(p, z, 2, 4)
	for j := 0; j < 4; j++ {
		if math.Abs(float64(p[j])-0.25) > 1e-7 {
			t.Errorf("softmax of equal logits: p[%d] = %v, want 0.25", j, p[j])
		}
	}
	// Row 2 has a huge logit: a naive exp overflows; the result is one-hot.
	if p[7] != 1 || p[4] != 0 {
		t.Errorf("softmax(1, 2, 3, 1000) = %v, want (0, 0, 0, 1)", p[4:])
	}
}

func TestSoftmaxCrossEntropy(t *testing.T) {
	// Equal logits: the loss is log k whatever the label.
	z := make([]float32, 2*10)
	if got := SoftmaxCrossEntropy(nil, z, []int{3, 7}, 2, 10); math.Abs(got-math.Log(10)) > 1e-12 {
		t.Errorf("loss of zero logits = %v, want log 10 = %v", got, math.Log(10))
	}
	// A row with logits (log 1, log 3) and label 1: p = 3/4.
	z2 := []float32{0, float32(math.Log(3))}
	if got, want := SoftmaxCrossEntropy(nil, z2, []int{1}, 1, 2), -math.Log(0.75); math.Abs(got-want) > 1e-6 {
		t.Errorf("loss = %v, want −log 0.75 = %v", got, want)
	}

	rng := newRNG(1)
	n, k := 5, 10
	z = randn(rng, n*k, 3)
	labels := []int{0, 9, 4, 4, 1}
	dz := make([]float32, n*k)
	SoftmaxCrossEntropy(dz, z, labels, n, k)
	loss := func() float64 { return SoftmaxCrossEntropy(nil, z, labels, n, k) }
	for i := range z {
		num := numGrad(z, i, 1e-2, loss)
		if e := relErr(float64(dz[i]), num, 1e-3); e > 1e-3 {
			t.Errorf("dz[%d] = %v, numerical %v (rel err %.2g)", i, dz[i], num, e)
		}
	}
}

// refConv is a direct float64 convolution (PyTorch's Conv2d semantics),
// written independently of the engine's im2col + GEMM.
func refConv(x []float64, cin, h, w int, wt, b []float64, cout, k, stride, pad int) (y []float64, ho, wo int) {
	ho, wo = (h+2*pad-k)/stride+1, (w+2*pad-k)/stride+1
	y = make([]float64, cout*ho*wo)
	for co := 0; co < cout; co++ {
		for oy := 0; oy < ho; oy++ {
			for ox := 0; ox < wo; ox++ {
				s := b[co]
				for ci := 0; ci < cin; ci++ {
					for ky := 0; ky < k; ky++ {
						for kx := 0; kx < k; kx++ {
							iy, ix := oy*stride-pad+ky, ox*stride-pad+kx
							if iy >= 0 && iy < h && ix >= 0 && ix < w {
								s += wt[((co*cin+ci)*k+ky)*k+kx] * x[(ci*h+iy)*w+ix]
							}
						}
					}
				}
				y[(co*ho+oy)*wo+ox] = s
			}
		}
	}
	return y, ho, wo
}

func refLinear(x, wt, b []float64, in, out int) []float64 {
	y := make([]float64, out)
	for o := range y {
		s := b[o]
		for i := 0; i < in; i++ {
			s += wt[o*in+i] * x[i]
		}
		y[o] = s
	}
	return y
}

func refReLU(x []float64) []float64 {
	for i, v := range x {
		x[i] = max(v, 0)
	}
	return x
}

// refLogits is the network's forward pass in float64 for one image, with
// the weights taken from the flat buffer w (laid out in Params order).
func refLogits(m *Net, w []float64, x []float32) []float64 {
	t := map[string][]float64{}
	off := 0
	for _, p := range m.Params() {
		t[p.Name] = w[off : off+p.Size()]
		off += p.Size()
	}
	a := make([]float64, len(x))
	for i, v := range x {
		a[i] = float64(v)
	}
	h := Size
	for _, l := range []struct {
		name             string
		cin, cout, strid int
	}{{"conv1", 1, 32, 1}, {"conv2", 32, 32, 2}, {"conv3", 32, 64, 1}, {"conv4", 64, 32, 2}} {
		a, h, _ = refConv(a, l.cin, h, h, t[l.name+".weight"], t[l.name+".bias"], l.cout, 3, l.strid, 1)
		refReLU(a)
	}
	f := refReLU(refLinear(a, t["fc1.weight"], t["fc1.bias"], 32*7*7, FeatureDim))
	return refLinear(f, t["fc2.weight"], t["fc2.bias"], FeatureDim, NumClasses)
}

// refLoss is the mean cross-entropy of the float64 reference network.
func refLoss(m *Net, w []float64, x []float32, labels []int) float64 {
	var loss float64
	for i, y := range labels {
		z := refLogits(m, w, x[i*Size*Size:(i+1)*Size*Size])
		mx := slices.Max(z)
		var s float64
		for _, v := range z {
			s += math.Exp(v - mx)
		}
		loss += mx + math.Log(s) - z[y]
	}
	return loss / float64(len(labels))
}

// TestNetAgainstReference checks the forward pass against a direct float64
// implementation and every parameter tensor's gradient against central
// differences of that reference. The differences are taken in float64 with
// a tiny step, so that (unlike float32 differences) they almost never
// straddle a ReLU kink.
func TestNetAgainstReference(t *testing.T) {
	rng := newRNG(2)
	m := New()
	m.Init(rng)
	for i := range m.Weights() { // non-zero biases too
		if m.Weights()[i] == 0 {
			m.Weights()[i] = float32(0.05 * rng.NormFloat64())
		}
	}
	n := 2
	x := randn(rng, n*Size*Size, 1)
	labels := []int{1, 8}
	_, logits := m.Forward(x, n)
	w64 := make([]float64, len(m.Weights()))
	for i, v := range m.Weights() {
		w64[i] = float64(v)
	}
	for i := 0; i < n; i++ {
		ref := refLogits(m, w64, x[i*Size*Size:(i+1)*Size*Size])
		for j, v := range ref {
			if d := math.Abs(float64(logits[i*NumClasses+j]) - v); d > 1e-4*max(1, math.Abs(v)) {
				t.Fatalf("image %d logit %d: engine %v, reference %v", i, j, logits[i*NumClasses+j], v)
			}
		}
	}

	// The gradient check uses one image: each loss evaluation of the
	// reference costs millions of float64 multiply-adds.
	x, labels = x[:Size*Size], labels[:1]
	_, logits = m.Forward(x, 1)
	dz := make([]float32, NumClasses)
	SoftmaxCrossEntropy(dz, logits, labels, 1, NumClasses)
	clear(m.Grads())
	m.Backward(dz, x)
	off := 0
	for _, p := range m.Params() {
		var scale float64
		for _, g := range p.G {
			scale = max(scale, math.Abs(float64(g)))
		}
		if scale == 0 {
			t.Errorf("%s: gradient is all zero", p.Name)
		}
		for c := 0; c < 2; c++ {
			i := rng.IntN(p.Size())
			const eps = 1e-6
			orig := w64[off+i]
			w64[off+i] = orig + eps
			lp := refLoss(m, w64, x, labels)
			w64[off+i] = orig - eps
			lm := refLoss(m, w64, x, labels)
			w64[off+i] = orig
			num := (lp - lm) / (2 * eps)
			if e := relErr(float64(p.G[i]), num, 0.01*scale); e > 1e-3 {
				t.Errorf("%s[%d]: analytic %.6g, numerical %.6g (rel err %.2g)", p.Name, i, p.G[i], num, e)
			}
		}
		off += p.Size()
	}
}

// TestForwardBatchIndependent checks that an image's outputs do not depend
// on what else is in the batch.
func TestForwardBatchIndependent(t *testing.T) {
	rng := newRNG(3)
	m := New()
	m.Init(rng)
	x := randn(rng, 4*Size*Size, 1)
	f, z := m.Forward(x, 4)
	f, z = slices.Clone(f), slices.Clone(z)
	f1, z1 := m.Forward(x[2*Size*Size:3*Size*Size], 1)
	for j := range f1 {
		if d := math.Abs(float64(f1[j] - f[2*FeatureDim+j])); d > 1e-5 {
			t.Fatalf("feature %d of image 2: alone %v, in batch %v", j, f1[j], f[2*FeatureDim+j])
		}
	}
	for j := range z1 {
		if d := math.Abs(float64(z1[j] - z[2*NumClasses+j])); d > 1e-5 {
			t.Fatalf("logit %d of image 2: alone %v, in batch %v", j, z1[j], z[2*NumClasses+j])
		}
	}
}

// TestPrepare checks that cropping a 32×32 image padded by data.ToFloat
// gives back exactly the 28×28 image.
func TestPrepare(t *testing.T) {
	rng := newRNG(4)
	n := 3
	ds := &data.Dataset{Name: "synthetic", N: n, C: 1, H: 28, W: 28, Pixels: make([]uint8, n*28*28)}
	for i := range ds.Pixels {
		ds.Pixels[i] = uint8(rng.IntN(256))
	}
	idx := []int{0, 1, 2}
	plain := make([]float32, n*28*28)
	ds.ToFloat(plain, idx, 0)
	for _, s := range []int{28, 30, 32, 33} {
		padded := make([]float32, n*s*s)
		ds.ToFloat(padded, idx, s)
		got, err := Prepare(padded, n, 1, s, s)
		if err != nil {
			t.Fatalf("Prepare %d×%d: %v", s, s, err)
		}
		if !slices.Equal(got, plain) {
			t.Errorf("Prepare of images padded to %d×%d differs from the 28×28 images", s, s)
		}
	}
	for _, c := range []struct{ c, h, w int }{{3, 28, 28}, {1, 24, 24}, {1, 32, 28}} {
		if _, err := Prepare(make([]float32, n*c.c*c.h*c.w), n, c.c, c.h, c.w); err == nil {
			t.Errorf("Prepare accepted %d×%d×%d images", c.c, c.h, c.w)
		}
	}
	if _, err := Prepare(make([]float32, 5), n, 1, 28, 28); err == nil {
		t.Error("Prepare accepted a buffer of the wrong length")
	}
}

func TestSaveLoad(t *testing.T) {
	rng := newRNG(5)
	m := New()
	m.Init(rng)
	dir := t.TempDir()
	for _, half := range []bool{false, true} {
		path := filepath.Join(dir, "c.safetensors")
		if err := m.Save(path, half, map[string]string{"data": "mnist"}); err != nil {
			t.Fatal(err)
		}
		got, meta, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if meta["data"] != "mnist" || meta["format"] != Format {
			t.Errorf("metadata %v", meta)
		}
		for i, w := range m.Weights() {
			want := w
			if half {
				want = weights.HalfToFloat32(weights.Float32ToHalf(w))
			}
			if got.Weights()[i] != want {
				t.Fatalf("half=%v: weight %d loaded as %v, want %v", half, i, got.Weights()[i], want)
			}
		}
	}
	// Files that are not classifiers are errors, not panics.
	other := filepath.Join(dir, "other.safetensors")
	if err := weights.Save(other, map[string]weights.Tensor{"x": weights.F32Tensor([]float32{1}, 1)}, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Load(other); err == nil {
		t.Error("Load accepted a file without the classifier format")
	}
	if _, _, err := Decode([]byte("not a safetensors file")); err == nil {
		t.Error("Decode accepted garbage")
	}
	b, _ := weights.Encode(map[string]weights.Tensor{"conv1.weight": weights.F32Tensor(make([]float32, 4), 2, 2)}, map[string]string{"format": Format})
	if _, _, err := Decode(b); err == nil {
		t.Error("Decode accepted a file with wrong shapes and missing tensors")
	}
	if _, _, err := Embedded("cifar10"); err == nil {
		t.Error("Embedded returned a classifier for cifar10")
	}
}

// stripes is a two-class toy data set the classifier must learn at once:
// horizontal (class 0) against vertical (class 1) bars at random offsets.
func stripes(n int, seed uint64) *data.Dataset {
	rng := newRNG(seed)
	ds := &data.Dataset{Name: "stripes", N: n, C: 1, H: 28, W: 28, Pixels: make([]uint8, n*28*28), Labels: make([]int, n)}
	for i := 0; i < n; i++ {
		img := ds.Pixels[i*784 : (i+1)*784]
		label, off := rng.IntN(2), rng.IntN(20)
		ds.Labels[i] = label
		for a := 0; a < 28; a++ {
			for b := off; b < off+6; b++ {
				if label == 0 {
					img[b*28+a] = 255
				} else {
					img[a*28+b] = 255
				}
			}
		}
	}
	return ds
}

func TestTrainDeterministicAndLearns(t *testing.T) {
	ds := stripes(256, 6)
	opt := TrainOptions{Epochs: 2, Batch: 32, LR: 1e-3, Seed: 9}
	var losses []float64
	a, err := Train(context.Background(), ds, opt, func(step, total int, loss float64) {
		if total != 16 {
			t.Fatalf("total steps %d, want 2 epochs × 8", total)
		}
		losses = append(losses, loss)
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Train(context.Background(), ds, opt, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Weights(), b.Weights()) {
		t.Error("two runs with the same seed gave different weights")
	}
	opt.Seed++
	c, err := Train(context.Background(), ds, opt, nil)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(a.Weights(), c.Weights()) {
		t.Error("different seeds gave the same weights")
	}
	if first, last := losses[0], losses[len(losses)-1]; !(last < first/4) {
		t.Errorf("loss went from %.3g to %.3g; want a clear decrease", first, last)
	}
	test := stripes(200, 7)
	out, err := a.ApplyDataset(test, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if acc, _ := Accuracy(out.Probs, test.Labels); acc < 0.95 {
		t.Errorf("accuracy on held-out stripes %.3f, want ≥ 0.95", acc)
	}
}

func TestTrainRejectsBadInput(t *testing.T) {
	ds := stripes(10, 1)
	for _, o := range []TrainOptions{{Epochs: 0, Batch: 1, LR: 1}, {Epochs: 1, Batch: 0, LR: 1}, {Epochs: 1, Batch: 1, LR: math.NaN()}} {
		if _, err := Train(context.Background(), ds, o, nil); err == nil {
			t.Errorf("Train accepted options %+v", o)
		}
	}
	bad := stripes(10, 1)
	bad.Labels[3] = 10
	if _, err := Train(context.Background(), bad, DefaultTrainOptions(), nil); err == nil {
		t.Error("Train accepted label 10")
	}
	big := &data.Dataset{Name: "big", N: 1, C: 1, H: 32, W: 32, Pixels: make([]uint8, 32*32), Labels: []int{0}}
	if _, err := Train(context.Background(), big, DefaultTrainOptions(), nil); err == nil {
		t.Error("Train accepted 32×32 images")
	}
}

// TestEmbeddedMNIST checks the shipped MNIST classifier on the first 1000
// test images.
func TestEmbeddedMNIST(t *testing.T) {
	m, meta, err := Embedded("mnist")
	if err != nil {
		t.Fatal(err)
	}
	if meta["data"] != "mnist" {
		t.Errorf("embedded mnist classifier says data %q", meta["data"])
	}
	ds, err := data.Load("mnist", "test", data.WithLimit(1000))
	if err != nil {
		t.Skipf("MNIST not available: %v", err)
	}
	out, err := m.ApplyDataset(ds, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	acc, err := Accuracy(out.Probs, ds.Labels)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("embedded MNIST classifier: %.2f%% on the first 1000 test images", 100*acc)
	if acc < 0.985 {
		t.Errorf("accuracy %.4f on the first 1000 MNIST test images, want ≥ 0.985", acc)
	}
}

func TestDatasets(t *testing.T) {
	have := Datasets()
	for _, want := range []string{"mnist", "fashion-mnist"} {
		if !slices.Contains(have, want) {
			t.Errorf("no classifier ships for %s (have %v)", want, have)
		}
	}
}

func TestLeastSure(t *testing.T) {
	probs := [][]float64{
		{0.9, 0.1},   // 0: sure
		{0.5, 0.5},   // 1: least sure
		{0.3, 0.7},   // 2
		{0.6, 0.4},   // 3
		{0.55, 0.45}, // 4: as sure as 5, earlier
		{0.45, 0.55}, // 5
	}
	for _, c := range []struct {
		k    int
		want []int
	}{
		{0, []int{}},
		{-1, []int{}},
		{1, []int{1}},
		{4, []int{1, 4, 5, 3}},
		{6, []int{1, 4, 5, 3, 2, 0}},
		{99, []int{1, 4, 5, 3, 2, 0}},
	} {
		if got := LeastSure(probs, c.k); !slices.Equal(got, c.want) {
			t.Errorf("LeastSure(k=%d) = %v, want %v", c.k, got, c.want)
		}
	}
}
