package pretrained

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/classifier"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/metrics"
)

// maxBytes is the limit on a shipped model's size.
const maxBytes = 20 << 20

// shape is what each shipped model draws, and (classes, is) the least its
// samples must reach in TestShippedModelsDrawClasses: distinct classes
// among 40 and the classifier's Inception Score. Real emoji score IS 3.4
// (docs/emoji.md: People & Body is 60 % of them), the digits and clothes
// about 9.
var shape = map[string]struct {
	ch, res, classes int
	is               float64
}{
	"mnist":         {1, 28, 7, 4},
	"fashion-mnist": {1, 28, 7, 4},
	"emoji":         {3, 32, 5, 2.5},
}

func TestShippedModels(t *testing.T) {
	names := Names()
	for want := range shape {
		if !Has(want) {
			t.Fatalf("no shipped model %q (have %v)", want, names)
		}
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			b, err := file(name)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > maxBytes {
				t.Errorf("%d bytes, more than the %d allowed", len(b), maxBytes)
			}
			m, dc, err := Load(name)
			if err != nil {
				t.Fatal(err)
			}
			want, ok := shape[name]
			if !ok {
				t.Fatalf("no expected shape for %q: add it to shape", name)
			}
			if cfg := m.Config(); cfg.InCh != want.ch || cfg.Res != want.res {
				t.Errorf("config %+v, want %d×%d×%d images", cfg, want.ch, want.res, want.res)
			}
			if _, err := diffusion.New(dc); err != nil {
				t.Errorf("diffusion config: %v", err)
			}
			for i, w := range m.Weights() {
				if math.IsNaN(float64(w)) || math.IsInf(float64(w), 0) {
					t.Fatalf("weight %d is %v", i, w)
				}
			}
			if data, err := TrainingData(name); err != nil || data != name {
				t.Errorf("TrainingData = %q, %v; want %q", data, err, name)
			}
			// The fit shipped beside it was measured on these very weights,
			// with the model's own clipping, and suits its process.
			f, info, ok, err := Fit(name)
			if err != nil || !ok {
				t.Fatalf("no usable shipped variance fit: ok %v, %v", ok, err)
			}
			if d := checkpoint.WeightsDigest(m); info.ModelDigest != d {
				t.Errorf("fit made for weights %s, the model's are %s: refit with ddpm fit-variance", info.ModelDigest, d)
			}
			if info.Clip != dc.Clip || info.Data != name {
				t.Errorf("fit info %+v, want clip %v and data %q", info, dc.Clip, name)
			}
			d, err := diffusion.New(dc)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := d.WithFit(f); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestShippedModelsDrawClasses samples a few images from each model with a
// short DDIM chain and asks the data set's classifier what they are: a
// broken, untrained or mismatched model gives noise that the classifier
// puts in few classes with low confidence, which this would catch.
func TestShippedModelsDrawClasses(t *testing.T) {
	if testing.Short() {
		t.Skip("samples 2×40 images")
	}
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			m, dc, err := Load(name)
			if err != nil {
				t.Fatal(err)
			}
			d, err := diffusion.New(dc)
			if err != nil {
				t.Fatal(err)
			}
			const n = 40
			cfg, want := m.Config(), shape[name]
			x := make([]float32, n*cfg.InCh*cfg.Res*cfg.Res)
			rng := rand.New(rand.NewPCG(1, 2))
			diffusion.FillNormal(x, rng)
			keep, err := diffusion.SpacedIndices(d.T, 20)
			if err != nil {
				t.Fatal(err)
			}
			if err := d.SampleDDIM(context.Background(), m, x, n, keep, 0, rng, diffusion.Hooks{}); err != nil {
				t.Fatal(err)
			}
			cls, _, err := classifier.Embedded(name)
			if err != nil {
				t.Fatal(err)
			}
			out, err := cls.Apply(x, n, nil)
			if err != nil {
				t.Fatal(err)
			}
			classes := map[int]bool{}
			for _, c := range classifier.Predictions(out.Probs) {
				classes[c] = true
			}
			is, _, err := metrics.InceptionScore(out.Probs, 1)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d images, %d classes, classifier IS %.2f", name, n, len(classes), is)
			if len(classes) < want.classes || is < want.is {
				t.Errorf("%d classes among %d samples, IS %.2f: want ≥ %d classes and IS ≥ %g", len(classes), n, is, want.classes, want.is)
			}
		})
	}
}
