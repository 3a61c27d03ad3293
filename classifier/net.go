// Package classifier is the small convolutional network whose features the
// sample-quality metrics (package metrics) are computed on: a LeNet-style
// digit / clothing classifier trained on MNIST or Fashion-MNIST, built from
// the engine's layers.
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
// Trained weights for both data sets ship inside the package (Embedded);
// Train and the `ddpm classifier train` command reproduce them.
package classifier

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/ddpm-go/ddpm/engine/nn"
)

// Size is the side of the square input images, Channels their channel count.
const (
	Size     = 28
	Channels = 1
)

// FeatureDim is the width of the feature layer, NumClasses the number of
// outputs.
const (
	FeatureDim = 128
	NumClasses = 10
)

// Net is the classifier. Its parameters live in one flat buffer (Weights)
// in Params order. A Net keeps its activations between Forward and
// Backward, so one Net must not be used by several goroutines at once.
type Net struct {
	conv1, conv2, conv3, conv4 *nn.Conv2d
	fc1, fc2                   *nn.Linear
	params                     []*nn.Param
	w, g                       []float32

	n int // batch size of the latest Forward
	// Activations of the latest Forward, after ReLU (which runs in place:
	// ReLU's backward only needs its output).
	a1, a2, a3, a4, feat, logits []float32
	// Gradient scratch, sized for the largest activation.
	dA, dB []float32
}

// layerSpec names a layer's parameters in the weights file.
type layerSpec struct {
	prefix string
	params []*nn.Param
}

// New returns a network with all parameters zero; call Init or load weights.
func New() *Net {
	m := &Net{
		conv1: nn.NewConv2d(Channels, 32, 3, 1, 1),
		conv2: nn.NewConv2d(32, 32, 3, 2, 1),
		conv3: nn.NewConv2d(32, 64, 3, 1, 1),
		conv4: nn.NewConv2d(64, 32, 3, 2, 1),
		fc1:   nn.NewLinear(32*7*7, FeatureDim),
		fc2:   nn.NewLinear(FeatureDim, NumClasses),
	}
	for _, l := range []layerSpec{
		{"conv1.", m.conv1.Params()}, {"conv2.", m.conv2.Params()},
		{"conv3.", m.conv3.Params()}, {"conv4.", m.conv4.Params()},
		{"fc1.", m.fc1.Params()}, {"fc2.", m.fc2.Params()},
	} {
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
	return m
}

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

// Forward runs n images x [n, 1, 28, 28] through the network and returns
// the features [n, FeatureDim] and the logits [n, NumClasses]. Both alias
// the Net's buffers and are overwritten by the next Forward.
func (m *Net) Forward(x []float32, n int) (features, logits []float32) {
	if len(x) != n*Channels*Size*Size {
		panic(fmt.Sprintf("classifier: Forward: x has %d values, want %d for %d images", len(x), n*Channels*Size*Size, n))
	}
	m.n = n
	m.a1 = grow(m.a1, n*32*28*28)
	m.a2 = grow(m.a2, n*32*14*14)
	m.a3 = grow(m.a3, n*64*14*14)
	m.a4 = grow(m.a4, n*32*7*7)
	m.feat = grow(m.feat, n*FeatureDim)
	m.logits = grow(m.logits, n*NumClasses)

	m.conv1.Forward(m.a1, x, n, 28, 28)
	ReLUForward(m.a1, m.a1)
	m.conv2.Forward(m.a2, m.a1, n, 28, 28)
	ReLUForward(m.a2, m.a2)
	m.conv3.Forward(m.a3, m.a2, n, 14, 14)
	ReLUForward(m.a3, m.a3)
	m.conv4.Forward(m.a4, m.a3, n, 14, 14)
	ReLUForward(m.a4, m.a4)
	m.fc1.Forward(m.feat, m.a4, n)
	ReLUForward(m.feat, m.feat)
	m.fc2.Forward(m.logits, m.feat, n)
	return m.feat, m.logits
}

// Backward adds to Grads the gradient of a loss whose gradient with respect
// to the logits of the latest Forward is dLogits [n, NumClasses]; x is the
// input that Forward saw. The caller zeroes Grads once per step.
func (m *Net) Backward(dLogits, x []float32) {
	n := m.n
	m.dA = grow(m.dA, n*32*28*28)
	m.dB = grow(m.dB, n*64*14*14)
	dFeat := m.dA[:n*FeatureDim]
	m.fc2.Backward(dFeat, dLogits, m.feat, n)
	ReLUBackward(dFeat, dFeat, m.feat)
	d4 := m.dB[:n*32*7*7]
	m.fc1.Backward(d4, dFeat, m.a4, n)
	ReLUBackward(d4, d4, m.a4)
	d3 := m.dA[:n*64*14*14]
	m.conv4.Backward(d3, d4, m.a3, n, 14, 14)
	ReLUBackward(d3, d3, m.a3)
	d2 := m.dB[:n*32*14*14]
	m.conv3.Backward(d2, d3, m.a2, n, 14, 14)
	ReLUBackward(d2, d2, m.a2)
	d1 := m.dA[:n*32*28*28]
	m.conv2.Backward(d1, d2, m.a1, n, 28, 28)
	ReLUBackward(d1, d1, m.a1)
	m.conv1.Backward(nil, d1, x, n, 28, 28)
}
