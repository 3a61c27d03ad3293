package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/ddpm-go/ddpm/checkpoint"
)

func init() {
	register("export", "write a run's EMA weights alone (optionally float16), as shipped models and PyTorch take them", runExport)
}

// runExport is `ddpm export`: the sampling weights of a training checkpoint
// as a weights-only safetensors file under PyTorch's names, keeping the
// configs and the training options in its metadata so that every command
// still knows the model's data set. The shipped models were made with it.
func runExport(args []string) error {
	fs := newFlags("export", "--model DIR|FILE --out FILE [--half] [--raw]")
	modelPath := fs.String("model", "", "run directory or training checkpoint (required)")
	out := fs.String("out", "", "weights file to write (required)")
	half := fs.Bool("half", false, "store float16 (half the size; the shipped models are stored so)")
	raw := fs.Bool("raw", false, "export the raw weights instead of the EMA weights")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *modelPath == "" || *out == "" {
		return usageErr("--model and --out are required")
	}
	if err := checkFileOut("out", *out); err != nil {
		return err
	}
	path := checkpoint.Path(*modelPath)
	c, m, err := checkpoint.Load(path)
	if err != nil {
		return err
	}
	w, which := c.EMA, "ema"
	if *raw {
		w, which = c.Model, "raw"
	}
	copy(m.Weights(), w)
	extra := map[string]string{"train": string(c.Train), "step": strconv.Itoa(c.Step), "weights": which}
	if err := checkpoint.SaveWeights(*out, m, c.Diffusion, *half, extra); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	st, err := os.Stat(*out)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	dtype := "float32"
	if *half {
		dtype = "float16"
	}
	fmt.Fprintf(os.Stderr, "wrote %s: %s weights of step %d, %d parameters, %s, %.2f MB\n",
		*out, which, c.Step, m.NumParams(), dtype, float64(st.Size())/1e6)
	return nil
}
