package nn

import "github.com/ddpm-go/ddpm/engine/gemm"

// Linear is PyTorch's nn.Linear(in, out): out = in·Wᵀ + b for n rows, with
// W stored [Out, In]. In the U-Net it only sees the timestep embedding (n =
// batch rows), so each call is one small GEMM that parallelises inside.
type Linear struct {
	In, Out int
	Weight  *Param // [Out, In]
	Bias    *Param // [Out]
}

// NewLinear makes a linear layer; its parameters are unbound until Bind.
func NewLinear(in, out int) *Linear {
	return &Linear{In: in, Out: out, Weight: newParam("weight", out, in), Bias: newParam("bias", out)}
}

// Params returns weight and bias, in PyTorch's state_dict order.
func (l *Linear) Params() []*Param { return []*Param{l.Weight, l.Bias} }

// Forward computes out [n, Out] from in [n, In]; out must not alias in.
func (l *Linear) Forward(out, in []float32, n int) {
	for r := 0; r < n; r++ {
		copy(out[r*l.Out:(r+1)*l.Out], l.Bias.W)
	}
	gemm.Sgemm(false, true, n, l.Out, l.In, 1, in, l.In, l.Weight.W, l.In, 1, out, l.Out)
}

// Backward overwrites dIn [n, In] (skipped when nil) and adds dW = dOutᵀ·in
// and dB = Σ_rows dOut into the Params' G. dIn must not alias dOut.
func (l *Linear) Backward(dIn, dOut, in []float32, n int) {
	gemm.Sgemm(true, false, l.Out, l.In, n, 1, dOut, l.Out, in, l.In, 1, l.Weight.G, l.In)
	for r := 0; r < n; r++ {
		addTo(l.Bias.G, dOut[r*l.Out:(r+1)*l.Out])
	}
	if dIn != nil {
		gemm.Sgemm(false, false, n, l.In, l.Out, 1, dOut, l.Out, l.Weight.W, l.In, 0, dIn, l.In)
	}
}
