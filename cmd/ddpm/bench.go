package main

import (
	"os"

	"github.com/ddpm-go/ddpm/internal/benchmark"
)

func init() {
	register("bench", "time a training and a sampling step of a U-Net config (optionally against PyTorch)", runBench)
}

// runBench is `ddpm bench`: the flags, then benchmark.Run.
func runBench(args []string) error {
	fs := newFlags("bench", "[--config small] [--batch 32] [--steps 10] [--json] [--torch SCRIPT]")
	o := benchmark.Options{TorchStderr: os.Stderr}
	fs.StringVar(&o.Config, "config", "small", configHelp("U-Net config"))
	fs.IntVar(&o.Batch, "batch", 32, "batch size")
	fs.IntVar(&o.Steps, "steps", 10, "timed steps of each kind (the median is reported)")
	fs.IntVar(&o.Warmup, "warmup", 2, "untimed steps first")
	fs.StringVar(&o.Mode, "mode", benchmark.Both, "train, sample or both")
	asJSON := fs.Bool("json", false, "print one JSON object")
	fs.StringVar(&o.Torch, "torch", "", "also run this PyTorch reference (torch_unet_bench.py) in the same run and report the ratio")
	fs.StringVar(&o.Python, "python", "/usr/bin/python3", "Python for --torch")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case o.Batch <= 0 || o.Steps <= 0 || o.Warmup < 0:
		return usageErr("--batch and --steps must be positive, --warmup ≥ 0")
	case o.Mode != benchmark.Train && o.Mode != benchmark.Sample && o.Mode != benchmark.Both:
		return usageErr("--mode must be train, sample or both")
	}
	if err := o.Validate(); err != nil {
		return usageErr("%v", err)
	}
	r, err := benchmark.Run(o)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(os.Stdout, r)
	}
	r.WriteTable(os.Stdout)
	return nil
}
