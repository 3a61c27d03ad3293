// Package classifier is the small convolutional network whose features the
// sample-quality metrics (package metrics) are computed on: a LeNet-style
// digit / clothing classifier trained on MNIST or Fashion-MNIST, and its
// RGB 32×32 sibling for the emoji categories (see [Arch]), built from the
// engine's layers.
//
// FID proper uses an ImageNet Inception-v3, which knows nothing useful about
// 28×28 grey digits and cannot ship with a CPU project anyway; the standard
// substitute in the diffusion literature for MNIST-like data is the
// penultimate layer of a classifier trained on the data set itself. Numbers
// computed on these features are NOT comparable with published FIDs, which
// is why the metrics call them "FD (LeNet features)".
//
// The architecture (all 3×3 convolutions with padding 1, ReLU after every
// layer but the last):
//
//	conv1   1→32             28×28
//	conv2  32→32  stride 2   14×14
//	conv3  32→64             14×14
//	conv4  64→32  stride 2    7×7
//	fc1  1568→128                   ← the features (after ReLU)
//	fc2   128→10                    ← logits; softmax gives p(y|x)
//
// Strided convolutions do the down-sampling instead of pooling layers, so
// every layer is an engine layer with a tested backward. Inputs are 28×28
// single-channel images in [−1, 1], exactly as data.Dataset.ToFloat
// produces them; see Prepare for model outputs of other sizes.
//
// The RGB network ("cnn32", for 3×32×32 images such as the emoji data set)
// is the same design one level deeper and wider:
//
//	conv1   3→32             32×32
//	conv2  32→32  stride 2   16×16
//	conv3  32→64             16×16
//	conv4  64→64  stride 2    8×8
//	conv5  64→128             8×8
//	conv6 128→64  stride 2    4×4
//	fc1  1024→128                   ← the features (after ReLU)
//	fc2   128→k                     ← logits, k classes (9 for emoji)
//
// A weights file names its architecture in its metadata ("arch"; files
// without it are the LeNet). The package-level constants Size, Channels,
// FeatureDim, NumClasses and the function Prepare describe the LeNet; a
// Net's own methods (Arch, NumClasses, Prepare) describe any network.
//
// Trained weights for the data sets ship inside the package (Embedded);
// Train and the `ddpm classifier train` command reproduce them.
package classifier

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/ddpm-go/ddpm/engine/nn"
)

// Size is the side of the square input images, Channels their channel count
// (of the LeNet; see Net.Arch for any network).
const (
	Size     = 28
	Channels = 1
)

// FeatureDim is the width of the feature layer, NumClasses the number of
// outputs (of the LeNet; every shipped network has 128 features).
const (
	FeatureDim = 128
	NumClasses = 10
)

// ConvLayer is one 3×3, padding-1 convolution (followed by ReLU) of an
// [Arch]: its output channels and stride.
type ConvLayer struct {
	Out, Stride int
}

// Arch is a network's architecture: Channels×Size×Size inputs, a stack of
// 3×3 convolutions, the feature layer fc1 and the output layer fc2.
type Arch struct {
	Name           string
	Channels, Size int
	Convs          []ConvLayer
	FeatureDim     int
	// Classes is the fixed number of outputs, or 0 when Train takes it
	// from the labels (largest label + 1).
	Classes int
}

// archs are the architectures by name.
var archs = map[string]Arch{
	"lenet28": {Name: "lenet28", Channels: 1, Size: 28, FeatureDim: FeatureDim, Classes: NumClasses,
		Convs: []ConvLayer{{32, 1}, {32, 2}, {64, 1}, {32, 2}}},
	"cnn32": {Name: "cnn32", Channels: 3, Size: 32, FeatureDim: 128,
		Convs: []ConvLayer{{32, 1}, {32, 2}, {64, 1}, {64, 2}, {128, 1}, {64, 2}}},
}

// LeNet is the name of the grey 28×28 architecture, the default.
const LeNet = "lenet28"

// ArchByName returns the architecture called name ("lenet28", "cnn32").
func ArchByName(name string) (Arch, error) {
	a, ok := archs[name]
	if !ok {
		return Arch{}, fmt.Errorf("classifier: unknown architecture %q (have lenet28, cnn32)", name)
	}
	a.Convs = slices.Clone(a.Convs)
	return a, nil
}

// ArchFor returns the architecture for c×s×s images: lenet28 for 1×28×28,
// cnn32 for 3×32×32.
func ArchFor(c, s int) (Arch, error) {
	for _, name := range []string{"lenet28", "cnn32"} {
		if a := archs[name]; a.Channels == c && a.Size == s {
			return ArchByName(name)
		}
	}
	return Arch{}, fmt.Errorf("classifier: no architecture takes %d×%d×%d images (have 1×28×28 and 3×32×32)", c, s, s)
}

// side is the feature map side after the convolutions.
func (a Arch) side() int {
	s := a.Size
	for _, l := range a.Convs {
		s = (s+2-3)/l.Stride + 1
	}
	return s
}

// Net is the classifier. Its parameters live in one flat buffer (Weights)
// in Params order. A Net keeps its activations between Forward and
// Backward, so one Net must not be used by several goroutines at once.
type Net struct {
	arch    Arch
	classes int
	convs   []*nn.Conv2d
	sides   []int // input side of each conv
	fc1     *nn.Linear
	fc2     *nn.Linear
	drop    *nn.Dropout // on the features, in training only (TrainOptions.Dropout)
	params  []*nn.Param
	w, g    []float32

	n        int  // batch size of the latest Forward
	dropping bool // the latest Forward applied dropout (its fc2 input is dropped)
	// Activations of the latest Forward, after ReLU (which runs in place:
	// ReLU's backward only needs its output): one per conv, the features
	// before and after dropout, the logits.
	acts                  [][]float32
	feat, dropped, logits []float32
	// Gradient scratch, sized for the largest activation.
	dA, dB []float32
}

// New returns the LeNet (1×28×28 inputs, 10 classes) with all parameters
// zero; call Init or load weights.
func New() *Net {
	m, err := NewArch(LeNet, NumClasses)
	if err != nil {
		panic(err)
	}
	return m
}

// NewArch returns the network of the named architecture with classes
// outputs (0: the architecture's fixed count), parameters zero.
func NewArch(name string, classes int) (*Net, error) {
	a, err := ArchByName(name)
	if err != nil {
		return nil, err
	}
	if classes == 0 {
		classes = a.Classes
	}
	if classes < 2 || a.Classes != 0 && classes != a.Classes {
		return nil, fmt.Errorf("classifier: %s with %d classes (want %s)", name, classes,
			map[bool]string{true: fmt.Sprint(a.Classes), false: "at least 2"}[a.Classes != 0])
	}
	m := &Net{arch: a, classes: classes, drop: nn.NewDropout(0)}
	s, cin := a.Size, a.Channels
	for i, l := range a.Convs {
		c := nn.NewConv2d(cin, l.Out, 3, l.Stride, 1)
		m.convs = append(m.convs, c)
		m.sides = append(m.sides, s)
		for _, p := range c.Params() {
			p.Name = fmt.Sprintf("conv%d.%s", i+1, p.Name)
			m.params = append(m.params, p)
		}
		s, _ = c.OutSize(s, s)
		cin = l.Out
	}
	m.fc1 = nn.NewLinear(cin*s*s, a.FeatureDim)
	m.fc2 = nn.NewLinear(a.FeatureDim, classes)
	for _, l := range []struct {
		prefix string
		params []*nn.Param
	}{{"fc1.", m.fc1.Params()}, {"fc2.", m.fc2.Params()}} {
		for _, p := range l.params {
			p.Name = l.prefix + p.Name
			m.params = append(m.params, p)
		}
	}
	total := 0
	for _, p := range m.params {
		total += p.Size()
	}
	m.w, m.g = make([]float32, total), make([]float32, total)
	nn.Bind(m.params, m.w, m.g)
	m.acts = make([][]float32, len(m.convs))
	return m, nil
}

// Arch is the network's architecture.
func (m *Net) Arch() Arch {
	a := m.arch
	a.Convs = slices.Clone(a.Convs)
	return a
}

// NumClasses is the number of outputs.
func (m *Net) NumClasses() int { return m.classes }

// FeatureDim is the width of the feature layer.
func (m *Net) FeatureDim() int { return m.arch.FeatureDim }

// inputLen is the number of values of one input image.
func (m *Net) inputLen() int { return m.arch.Channels * m.arch.Size * m.arch.Size }

// Params lists the parameters in file order (conv1.weight, conv1.bias, …).
func (m *Net) Params() []*nn.Param { return m.params }

// Weights is the flat parameter buffer; Grads the matching gradients.
func (m *Net) Weights() []float32 { return m.w }

// Grads is the flat gradient buffer that Backward accumulates into.
func (m *Net) Grads() []float32 { return m.g }

// Init draws He-uniform weights, U(−a, a) with a = √(6/fan_in), the
// initialisation that keeps activations at unit scale through ReLU layers,
// and zero biases. Parameters are drawn in order, so a seed gives the same
// network every time.
func (m *Net) Init(rng *rand.Rand) {
	for _, p := range m.params {
		if len(p.Shape) == 1 {
			clear(p.W)
			continue
		}
		fanIn := 1
		for _, d := range p.Shape[1:] {
			fanIn *= d
		}
		a := math.Sqrt(6 / float64(fanIn))
		for i := range p.W {
			p.W[i] = float32((2*rng.Float64() - 1) * a)
		}
	}
}

// grow returns buf with n elements, reallocating only when it is too small.
func grow(buf []float32, n int) []float32 {
	if cap(buf) < n {
		return make([]float32, n)
	}
	return buf[:n]
}

// Forward runs n images x [n, C, S, S] (the architecture's input) through
// the network and returns the features [n, FeatureDim] and the logits
// [n, NumClasses]. Both alias the Net's buffers and are overwritten by the
// next Forward.
func (m *Net) Forward(x []float32, n int) (features, logits []float32) {
	return m.forward(x, n, nil)
}

// forward is Forward; with rng set it is a training pass, which applies
// the feature dropout (drawing its mask from rng).
func (m *Net) forward(x []float32, n int, rng *rand.Rand) (features, logits []float32) {
	if len(x) != n*m.inputLen() {
		panic(fmt.Sprintf("classifier: Forward: x has %d values, want %d for %d images", len(x), n*m.inputLen(), n))
	}
	m.n = n
	in := x
	for i, c := range m.convs {
		s := m.sides[i]
		ho, wo := c.OutSize(s, s)
		m.acts[i] = grow(m.acts[i], n*c.Cout*ho*wo)
		c.Forward(m.acts[i], in, n, s, s)
		ReLUForward(m.acts[i], m.acts[i])
		in = m.acts[i]
	}
	m.feat = grow(m.feat, n*m.fc1.Out)
	m.logits = grow(m.logits, n*m.classes)
	m.fc1.Forward(m.feat, in, n)
	ReLUForward(m.feat, m.feat)
	f := m.feat
	m.dropping = rng != nil && m.drop.P > 0
	if m.dropping {
		m.dropped = grow(m.dropped, len(m.feat))
		m.drop.Forward(m.dropped, m.feat, rng, true)
		f = m.dropped
	}
	m.fc2.Forward(m.logits, f, n)
	return m.feat, m.logits
}

// Backward adds to Grads the gradient of a loss whose gradient with respect
// to the logits of the latest Forward is dLogits [n, NumClasses]; x is the
// input that Forward saw. The caller zeroes Grads once per step.
func (m *Net) Backward(dLogits, x []float32) {
	n := m.n
	largest := n * m.fc1.Out
	for _, a := range m.acts {
		largest = max(largest, len(a))
	}
	m.dA = grow(m.dA, largest)
	m.dB = grow(m.dB, largest)
	dFeat := m.dA[:n*m.fc1.Out]
	f := m.feat
	if m.dropping {
		f = m.dropped
	}
	m.fc2.Backward(dFeat, dLogits, f, n)
	if m.dropping {
		m.drop.Backward(dFeat, dFeat)
	}
	ReLUBackward(dFeat, dFeat, m.feat)
	last := len(m.convs) - 1
	d := m.dB[:len(m.acts[last])]
	m.fc1.Backward(d, dFeat, m.acts[last], n)
	ReLUBackward(d, d, m.acts[last])
	cur, other := m.dB, m.dA
	for i := last; i >= 0; i-- {
		s := m.sides[i]
		if i == 0 {
			m.convs[0].Backward(nil, d, x, n, s, s)
			break
		}
		dIn := other[:len(m.acts[i-1])]
		m.convs[i].Backward(dIn, d, m.acts[i-1], n, s, s)
		ReLUBackward(dIn, dIn, m.acts[i-1])
		d = dIn
		cur, other = other, cur
	}
}
