package main

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/ddpm-go/ddpm"
	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/interop"
	"github.com/ddpm-go/ddpm/model/unet"
	"github.com/ddpm-go/ddpm/weights"
)

func init() {
	register("export", "write a run's EMA weights alone (optionally float16), as shipped models and PyTorch take them, or any model as a diffusers pipeline folder", runExport)
}

// runExport is `ddpm export`: the sampling weights of a training checkpoint
// (or a weights file, e.g. PyTorch's) as a weights-only safetensors file
// under PyTorch's names with a checksum, keeping the configs and the training
// options in its metadata so that every command still knows the model's data
// set. The shipped models were made with it.
func runExport(args []string) error {
	fs := newFlags("export", "--model DIR|FILE --out FILE [--half] [--raw] | --format diffusers --model M --out DIR")
	modelPath := fs.String("model", "", "run directory, training checkpoint or weights file (required); with --format diffusers any model: "+modelHelp)
	out := fs.String("out", "", "weights file to write (required); with --format diffusers the pipeline folder")
	format := fs.String("format", "safetensors", "safetensors (the project's weights file) or diffusers (a DDPMPipeline folder: model_index.json, unet/, scheduler/, which diffusers' DDPMPipeline.from_pretrained loads)")
	half := fs.Bool("half", false, "store float16 (half the size; the shipped models are stored so)")
	raw := fs.Bool("raw", false, "export the raw weights instead of the EMA weights")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *modelPath == "" || *out == "" {
		return usageErr("--model and --out are required")
	}
	switch {
	case *format == "diffusers" && *half:
		return usageErr("--half applies to --format safetensors (diffusers' export is float32)")
	case *format == "diffusers":
		return exportDiffusers(*modelPath, *out, *raw)
	case *format != "safetensors":
		return usageErr("--format %q: safetensors or diffusers", *format)
	}
	if err := checkFileOut("out", *out); err != nil {
		return err
	}
	path := checkpoint.Path(*modelPath)
	c, m, err := checkpoint.Load(path)
	var which string
	var step int
	switch {
	case errors.Is(err, checkpoint.ErrWeightsOnly) && *raw:
		return usageErr("--raw needs a training checkpoint; %s holds one set of weights", path)
	case errors.Is(err, checkpoint.ErrWeightsOnly):
		// A weights file (e.g. fine-tuned by PyTorch): rewritten with a
		// checksum, its metadata kept.
		if m, which, step, err = reexport(path, *out, *half); err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		w := c.EMA
		which, step = "ema", c.Step
		if *raw {
			w, which = c.Model, "raw"
		}
		copy(m.Weights(), w)
		extra := map[string]string{"train": string(c.Train), "step": strconv.Itoa(c.Step), "weights": which}
		if err := checkpoint.SaveWeights(*out, m, c.Diffusion, *half, extra); err != nil {
			return fmt.Errorf("export: %w", err)
		}
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
		*out, which, step, m.NumParams(), dtype, float64(st.Size())/1e6)
	return nil
}

// reexport writes a weights-only file again as the project's weights file,
// with a checksum, keeping its other metadata (training options, step).
func reexport(path, out string, half bool) (m *unet.UNet, which string, step int, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", 0, fmt.Errorf("export: %w", err)
	}
	_, meta, err := weights.Decode(data)
	if err != nil {
		return nil, "", 0, fmt.Errorf("export: %s: %w", path, err)
	}
	m, dc, err := checkpoint.DecodeModel(data, path, false, nil)
	if err != nil {
		return nil, "", 0, err
	}
	delete(meta, "checksum") // SaveWeights computes it, and the configs, anew
	step, _ = strconv.Atoi(meta["step"])
	if err := checkpoint.SaveWeights(out, m, dc, half, meta); err != nil {
		return nil, "", 0, fmt.Errorf("export: %w", err)
	}
	return m, cmp.Or(meta["weights"], "model"), step, nil
}

// exportDiffusers is `ddpm export --format diffusers`: any model as a
// diffusers DDPMPipeline folder (interop.ExportDiffusers).
func exportDiffusers(model, dir string, raw bool) error {
	if err := checkDirOut("out", dir); err != nil {
		return err
	}
	var opts []ddpm.Option
	if raw {
		opts = append(opts, ddpm.RawWeights())
	}
	p, err := loadPipeline(model, true, opts...)
	if err != nil {
		return err
	}
	if err := interop.ExportDiffusers(p.Net, p.ProcessConfig(), dir); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s: a diffusers DDPMPipeline of %s, %d parameters\n", dir, p.Source, p.Net.NumParams())
	return nil
}
