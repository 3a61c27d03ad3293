package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/ddpm-go/ddpm"
	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/internal/progress"
)

func init() {
	registerEval("bpd", "negative log-likelihood bound in bits/dim on a data split (the paper's NLL)", runEvalBPD)
}

// bpdReport is what `ddpm eval bpd --json` prints.
type bpdReport = ddpm.BPDReport

func runEvalBPD(args []string) error { return evalBPD(args, os.Stdout) }

// evalBPD is runEvalBPD writing its report to w: the flags, then
// ddpm.Pipeline.EvaluateBPD.
func evalBPD(args []string, w io.Writer) error {
	fs := newFlags("eval bpd", "[--model mnist|fashion-mnist|DIR|FILE] [--data mnist] [--split test] [--n 100] [--batch 64] [--json] [--plot FILE]")
	mf := addModelFlags(fs, ddpm.DefaultModel)
	var o ddpm.EvalBPDOptions
	fs.StringVar(&o.Data, "data", "", "data set: "+data.Specs+" (default: the one the model was trained on)")
	fs.StringVar(&o.Split, "split", "test", "split to evaluate: train or test (compare them to check for overfitting)")
	fs.IntVar(&o.N, "n", 100, "evaluate the first N images of the split (emoji's in a fixed shuffled order; 0: all)")
	fs.IntVar(&o.Batch, "batch", 64, "network inputs per forward pass: (image, t) pairs, many images at one t or many t of one image")
	fs.Uint64Var(&o.Seed, "seed", 0, "seed of the x_t draws")
	asJSON := fs.Bool("json", false, "print one JSON object instead of the table")
	plotPath := fs.String("plot", "", "also write a PNG of the per-t terms to this file (.png)")
	quiet := fs.Bool("quiet", false, "no progress bar")
	if err := mf.parse(args); err != nil {
		return err
	}
	switch {
	case o.N < 0:
		return usageErr("--n must be ≥ 0 (0: the whole split), got %d", o.N)
	case o.Batch <= 0:
		return usageErr("--batch must be positive, got %d", o.Batch)
	case o.Split != "train" && o.Split != "test":
		return usageErr("--split must be train or test, got %q", o.Split)
	}
	if err := checkImageOut("plot", *plotPath, ".png"); err != nil {
		return err
	}
	p, err := mf.load(*quiet)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var bar *progress.Bar
	o.Begin = func(n int) {
		announceBPD(p, n, o.Batch, o.Split)
		bar = progress.New(n*p.T(), fmt.Sprintf("bits/dim of %d %s images", n, o.Split), "eval", *quiet)
	}
	o.Progress = func(done, _ int) { bar.Set(done) }
	r, err := p.EvaluateBPD(ctx, o)
	if err != nil {
		return bpdErr(err)
	}
	bar.Finish()
	if *plotPath != "" {
		if err := r.SavePlot(*plotPath); err != nil {
			return err
		}
	}
	if *asJSON {
		return writeJSON(w, r)
	}
	r.WriteTable(w)
	if *plotPath != "" {
		fmt.Fprintf(w, "per-t plot: %s\n", *plotPath)
	}
	return nil
}

// bpdErr says that an interrupted bound has no result, and makes a usage
// error of a library error that the flags caused: a missing data set or an
// option that does not fit the model or its data.
func bpdErr(err error) error {
	switch {
	case errors.Is(err, context.Canceled):
		return errors.New("interrupted: no result (the bound needs every t of every image)")
	case errors.Is(err, ddpm.ErrNoTrainingData):
		return usageErr("--data is required: %v", err)
	case errors.Is(err, ddpm.ErrInvalidOption):
		return usageErr("%v", strings.TrimPrefix(err.Error(), ddpm.ErrInvalidOption.Error()+": "))
	}
	return err
}

// announceBPD says up front how long the bound of count images takes when
// that is long: count·T (image, t) pairs in passes of batch, timed on the
// network. The whole test split is hours; the documented runs use --n 1000.
func announceBPD(p *ddpm.Pipeline, count, batch int, split string) {
	d, res := p.Process, p.Resolution()
	pairs := count * d.T
	b := min(batch, pairs)
	passes := (pairs + b - 1) / b
	e, ok := estimatePasses(p.Net, passes, b, p.Channels()*res*res, d.OutChannels(p.Channels())*res*res, d.T/2)
	if !ok {
		return
	}
	const few = 1000
	hint := ""
	if count > 2*few {
		hint = fmt.Sprintf("--n %d takes %s", few, approx(e.scaled((few*d.T+b-1)/b)))
	}
	announce(fmt.Sprintf("bits/dim of %s × %s, %s of %d", plural(count, split+" image"), plural(d.T, "timestep"), plural(passes, "network pass"), b), e, hint)
}
