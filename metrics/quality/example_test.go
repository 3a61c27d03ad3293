package quality_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/metrics/quality"
)

// spots draws n 28×28 grey images of one bright spot each, at a random
// place: a toy data set that needs nothing on disk.
func spots(n int, seed uint64) *data.Dataset {
	rng := rand.New(rand.NewPCG(seed, 0))
	ds := &data.Dataset{Name: "spots", N: n, C: 1, H: 28, W: 28, Pixels: make([]uint8, n*784)}
	for i := range n {
		cx, cy := 8+12*rng.Float64(), 8+12*rng.Float64()
		for y := range 28 {
			for x := range 28 {
				d2 := (float64(x)-cx)*(float64(x)-cx) + (float64(y)-cy)*(float64(y)-cy)
				ds.Pixels[i*784+y*28+x] = uint8(255 * math.Exp(-d2/18))
			}
		}
	}
	return ds
}

// Scores two generators of 100 images against a toy data set with the
// shipped MNIST classifier's features: one that draws from the data set's
// own distribution scores like the real-data floor, one that draws noise
// does not.
func ExampleEvaluate() {
	opt := quality.Options{
		Data:  "mnist", // the classifier shipped for MNIST (Classifier: nil)
		Train: spots(300, 1), Test: spots(300, 2),
		Seed: 1,
	}
	good := spots(100, 3)
	idx := make([]int, good.N)
	for i := range idx {
		idx[i] = i
	}
	x := make([]float32, 100*784)
	good.ToFloat(x, idx, 0)
	noise := make([]float32, 100*784)
	rng := rand.New(rand.NewPCG(4, 0))
	for i := range noise {
		noise[i] = float32(2*rng.Float64() - 1)
	}
	for _, g := range []struct {
		name string
		x    []float32
	}{{"same distribution", x}, {"noise", noise}} {
		opt.Source = g.name
		r, err := quality.Evaluate(context.Background(), quality.Images{X: g.x, N: 100, C: 1, H: 28, W: 28}, opt)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%s: FD within 2× the floor: %v\n", r.Source, r.FD < 2*r.Floor.FD)
	}
	// Output:
	// same distribution: FD within 2× the floor: true
	// noise: FD within 2× the floor: false
}
