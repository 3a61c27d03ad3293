package main

import (
	"os"

	"github.com/ddpm-go/ddpm/internal/benchmark"
)

func init() {
	register("bench", "time a training and a sampling step of a U-Net config (optionally against PyTorch), or ddpm serve's batching", runBench)
}

// runBench is `ddpm bench`: the flags, then benchmark.Run.
func runBench(args []string) error {
	fs := newFlags("bench", "[--config small] [--batch 32] [--steps 10] [--json] [--torch SCRIPT] | --mode serve [--clients 16] [--ddim-steps 20] [--rounds 5] [--soak 10m]")
	o := benchmark.Options{TorchStderr: os.Stderr}
	fs.StringVar(&o.Config, "config", "small", configHelp("U-Net config"))
	fs.IntVar(&o.Batch, "batch", 32, "batch size")
	fs.IntVar(&o.Steps, "steps", 10, "timed steps of each kind (the median is reported)")
	fs.IntVar(&o.Warmup, "warmup", 2, "untimed steps first")
	fs.StringVar(&o.Mode, "mode", benchmark.Both, "train, sample, both, or serve: images/s of ddpm serve with --clients requests at once against one at a time, and a lone client's latency")
	so := benchmark.ServeOptions{Log: os.Stderr}
	fs.StringVar(&so.Model, "model", "mnist", "serve: the model served")
	fs.IntVar(&so.Clients, "clients", 16, "serve: clients, one image each")
	fs.IntVar(&so.Steps, "ddim-steps", 20, "serve: DDIM steps per request")
	fs.IntVar(&so.Rounds, "rounds", 5, "serve: measured rounds of each mode, interleaved (medians are reported)")
	fs.DurationVar(&so.Soak, "soak", 0, "serve: then repeat batched rounds for this long and report RSS at its start and end")
	asJSON := fs.Bool("json", false, "print one JSON object")
	fs.StringVar(&o.Torch, "torch", "", "also run this PyTorch reference (torch_unet_bench.py) in the same run and report the ratio")
	fs.StringVar(&o.Python, "python", "/usr/bin/python3", "Python for --torch")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if o.Mode == benchmark.Serve {
		return benchServe(so, *asJSON)
	}
	switch {
	case o.Batch <= 0 || o.Steps <= 0 || o.Warmup < 0:
		return usageErr("--batch and --steps must be positive, --warmup ≥ 0")
	case o.Mode != benchmark.Train && o.Mode != benchmark.Sample && o.Mode != benchmark.Both:
		return usageErr("--mode must be train, sample, both or serve")
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

// benchServe is `ddpm bench --mode serve`: benchmark.RunServe.
func benchServe(o benchmark.ServeOptions, asJSON bool) error {
	if err := o.Validate(); err != nil {
		return usageErr("%v", err)
	}
	r, err := benchmark.RunServe(o)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(os.Stdout, r)
	}
	r.WriteTable(os.Stdout)
	return nil
}
