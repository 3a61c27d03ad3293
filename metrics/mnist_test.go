package metrics_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/ddpm-go/ddpm/classifier"
	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/metrics"
)

// mnistTest loads the first n MNIST test images and the shipped MNIST
// classifier, or skips when the data are not on this machine.
func mnistTest(t *testing.T, n int) (*data.Dataset, *classifier.Net) {
	t.Helper()
	ds, err := data.Load("mnist", "test", data.WithLimit(n))
	if err != nil {
		t.Skipf("MNIST not available: %v", err)
	}
	m, _, err := classifier.Embedded("mnist")
	if err != nil {
		t.Fatal(err)
	}
	return ds, m
}

// noisy adds N(0, σ²) noise to every pixel and clips to [−1, 1].
func noisy(x []float32, sigma float64, rng *rand.Rand) []float32 {
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = float32(math.Max(-1, math.Min(1, float64(v)+sigma*rng.NormFloat64())))
	}
	return y
}

// blurred applies a 3×3 box blur (edges replicated) passes times.
func blurred(x []float32, n, passes int) []float32 {
	const s = classifier.Size
	y := append([]float32(nil), x...)
	tmp := make([]float32, s*s)
	for range passes {
		for i := range n {
			img := y[i*s*s : (i+1)*s*s]
			for r := range s {
				for c := range s {
					var sum float32
					for dr := -1; dr <= 1; dr++ {
						for dc := -1; dc <= 1; dc++ {
							rr, cc := min(max(r+dr, 0), s-1), min(max(c+dc, 0), s-1)
							sum += img[rr*s+cc]
						}
					}
					tmp[r*s+c] = sum / 9
				}
			}
			copy(img, tmp)
		}
	}
	return y
}

// TestDegradationsGrow feeds real MNIST test digits, clean and degraded,
// through the shipped classifier and checks that FD and KID against other
// real digits grow with the amount of noise and of blur.
func TestDegradationsGrow(t *testing.T) {
	const n = 1000
	ds, m := mnistTest(t, 2*n)
	idx := func(lo, hi int) []int {
		s := make([]int, hi-lo)
		for i := range s {
			s[i] = lo + i
		}
		return s
	}
	ref, err := m.ApplyDataset(ds, idx(0, n), nil)
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, n*classifier.Size*classifier.Size)
	ds.ToFloat(x, idx(n, 2*n), 0)
	rng := rand.New(rand.NewPCG(1, 2))
	score := func(imgs []float32) (fd, kid, se float64) {
		out, err := m.Apply(imgs, n, nil)
		if err != nil {
			t.Fatal(err)
		}
		if fd, err = metrics.FD(ref.Features, out.Features); err != nil {
			t.Fatal(err)
		}
		if kid, se, err = metrics.KID(ref.Features, out.Features, 0, rng); err != nil {
			t.Fatal(err)
		}
		return fd, kid, se
	}
	for _, series := range []struct {
		name   string
		levels []string
		images [][]float32
	}{
		{"noise", []string{"clean", "σ=0.25", "σ=0.5"}, [][]float32{x, noisy(x, 0.25, rng), noisy(x, 0.5, rng)}},
		{"blur", []string{"clean", "1 box blur", "3 box blurs"}, [][]float32{x, blurred(x, n, 1), blurred(x, n, 3)}},
	} {
		prevFD, prevKID := -1.0, math.Inf(-1)
		for i, imgs := range series.images {
			fd, kid, se := score(imgs)
			t.Logf("%s %-11s FD %8.3f  KID %.4f ± %.4f", series.name, series.levels[i], fd, kid, se)
			if i == 0 && math.Abs(kid) > 3*se {
				t.Errorf("clean digits: KID %.4g ± %.4g, want 0 within 3 stderr", kid, se)
			}
			if !(fd > prevFD) || !(kid > prevKID) {
				t.Errorf("%s %s: FD %.4g, KID %.4g do not exceed the previous level's %.4g, %.4g", series.name, series.levels[i], fd, kid, prevFD, prevKID)
			}
			if i > 0 && kid < 3*se {
				t.Errorf("%s %s: KID %.4g ± %.4g, want clearly above 0", series.name, series.levels[i], kid, se)
			}
			prevFD, prevKID = fd, kid
		}
	}
}

// TestRealMNISTFloor checks the statistics of real data against real data:
// the Inception Score of the 10 000 test digits is near the number of
// classes (the classifier is confident and the classes are balanced), and
// KID between two random halves of the test set is 0 within its error.
func TestRealMNISTFloor(t *testing.T) {
	ds, m := mnistTest(t, 0)
	out, err := m.ApplyDataset(ds, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	mean, std, err := metrics.InceptionScore(out.Probs, metrics.ISSplits)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("IS of the %d MNIST test images: %.3f ± %.3f", ds.N, mean, std)
	if mean < 9.8 || mean > 10 || std > 0.1 {
		t.Errorf("IS of the MNIST test set = %.3f ± %.3f, want ≈ 9.9 ± small", mean, std)
	}

	rng := rand.New(rand.NewPCG(3, 4))
	perm := rng.Perm(ds.N)
	var a, b [][]float64
	for i, k := range perm {
		if i < ds.N/2 {
			a = append(a, out.Features[k])
		} else {
			b = append(b, out.Features[k])
		}
	}
	kid, se, err := metrics.KID(a, b, 0, rng)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := metrics.FD(a, b)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("two random halves of the MNIST test set: KID %.5f ± %.5f, FD %.4f", kid, se, fd)
	if math.Abs(kid) > 3*se {
		t.Errorf("KID of two halves of the MNIST test set = %.4g ± %.4g, want 0 within 3 stderr", kid, se)
	}
}
