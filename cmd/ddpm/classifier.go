package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
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

// runClassifierTrain is `ddpm classifier train`: the flags, then
// classifier.TrainFile.
func runClassifierTrain(args []string) error {
	fs := newFlags("classifier train", "--data mnist|fashion-mnist|emoji --out FILE [flags]")
	o := classifier.FileOptions{TrainOptions: classifier.DefaultTrainOptions()}
	spec := fs.String("data", "", "data set: mnist, fashion-mnist or emoji (required)")
	out := fs.String("out", "", "weights file to write (required)")
	fs.IntVar(&o.Epochs, "epochs", o.Epochs, "passes over the train split")
	fs.IntVar(&o.Batch, "batch", o.Batch, "images per step")
	fs.Float64Var(&o.LR, "lr", o.LR, "peak Adam learning rate (cosine-decayed to 0)")
	fs.Uint64Var(&o.Seed, "seed", o.Seed, "random seed (training is deterministic given it)")
	fs.BoolVar(&o.Flip, "flip", o.Flip, "mirror training images left-right at random (augmentation)")
	fs.IntVar(&o.Shift, "shift", o.Shift, "shift training images by up to this many pixels at random (augmentation)")
	fs.Float64Var(&o.Dropout, "dropout", o.Dropout, "dropout on the features in training")
	fs.BoolVar(&o.Float32, "f32", false, "store float32 weights instead of float16")
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	bars := &classifierBars{spec: *spec, o: &o, quiet: *quiet}
	o.Begin, o.Progress, o.Scoring = bars.begin, bars.step, bars.scoring
	r, err := classifier.TrainFile(ctx, *spec, *out, o)
	if err != nil {
		return err
	}
	bars.finish()
	fmt.Fprintf(os.Stderr, "trained in %s; test accuracy %.2f%% (float32), %.2f%% as stored; wrote %s\n",
		r.TrainTime.Round(time.Second), 100*r.Accuracy, 100*r.StoredAccuracy, *out)
	return nil
}

// classifierBars draws classifier.TrainFile's progress: the settings and a
// bar over the steps with the loss smoothed over about 50 steps, then a bar
// over the test images classified.
type classifierBars struct {
	spec        string
	o           *classifier.FileOptions
	quiet       bool
	train, test *progress.Bar
	loss        float64
}

func (b *classifierBars) begin(images, steps int) {
	fmt.Fprintf(os.Stderr, "training the classifier on %s (%s), %s, batch %d, lr %g, seed %d\n",
		b.spec, plural(images, "image"), plural(b.o.Epochs, "epoch"), b.o.Batch, b.o.LR, b.o.Seed)
	b.train = progress.New(steps, "", "step", b.quiet)
}

func (b *classifierBars) step(step, _ int, loss float64) {
	if step == 1 {
		b.loss = loss
	}
	b.loss = 0.98*b.loss + 0.02*loss
	b.train.Describe(fmt.Sprintf("loss %.4f", b.loss))
	b.train.Add(1)
}

func (b *classifierBars) scoring(done, total int) {
	if b.test == nil {
		b.train.Finish()
		b.test = progress.New(total, "classifying "+b.spec+" test images", "img", b.quiet)
	}
	b.test.Set(done)
}

func (b *classifierBars) finish() {
	if b.test != nil {
		b.test.Finish()
	}
}

func runClassifierEval(args []string) error {
	fs := newFlags("classifier eval", "--data mnist|fashion-mnist|emoji [--weights FILE]")
	spec := fs.String("data", "", "data set: mnist, fashion-mnist or emoji (required)")
	path := fs.String("weights", "", "classifier weights file (default: the one shipped for --data)")
	n := fs.Int("n", 0, "score only the first N test images (0: all)")
	quiet := fs.Bool("quiet", false, "no progress bar")
	confusion := fs.Bool("confusion", false, "also print the confusion matrix and each class's accuracy")
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
	if *confusion {
		out, err := m.ApplyDataset(test, nil, nil)
		if err != nil {
			return err
		}
		c, err := classifier.NewConfusion(out.Probs, test.Labels, m.NumClasses())
		if err != nil {
			return err
		}
		return c.Write(os.Stdout, classifier.ClassNames(*spec, m.NumClasses()), fmt.Sprintf("%s, %s", *spec, plural(test.N, "test image")))
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

// testAccuracy scores m on every image of the labelled set ds.
func testAccuracy(m *classifier.Net, ds *data.Dataset, quiet bool) (float64, error) {
	bar := progress.New(ds.N, "classifying "+ds.Name+" test images", "img", quiet)
	acc, err := m.AccuracyOn(ds, func(done int) { bar.Set(done) })
	if err != nil {
		return 0, err
	}
	bar.Finish()
	return acc, nil
}
