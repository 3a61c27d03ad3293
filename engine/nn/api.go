// Package nn holds the engine's layers. Each layer has a Forward and a
// Backward that can be read top to bottom, in the spirit of llm.c: tensors are
// flat float32 slices in NCHW order, parameters and their gradients are views
// into the model's flat buffers (see Param and Bind), Backward overwrites the
// input gradient and *accumulates* into parameter gradients (the caller zeroes
// the gradient buffer once per step). A layer instance is used once per
// forward pass and keeps what its backward needs (and its scratch buffers,
// grown once and reused) inside itself.
//
// Layers with parameters: Conv2d, Linear, GroupNorm, AttnBlock (Dropout has a
// mask but no parameters). Stateless kernels: SiLU, Upsample2x, Concat, Add,
// TimestepEmbedding, MSELoss. The semantics follow PyTorch's (nn.Conv2d,
// nn.Linear, nn.GroupNorm, nn.Dropout, F.interpolate nearest, torch.cat) so
// that weights and gradients can be compared with the PyTorch reference
// element for element.
//
// A layer's Backward takes the same input its Forward saw; the caller keeps
// that activation alive and unchanged in between (that is what lets the
// layers save only small statistics instead of copies of their inputs).
package nn

// Param is one named parameter tensor. W and G are views into the model's
// flat parameter and gradient buffers, set by Bind. Shape uses PyTorch's
// layout: conv [Cout, Cin, K, K], linear [Out, In], norm/bias [C].
type Param struct {
	Name  string // local name, e.g. "weight"; the model prefixes it
	Shape []int
	W, G  []float32
}

// Size is the number of elements.
func (p *Param) Size() int {
	n := 1
	for _, d := range p.Shape {
		n *= d
	}
	return n
}

// Bind points each parameter's W and G at consecutive ranges of the flat
// buffers w and g (in order) and returns the number of elements used.
func Bind(params []*Param, w, g []float32) int {
	off := 0
	for _, p := range params {
		n := p.Size()
		p.W, p.G = w[off:off+n:off+n], g[off:off+n:off+n]
		off += n
	}
	return off
}

// newParam makes an unbound parameter; Bind gives it storage.
func newParam(name string, shape ...int) *Param {
	return &Param{Name: name, Shape: shape}
}
