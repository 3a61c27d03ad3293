package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/ddpm-go/ddpm/classifier"
	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/internal/progress"
)

func init() {
	register("classifier", "train or evaluate the feature classifier of the quality metrics", runClassifier)
}

const classifierUsage = `usage: ddpm classifier <train|eval> [flags]

  train   train the classifier on a data set's train split and save it
          ddpm classifier train --data mnist --out mnist.safetensors [--epochs 3] [--seed 1]
  eval    print a classifier's accuracy on the test split
          ddpm classifier eval --data mnist [--weights FILE]`

func runClassifier(args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Println(classifierUsage)
		if len(args) == 0 {
			return usageErr("name an action: train or eval")
		}
		return nil
	}
	switch args[0] {
	case "train":
		return runClassifierTrain(args[1:])
	case "eval":
		return runClassifierEval(args[1:])
	}
	return usageErr("unknown action %q (want train or eval)", args[0])
}

func runClassifierTrain(args []string) error {
	fs := newFlags("classifier train", "--data mnist|fashion-mnist --out FILE [flags]")
	o := classifier.DefaultTrainOptions()
	spec := fs.String("data", "", "data set: mnist or fashion-mnist (required)")
	out := fs.String("out", "", "weights file to write (required)")
	fs.IntVar(&o.Epochs, "epochs", o.Epochs, "passes over the train split")
	fs.IntVar(&o.Batch, "batch", o.Batch, "images per step")
	fs.Float64Var(&o.LR, "lr", o.LR, "peak Adam learning rate (cosine-decayed to 0)")
	fs.Uint64Var(&o.Seed, "seed", o.Seed, "random seed (training is deterministic given it)")
	f32 := fs.Bool("f32", false, "store float32 weights instead of float16")
	quiet := fs.Bool("quiet", false, "no progress bar")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *spec == "" || *out == "" {
		return usageErr("--data and --out are required")
	}
	if err := o.Validate(); err != nil {
		return usageErr("%v", err)
	}
	if err := checkFileOut("out", *out); err != nil {
		return err
	}
	train, test, err := loadSplits(*spec)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(os.Stderr, "training the classifier on %s (%s), %s, batch %d, lr %g, seed %d\n",
		*spec, plural(train.N, "image"), plural(o.Epochs, "epoch"), o.Batch, o.LR, o.Seed)
	start := time.Now()
	bar := progress.New(o.Epochs*((train.N+o.Batch-1)/o.Batch), "", "step", *quiet)
	var mean float64
	m, err := classifier.Train(ctx, train, o, func(step, total int, loss float64) {
		if step == 1 {
			mean = loss
		}
		mean = 0.98*mean + 0.02*loss
		bar.Describe(fmt.Sprintf("loss %.4f", mean))
		bar.Add(1)
	})
	if err != nil {
		return err
	}
	bar.Finish()
	elapsed := time.Since(start).Round(time.Second)
	acc, err := testAccuracy(m, test, *quiet)
	if err != nil {
		return err
	}
	storedAcc := acc
	if !*f32 {
		// Score what will be written: float16 rounding must not cost accuracy.
		m.RoundToHalf()
		if storedAcc, err = testAccuracy(m, test, true); err != nil {
			return err
		}
	}
	meta := map[string]string{
		"data": *spec, "epochs": strconv.Itoa(o.Epochs), "batch": strconv.Itoa(o.Batch),
		"lr": strconv.FormatFloat(o.LR, 'g', -1, 64), "seed": strconv.FormatUint(o.Seed, 10),
		"train_images":  strconv.Itoa(train.N),
		"test_accuracy": strconv.FormatFloat(storedAcc, 'f', 4, 64),
	}
	if err := m.Save(*out, !*f32, meta); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "trained in %s; test accuracy %.2f%% (float32), %.2f%% as stored; wrote %s\n",
		elapsed, 100*acc, 100*storedAcc, *out)
	return nil
}

func runClassifierEval(args []string) error {
	fs := newFlags("classifier eval", "--data mnist|fashion-mnist [--weights FILE]")
	spec := fs.String("data", "", "data set: mnist or fashion-mnist (required)")
	path := fs.String("weights", "", "classifier weights file (default: the one shipped for --data)")
	n := fs.Int("n", 0, "score only the first N test images (0: all)")
	quiet := fs.Bool("quiet", false, "no progress bar")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *spec == "" {
		return usageErr("--data is required")
	}
	if *n < 0 {
		return usageErr("--n must be ≥ 0")
	}
	m, err := loadClassifier(*spec, *path)
	if err != nil {
		return err
	}
	test, err := data.Load(*spec, "test", data.WithLimit(*n))
	if err != nil {
		return err
	}
	acc, err := testAccuracy(m, test, *quiet)
	if err != nil {
		return err
	}
	fmt.Printf("test accuracy on %s: %.2f%% (%s)\n", *spec, 100*acc, plural(test.N, "image"))
	return nil
}

// loadClassifier returns the classifier in path, or the one shipped for
// the data set spec when path is empty.
func loadClassifier(spec, path string) (*classifier.Net, error) {
	if path == "" {
		m, _, err := classifier.Embedded(spec)
		return m, err
	}
	m, _, err := classifier.Load(path)
	return m, err
}

// loadSplits loads the train and the test split of the data set spec.
func loadSplits(spec string) (train, test *data.Dataset, err error) {
	if train, err = data.Load(spec, "train"); err != nil {
		return nil, nil, err
	}
	if test, err = data.Load(spec, "test"); err != nil {
		return nil, nil, err
	}
	return train, test, nil
}

// testAccuracy scores m on every image of the labelled set ds.
func testAccuracy(m *classifier.Net, ds *data.Dataset, quiet bool) (float64, error) {
	bar := progress.New(ds.N, "classifying "+ds.Name+" test images", "img", quiet)
	out, err := m.ApplyDataset(ds, nil, func(done int) { bar.Set(done) })
	if err != nil {
		return 0, err
	}
	bar.Finish()
	return classifier.Accuracy(out.Probs, ds.Labels)
}
