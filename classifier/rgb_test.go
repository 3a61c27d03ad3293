package classifier

import (
	"bytes"
	"context"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/data"
)

// refArchLogits is any architecture's forward pass in float64 for one
// image, from the flat weights w (in Params order).
func refArchLogits(m *Net, w []float64, x []float32) []float64 {
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
	arch := m.Arch()
	h, cin := arch.Size, arch.Channels
	for i, l := range arch.Convs {
		name := "conv" + string(rune('1'+i))
		a, h, _ = refConv(a, cin, h, h, t[name+".weight"], t[name+".bias"], l.Out, 3, l.Stride, 1)
		refReLU(a)
		cin = l.Out
	}
	f := refReLU(refLinear(a, t["fc1.weight"], t["fc1.bias"], cin*h*h, arch.FeatureDim))
	return refLinear(f, t["fc2.weight"], t["fc2.bias"], arch.FeatureDim, m.NumClasses())
}

// TestRGBNetAgainstReference is TestNetAgainstReference for cnn32 with 9
// classes: logits against a direct float64 network, and a few gradient
// entries of every parameter against central differences of it.
func TestRGBNetAgainstReference(t *testing.T) {
	rng := newRNG(12)
	m, err := NewArch("cnn32", 9)
	if err != nil {
		t.Fatal(err)
	}
	m.Init(rng)
	for i := range m.Weights() {
		if m.Weights()[i] == 0 {
			m.Weights()[i] = float32(0.05 * rng.NormFloat64())
		}
	}
	const D = 3 * 32 * 32
	x := randn(rng, 2*D, 1)
	_, logits := m.Forward(x, 2)
	w64 := make([]float64, len(m.Weights()))
	for i, v := range m.Weights() {
		w64[i] = float64(v)
	}
	for i := range 2 {
		for j, v := range refArchLogits(m, w64, x[i*D:(i+1)*D]) {
			if d := math.Abs(float64(logits[i*9+j]) - v); d > 1e-4*max(1, math.Abs(v)) {
				t.Fatalf("image %d logit %d: engine %v, reference %v", i, j, logits[i*9+j], v)
			}
		}
	}
	x = x[:D]
	label := 7
	_, logits = m.Forward(x, 1)
	dz := make([]float32, 9)
	SoftmaxCrossEntropy(dz, logits, []int{label}, 1, 9)
	clear(m.Grads())
	m.Backward(dz, x)
	loss := func() float64 {
		z := refArchLogits(m, w64, x)
		mx := slices.Max(z)
		var s float64
		for _, v := range z {
			s += math.Exp(v - mx)
		}
		return mx + math.Log(s) - z[label]
	}
	off := 0
	for _, p := range m.Params() {
		var scale float64
		for _, g := range p.G {
			scale = max(scale, math.Abs(float64(g)))
		}
		if scale == 0 {
			t.Errorf("%s: gradient is all zero", p.Name)
		}
		{ // one entry per tensor: each loss is 16M float64 multiply-adds
			i := rng.IntN(p.Size())
			const eps = 1e-6
			orig := w64[off+i]
			w64[off+i] = orig + eps
			lp := loss()
			w64[off+i] = orig - eps
			lm := loss()
			w64[off+i] = orig
			num := (lp - lm) / (2 * eps)
			if e := relErr(float64(p.G[i]), num, 0.01*scale); e > 1e-3 {
				t.Errorf("%s[%d]: analytic %.6g, numerical %.6g (rel err %.2g)", p.Name, i, p.G[i], num, e)
			}
		}
		off += p.Size()
	}
}

// TestDropoutGradient checks the training pass with feature dropout: the
// gradient of fc2 must be taken on the dropped features.
func TestDropoutGradient(t *testing.T) {
	rng := newRNG(13)
	m := New()
	m.Init(rng)
	m.drop.P = 0.5
	x := randn(rng, 2*Size*Size, 1)
	labels := []int{3, 4}
	_, z := m.forward(x, 2, newRNG(1))
	dz := make([]float32, 2*NumClasses)
	SoftmaxCrossEntropy(dz, z, labels, 2, NumClasses)
	clear(m.Grads())
	m.Backward(dz, x)
	// fc2's weight gradient is dzᵀ·(dropped features).
	var want float64
	for r := range 2 {
		want += float64(dz[r*NumClasses+3]) * float64(m.dropped[r*FeatureDim+5])
	}
	if got := m.fc2.Weight.G[3*FeatureDim+5]; math.Abs(float64(got)-want) > 1e-6 {
		t.Errorf("fc2 weight gradient %v, want %v", got, want)
	}
	zeros := 0
	for _, v := range m.dropped {
		if v == 0 {
			zeros++
		}
	}
	if zeros < len(m.dropped)/3 {
		t.Errorf("dropout 0.5 zeroed %d of %d features", zeros, len(m.dropped))
	}
	// Inference ignores dropout.
	f1, _ := m.Forward(x, 2)
	f1 = slices.Clone(f1)
	f2, _ := m.Forward(x, 2)
	if !slices.Equal(f1, f2) {
		t.Error("Forward is not deterministic with dropout set")
	}
}

func TestAugment(t *testing.T) {
	const c, s = 3, 6
	img := make([]float32, c*s*s)
	for i := range img {
		img[i] = float32(i)
	}
	tmp := make([]float32, len(img))
	rng := newRNG(14)
	flips, same := 0, 0
	for range 40 {
		x := slices.Clone(img)
		augment(x, tmp, c, s, TrainOptions{Flip: true}, rng)
		mirrored := true
		for ch := range c {
			for y := range s {
				for xx := range s {
					if x[(ch*s+y)*s+xx] != img[(ch*s+y)*s+s-1-xx] {
						mirrored = false
					}
				}
			}
		}
		switch {
		case mirrored:
			flips++
		case slices.Equal(x, img):
			same++
		default:
			t.Fatalf("flip gave neither the image nor its mirror: %v", x)
		}
	}
	if flips == 0 || same == 0 {
		t.Errorf("40 random flips: %d mirrored, %d kept", flips, same)
	}
	// Shifts: the result is the image moved by some (dx, dy) within ±2,
	// the edges repeated.
	for range 20 {
		x := slices.Clone(img)
		augment(x, tmp, c, s, TrainOptions{Shift: 2}, rng)
		found := false
		for dy := -2; dy <= 2 && !found; dy++ {
			for dx := -2; dx <= 2 && !found; dx++ {
				ok := true
				for ch := range c {
					for y := range s {
						for xx := range s {
							sy, sx := min(max(y-dy, 0), s-1), min(max(xx-dx, 0), s-1)
							if x[(ch*s+y)*s+xx] != img[(ch*s+sy)*s+sx] {
								ok = false
							}
						}
					}
				}
				found = ok
			}
		}
		if !found {
			t.Fatalf("shift gave no shifted image: %v", x)
		}
	}
}

// colours is a toy RGB data set of three classes: a red, green or blue
// square at a random place on white.
func colours(n int, seed uint64) *data.Dataset {
	rng := newRNG(seed)
	const s, D = 32, 3 * 32 * 32
	ds := &data.Dataset{Name: "colours", N: n, C: 3, H: s, W: s, Pixels: make([]uint8, n*D), Labels: make([]int, n)}
	for i := range n {
		img := ds.Pixels[i*D : (i+1)*D]
		for k := range img {
			img[k] = 255
		}
		l := rng.IntN(3)
		ds.Labels[i] = l
		x0, y0 := rng.IntN(20), rng.IntN(20)
		for y := y0; y < y0+12; y++ {
			for x := x0; x < x0+12; x++ {
				for ch := range 3 {
					if ch != l {
						img[ch*s*s+y*s+x] = 0
					}
				}
			}
		}
	}
	return ds
}

func TestTrainRGB(t *testing.T) {
	ds := colours(96, 15)
	opt := TrainOptions{Epochs: 6, Batch: 16, LR: 1e-3, Seed: 3, Flip: true, Shift: 2, Dropout: 0.2}
	a, err := Train(context.Background(), ds, opt, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.Arch().Name != "cnn32" || a.NumClasses() != 3 || a.FeatureDim() != 128 {
		t.Fatalf("trained %s with %d classes, %d features", a.Arch().Name, a.NumClasses(), a.FeatureDim())
	}
	b, err := Train(context.Background(), ds, opt, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Weights(), b.Weights()) {
		t.Error("two runs with the same seed and augmentation gave different weights")
	}
	test := colours(60, 16)
	acc, err := a.AccuracyOn(test, nil)
	if err != nil {
		t.Fatal(err)
	}
	if acc < 0.9 {
		t.Errorf("accuracy on held-out colours %.3f, want ≥ 0.9", acc)
	}

	// Save and load keep the architecture and the class count.
	path := filepath.Join(t.TempDir(), "rgb.safetensors")
	if err := a.Save(path, true, map[string]string{"data": "colours"}); err != nil {
		t.Fatal(err)
	}
	got, meta, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if meta["arch"] != "cnn32" || got.Arch().Name != "cnn32" || got.NumClasses() != 3 {
		t.Errorf("loaded %s with %d classes, metadata %v", got.Arch().Name, got.NumClasses(), meta)
	}
	// Shapes: the RGB network takes exactly 3×32×32.
	if _, err := got.Prepare(make([]float32, 2*3*32*32), 2, 3, 32, 32); err != nil {
		t.Error(err)
	}
	for _, c := range [][3]int{{1, 32, 32}, {3, 28, 28}, {3, 64, 64}} {
		if _, err := got.Prepare(nil, 0, c[0], c[1], c[2]); err == nil {
			t.Errorf("cnn32 accepted %v images", c)
		}
	}
	if _, err := New().Prepare(nil, 0, 1, 32, 32); err != nil {
		t.Errorf("the LeNet refused padded 32×32 digits: %v", err)
	}
	if _, err := a.ApplyDataset(stripes(4, 1), nil, nil); err == nil {
		t.Error("cnn32 accepted 28×28 grey images")
	}
}

func TestArchErrors(t *testing.T) {
	if _, err := NewArch("resnet", 10); err == nil {
		t.Error("NewArch accepted an unknown architecture")
	}
	if _, err := NewArch(LeNet, 9); err == nil {
		t.Error("the LeNet accepted 9 classes")
	}
	if _, err := NewArch("cnn32", 1); err == nil {
		t.Error("cnn32 accepted one class")
	}
	if _, err := ArchFor(3, 64); err == nil {
		t.Error("ArchFor found a network for 3×64×64")
	}
	if m := New(); m.Arch().Name != LeNet || m.NumClasses() != NumClasses || len(m.Weights()) == 0 {
		t.Errorf("New: %s, %d classes", m.Arch().Name, m.NumClasses())
	}
}

func TestConfusion(t *testing.T) {
	probs := [][]float64{{0.9, 0.1, 0}, {0.2, 0.8, 0}, {0.6, 0.4, 0}, {0, 0.1, 0.9}, {0.1, 0.2, 0.7}}
	labels := []int{0, 1, 1, 2, 1}
	c, err := NewConfusion(probs, labels, 3)
	if err != nil {
		t.Fatal(err)
	}
	if c.Count[1][0] != 1 || c.Count[1][1] != 1 || c.Count[1][2] != 1 || math.Abs(c.Accuracy()-0.6) > 1e-12 || math.Abs(c.Recall(1)-1.0/3) > 1e-12 {
		t.Errorf("confusion %v, accuracy %g", c.Count, c.Accuracy())
	}
	var b bytes.Buffer
	if err := c.Write(&b, []string{"a", "b", "c"}, "toy"); err != nil {
		t.Fatal(err)
	}
	if out := b.String(); !strings.Contains(out, "test accuracy on toy: 60.00%") || !strings.Contains(out, "1 × b taken for a") {
		t.Errorf("output:\n%s", out)
	}
	if _, err := NewConfusion(probs, labels[:2], 3); err == nil {
		t.Error("NewConfusion accepted mismatched lengths")
	}
	if names := ClassNames("emoji", 9); names[8] != "Flags" {
		t.Errorf("emoji class names %v", names)
	}
	if names := ClassNames("mnist", 10); names[3] != "3" {
		t.Errorf("mnist class names %v", names)
	}
}
