package ablation

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/model/unet"
)

// TestClassifierFD: the quality hook samples a model, runs the classifier
// on the samples (cropping the 32×32 tiny1 images to 28×28) and compares
// features, reproducibly; a data set without a shipped classifier is an
// error up front.
func TestClassifierFD(t *testing.T) {
	cfg, err := unet.ConfigByName("tiny1")
	if err != nil {
		t.Fatal(err)
	}
	m, err := unet.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.Init(rand.New(rand.NewPCG(1, 2)))
	dc := diffusion.DefaultConfig()
	dc.T = 4
	d, err := diffusion.New(dc)
	if err != nil {
		t.Fatal(err)
	}
	q, err := ClassifierFD("mnist", 20, 100, 8, 3, true)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(q.Name, "20 samples") {
		t.Errorf("name %q", q.Name)
	}
	a, err := q.Measure(context.Background(), m, d)
	if err != nil {
		t.Fatal(err)
	}
	if !(a > 0) || math.IsInf(a, 0) {
		t.Errorf("FD %v", a)
	}
	// Same seed, same samples: the measure is reproducible.
	if b, err := q.Measure(context.Background(), m, d); err != nil || b != a {
		t.Errorf("second measure %v (%v), first %v", b, err, a)
	}
	for _, bad := range []struct {
		data     string
		n, batch int
	}{{"cifar10:/nowhere", 20, 8}, {"mnist", 1, 8}, {"mnist", 20, 0}} {
		if _, err := ClassifierFD(bad.data, bad.n, 0, bad.batch, 0, true); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

func TestUnstable(t *testing.T) {
	if k := Unstable([]Result{{Status: StatusOK}, {Status: StatusUnstable}, {Status: StatusUnstable}}); k != 2 {
		t.Errorf("%d unstable rows, want 2", k)
	}
}
