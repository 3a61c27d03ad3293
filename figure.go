package ddpm

import (
	"fmt"
	"image"
	"slices"

	"github.com/ddpm-go/ddpm/diffusion"
)

// Figure is a paper figure's grid of images as data: Rows × Cols images of
// Images, row by row, for a caller to save ([Figure.Image]) or draw.
type Figure struct {
	Images     *Tensor
	Rows, Cols int
}

// Image lays the figure out as one picture, as [Grid] does.
func (f *Figure) Image() image.Image { return Grid(f.Images.Images(), f.Cols) }

// figure makes a figure of rows of cols images each, of like's shape.
func figure(like *Tensor, cols int, rows ...[]float32) *Figure {
	x := slices.Concat(rows...)
	return &Figure{Images: &Tensor{Data: x, N: len(rows) * cols, C: like.C, H: like.H, W: like.W}, Rows: len(rows), Cols: cols}
}

// Slice is images i..j−1 of t, sharing t's values.
func (t *Tensor) Slice(i, j int) *Tensor {
	d := t.C * t.H * t.W
	return &Tensor{Data: t.Data[i*d : j*d : j*d], N: j - i, C: t.C, H: t.H, W: t.W}
}

// at is the values of image i, aliasing t's.
func (t *Tensor) at(i int) []float32 {
	d := t.C * t.H * t.W
	return t.Data[i*d : (i+1)*d]
}

// tensor wraps values of whole images of the model's shape (not copied).
func (p *Pipeline) tensor(x []float32) *Tensor {
	return &Tensor{Data: x, N: len(x) / p.dims(), C: p.Channels(), H: p.Resolution(), W: p.Resolution()}
}

// checkImages reports why x is not n images (n = 0: any number ≥ 1) of the
// model's shape; what names x in the error.
func (p *Pipeline) checkImages(x *Tensor, n int, what string) error {
	switch {
	case x == nil:
		return fmt.Errorf("%w: no %s", ErrInvalidOption, what)
	case x.C != p.Channels() || x.H != p.Resolution() || x.W != p.Resolution():
		return fmt.Errorf("%w: %s of %d×%d×%d, the model takes %d×%d×%d", ErrInvalidOption, what, x.C, x.H, x.W, p.Channels(), p.Resolution(), p.Resolution())
	case x.N < 1 || (n > 0 && x.N != n):
		return fmt.Errorf("%w: %s holds %d images, want %d", ErrInvalidOption, what, x.N, max(n, 1))
	case len(x.Data) != x.N*p.dims():
		return fmt.Errorf("%w: %s has %d values, not %d images of %d", ErrInvalidOption, what, len(x.Data), x.N, p.dims())
	}
	return nil
}

// indices turns the paper's timesteps t (1..T) into diffusion indices t−1;
// nil takes def.
func (p *Pipeline) indices(ts []int, def []int) ([]int, error) {
	if ts == nil {
		return def, nil
	}
	if len(ts) == 0 {
		return nil, fmt.Errorf("%w: no timesteps", ErrInvalidOption)
	}
	idx := make([]int, len(ts))
	for k, t := range ts {
		if t < 1 || t > p.T() {
			return nil, fmt.Errorf("%w: t = %d out of range 1..%d (T)", ErrInvalidOption, t, p.T())
		}
		idx[k] = t - 1
	}
	return idx, nil
}

// stages adds the network evaluations of successive stages of one call up
// for its Progress: a stage reports done within itself, Progress sees done
// over the whole call.
type stages struct {
	progress    func(done, total int)
	done, total int
}

// next returns the Hooks of the next stage, which makes evals evaluations.
func (s *stages) next(evals int, observe diffusion.Observer) diffusion.Hooks {
	h := diffusion.Hooks{Observe: observe}
	if s.progress != nil {
		base, f, total := s.done, s.progress, s.total
		h.Progress = func(done, _ int) { f(base+done, total) }
	}
	s.done += evals
	return h
}

// steps is Σ (i+1) over the indices idx: the reverse steps from each to 0.
func steps(idx []int) int {
	n := 0
	for _, i := range idx {
		n += i + 1
	}
	return n
}
