package ddpm

import (
	"fmt"
	"math"
	"slices"

	"github.com/ddpm-go/ddpm/weights"
)

// Prediction is what the network says about a batch of x_t: the noise
// estimate ε̂(x_t, t) and the x̂0 it implies, (x_t − √(1−ᾱ_t) ε̂)/√ᾱ_t
// (eq. 15, not clipped), whatever the network's parameterisation (an
// x̂0- or v-predicting network's output is converted).
type Prediction struct {
	Eps, X0 *Tensor
}

// predictBatch is how many images Predict evaluates at once.
const predictBatch = DefaultBatch

// Predict evaluates the network on the images x at timesteps t, one per
// image. The timesteps are the network's 0-based indices 0..T−1, which are
// diffusers' timesteps (the paper's t − 1): diffusers' ε for (x, t) is
// Predict's for (x, t).
func (p *Pipeline) Predict(x *Tensor, t []int) (*Prediction, error) {
	if err := p.checkImages(x, 0, "x"); err != nil {
		return nil, err
	}
	if len(t) != x.N {
		return nil, fmt.Errorf("%w: %d timesteps for %d images", ErrInvalidOption, len(t), x.N)
	}
	for _, s := range t {
		if s < 0 || s >= p.T() {
			return nil, fmt.Errorf("%w: timestep %d out of range 0..%d (0-based, as diffusers counts)", ErrInvalidOption, s, p.T()-1)
		}
	}
	d := p.dims()
	outD := p.Net.Config().OutCh * p.Resolution() * p.Resolution()
	eps, x0 := make([]float32, len(x.Data)), make([]float32, len(x.Data))
	out := make([]float32, min(x.N, predictBatch)*outD)
	for i := 0; i < x.N; i += predictBatch {
		j := min(x.N, i+predictBatch)
		xs, ts, o := x.Data[i*d:j*d], t[i:j], out[:(j-i)*outD]
		p.Net.Predict(o, xs, ts)
		p.Process.ModelEps(eps[i*d:j*d], o, xs, ts)
		p.Process.PredictXStartFromEps(x0[i*d:j*d], xs, eps[i*d:j*d], ts)
	}
	return &Prediction{Eps: p.tensor(eps), X0: p.tensor(x0)}, nil
}

// PredictTensors is Predict on tensors as a safetensors file holds them
// (diffusers' layout): "x" [B, C, H, W] (floats) and "t" [B] or [K, B]
// (integers, or whole floats; K cases of timesteps for the same images).
// It returns "eps" and "x0", shaped [B, C, H, W] or [K, B, C, H, W], as
// float32 tensors.
func (p *Pipeline) PredictTensors(in map[string]weights.Tensor) (map[string]weights.Tensor, error) {
	x, ok := in["x"]
	if !ok || x.F32 == nil || len(x.Shape) != 4 {
		return nil, fmt.Errorf("%w: need a float tensor x [B, C, H, W], got %s", ErrInvalidOption, describe(in, "x"))
	}
	tt, ok := in["t"]
	if !ok || (len(tt.Shape) != 1 && len(tt.Shape) != 2) {
		return nil, fmt.Errorf("%w: need timesteps t [B] or [K, B], got %s", ErrInvalidOption, describe(in, "t"))
	}
	b := x.Shape[0]
	if tt.Shape[len(tt.Shape)-1] != b {
		return nil, fmt.Errorf("%w: t %v has %d timesteps per case for %d images in x %v", ErrInvalidOption, tt.Shape, tt.Shape[len(tt.Shape)-1], b, x.Shape)
	}
	steps, err := integers(tt)
	if err != nil {
		return nil, err
	}
	img := &Tensor{Data: x.F32, N: b, C: x.Shape[1], H: x.Shape[2], W: x.Shape[3]}
	var eps, x0 []float32
	for k := 0; k < len(steps)/max(b, 1); k++ {
		pr, err := p.Predict(img, steps[k*b:(k+1)*b])
		if err != nil {
			return nil, err
		}
		eps, x0 = append(eps, pr.Eps.Data...), append(x0, pr.X0.Data...)
	}
	shape := slices.Clone(x.Shape)
	if len(tt.Shape) == 2 {
		shape = append([]int{tt.Shape[0]}, shape...)
	}
	return map[string]weights.Tensor{"eps": weights.F32Tensor(eps, shape...), "x0": weights.F32Tensor(x0, slices.Clone(shape)...)}, nil
}

// integers are a tensor's values as ints: integer tensors as they are,
// float ones if every value is whole.
func integers(t weights.Tensor) ([]int, error) {
	out := make([]int, t.NumElements())
	switch {
	case t.I64 != nil:
		for i, v := range t.I64 {
			out[i] = int(v)
		}
	case t.F32 != nil:
		for i, v := range t.F32 {
			if float64(v) != math.Trunc(float64(v)) {
				return nil, fmt.Errorf("%w: timestep %g is not a whole number", ErrInvalidOption, v)
			}
			out[i] = int(v)
		}
	default:
		return nil, fmt.Errorf("%w: timesteps t hold no values", ErrInvalidOption)
	}
	return out, nil
}

// describe names what in[name] is, for errors.
func describe(in map[string]weights.Tensor, name string) string {
	t, ok := in[name]
	if !ok {
		names := make([]string, 0, len(in))
		for n := range in {
			names = append(names, n)
		}
		slices.Sort(names)
		return fmt.Sprintf("no %s (the file holds %v)", name, names)
	}
	return t.String()
}
