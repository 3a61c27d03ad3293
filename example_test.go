package ddpm_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/ddpm-go/ddpm"
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
