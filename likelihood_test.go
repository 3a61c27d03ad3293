package ddpm_test

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/model/unet"
)

// tinyPipeline is an untrained tiny1 U-Net (32×32 grey, MNIST padded) on a
// process of T = 5 steps.
func tinyPipeline(t *testing.T) *ddpm.Pipeline {
	t.Helper()
	cfg, err := unet.ConfigByName("tiny1")
	if err != nil {
		t.Fatal(err)
	}
	net, err := unet.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	net.Init(rand.New(rand.NewPCG(1, 2)))
	dc := diffusion.DefaultConfig()
	dc.T = 5
	p, err := ddpm.New(net, dc)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestEvaluateBPD: the report is the bound of BitsPerDim on the same
// images, scaled to the data's 28×28 dimensions, with the decoder at an
// exact x̂0 beside it; bad choices wrap ErrInvalidOption.
func TestEvaluateBPD(t *testing.T) {
	p := tinyPipeline(t)
	begun := 0
	o := ddpm.EvalBPDOptions{Data: "mnist", N: 2, BPDOptions: ddpm.BPDOptions{Batch: 3, Seed: 4}, Begin: func(n int) { begun = n }}
	r, err := p.EvaluateBPD(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if begun != 2 || r.N != 2 || r.T != 5 || r.Split != "test" || r.Data != "mnist" || r.Dims != 32*32 || r.DataDims != 28*28 || r.Seed != 4 {
		t.Errorf("begun %d; report %+v", begun, r)
	}
	x0, err := p.DataTensor("mnist", "test", 2)
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.BitsPerDim(context.Background(), x0, o.BPDOptions)
	if err != nil {
		t.Fatal(err)
	}
	want := b.Summary(32.0 * 32 / (28 * 28))
	if r.TotalBPD != want.TotalBPD || r.DecoderBPD != want.DecoderBPD || len(r.PerTBPD) != 5 {
		t.Errorf("total %v, decoder %v; BitsPerDim gives %v, %v", r.TotalBPD, r.DecoderBPD, want.TotalBPD, want.DecoderBPD)
	}
	if !(r.DecoderAtData > 0 && r.DecoderAtData < r.DecoderBPD) || math.IsInf(r.DecoderAtData, 0) {
		t.Errorf("decoder at an exact x̂0 %v, measured %v", r.DecoderAtData, r.DecoderBPD)
	}
	var table bytes.Buffer
	r.WriteTable(&table)
	for _, line := range []string{"NLL bound on the first 2 images of mnist (test), T = 5", "padded from 28×28 to 32×32", "total L", "L_0 with μ = x0"} {
		if !strings.Contains(table.String(), line) {
			t.Errorf("table lacks %q:\n%s", line, table.String())
		}
	}

	for _, bad := range []ddpm.EvalBPDOptions{
		{Data: "mnist", N: -1}, {Data: "mnist", N: 10001}, {Data: "mnist", Split: "val", N: 1},
	} {
		if _, err := p.EvaluateBPD(context.Background(), bad); !errors.Is(err, ddpm.ErrInvalidOption) {
			t.Errorf("%+v: %v, want ErrInvalidOption", bad, err)
		}
	}
	if _, err := p.EvaluateBPD(context.Background(), ddpm.EvalBPDOptions{N: 1}); !errors.Is(err, ddpm.ErrNoTrainingData) {
		t.Errorf("no data named for an in-memory model: %v, want ErrNoTrainingData", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.EvaluateBPD(ctx, ddpm.EvalBPDOptions{Data: "mnist", N: 1}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}
