package ddpm_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/ddpm-go/ddpm"
	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/model/unet"
	"github.com/ddpm-go/ddpm/train"
)

// Load a shipped model and sample from it with 20 DDIM steps.
func Example() {
	p, err := ddpm.Load("mnist") // a shipped name, a run directory, a checkpoint or a weights file
	if err != nil {
		log.Fatal(err)
	}
	imgs, err := p.Sample(context.Background(), 4, ddpm.SampleOptions{Sampler: ddpm.DDIM(20), Seed: 1})
	if err != nil {
		log.Fatal(err)
	}
	dir, _ := os.MkdirTemp("", "ddpm-example")
	defer os.RemoveAll(dir)
	if err := ddpm.SaveGrid(filepath.Join(dir, "samples.png"), imgs, 0); err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(imgs), "images of", imgs[0].Bounds().Dx(), "×", imgs[0].Bounds().Dy())
	// Output: 4 images of 28 × 28
}

func ExampleLoad() {
	p, err := ddpm.Load("fashion-mnist")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %d×%d, %d channel, T = %d\n", p.Source, p.Resolution(), p.Resolution(), p.Channels(), p.T())
	// Output: shipped model fashion-mnist: 28×28, 1 channel, T = 1000
}

// A full-chain sample can be cancelled through its context: it stops at
// the next network evaluation.
func ExamplePipeline_Sample_cancel() {
	p, err := ddpm.Load("mnist")
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	_, err = p.Sample(ctx, 1, ddpm.SampleOptions{Progress: func(done, total int) {
		if done == 10 {
			cancel()
		}
	}})
	fmt.Println(err)
	// Output: context canceled
}

// The likelihood bound of two test images, in bits per dimension. The bound
// takes T network evaluations per image.
func ExamplePipeline_BitsPerDim() {
	p, err := ddpm.Load("mnist")
	if err != nil {
		log.Fatal(err)
	}
	x0, err := p.DataTensor("mnist", "test", 2)
	if err != nil {
		log.Fatal(err)
	}
	res, err := p.BitsPerDim(context.Background(), x0, ddpm.BPDOptions{})
	if err != nil {
		log.Fatal(err)
	}
	s := res.Summary(1)
	fmt.Printf("%d images: %.2f bits/dim\n", s.N, s.TotalBPD)
	// Output: 2 images: 1.75 bits/dim
}

// Train a small network for a few steps (Algorithm 1) with package train,
// then load the run directory like any model and sample from it.
func Example_train() {
	opt := train.DefaultOptions()
	opt.Config, opt.Steps, opt.Batch, opt.CkptEvery, opt.PreviewEvery = "tiny1", 20, 8, 0, train.PreviewNever
	ucfg, err := unet.ConfigByName(opt.Config)
	if err != nil {
		log.Fatal(err)
	}
	ds, err := data.Load("mnist", "train", data.WithSize(ucfg.Res), data.WithChannels(ucfg.InCh))
	if err != nil {
		log.Fatal(err)
	}
	dc := diffusion.DefaultConfig()
	dc.T = 100
	tr, err := train.New(opt, ucfg, dc, ds)
	if err != nil {
		log.Fatal(err)
	}
	dir, _ := os.MkdirTemp("", "ddpm-train")
	defer os.RemoveAll(dir)
	if err := tr.Run(context.Background(), dir, nil); err != nil {
		log.Fatal(err)
	}
	p, err := ddpm.Load(dir)
	if err != nil {
		log.Fatal(err)
	}
	imgs, err := p.Sample(context.Background(), 4, ddpm.SampleOptions{Sampler: ddpm.DDIM(10)})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d steps, %d images of %d×%d\n", tr.Step, len(imgs), p.Resolution(), p.Resolution())
	// Output: 20 steps, 4 images of 32×32
}

// The bound of a test image as `ddpm eval bpd` reports it: per data
// dimension, with the decoder's cost at an exact x̂0 beside it.
func ExamplePipeline_EvaluateBPD() {
	p, err := ddpm.Load("mnist")
	if err != nil {
		log.Fatal(err)
	}
	r, err := p.EvaluateBPD(context.Background(), ddpm.EvalBPDOptions{Split: "test", N: 1})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s %s, %d image: %.2f bits/dim, decoder %.2f (%.2f at an exact x̂0)\n", r.Data, r.Split, r.N, r.TotalBPD, r.DecoderBPD, r.DecoderAtData)
	// Output: mnist test, 1 image: 1.62 bits/dim, decoder 0.60 (0.38 at an exact x̂0)
}
