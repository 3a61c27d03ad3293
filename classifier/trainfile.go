package classifier

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/ddpm-go/ddpm/data"
)

// AccuracyOn is the share of the labelled images of ds that m classifies
// right. progress, when not nil, is called with the images done.
func (m *Net) AccuracyOn(ds *data.Dataset, progress func(done int)) (float64, error) {
	out, err := m.ApplyDataset(ds, nil, progress)
	if err != nil {
		return 0, err
	}
	return Accuracy(out.Probs, ds.Labels)
}

// FileOptions are the settings of [TrainFile]: the training's, how the
// weights are stored, and what it reports on the way.
type FileOptions struct {
	TrainOptions
	// Float32 stores float32 weights; by default they are rounded to
	// float16, which halves the file, and scored as stored.
	Float32 bool
	// Begin, when set, is called once the data are read, before the first
	// step, with the number of training images and of steps.
	Begin func(images, steps int)
	// Progress, when set, is called after each training step.
	Progress Progress
	// Scoring, when set, is called as the trained network classifies the
	// test split, with the images done out of total.
	Scoring func(done, total int)
}

// Trained is what [TrainFile] made and measured.
type Trained struct {
	Net         *Net
	TrainImages int
	TrainTime   time.Duration
	// Accuracy is the test accuracy of the trained float32 weights;
	// StoredAccuracy that of the weights as written (the same with
	// Float32), which the file's metadata records.
	Accuracy, StoredAccuracy float64
}

// TrainFile trains a classifier ([Train]) on the train split of the data
// set spec, scores it on the test split, and writes it to path with its
// settings and test accuracy in the metadata: how the shipped classifiers
// were made. Cancelling ctx stops between steps with ctx's error.
func TrainFile(ctx context.Context, spec, path string, o FileOptions) (*Trained, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("classifier: train: %w", err)
	}
	train, err := data.Load(spec, "train")
	if err != nil {
		return nil, err
	}
	test, err := data.Load(spec, "test")
	if err != nil {
		return nil, err
	}
	if o.Begin != nil {
		o.Begin(train.N, o.Epochs*((train.N+o.Batch-1)/o.Batch))
	}
	start := time.Now()
	m, err := Train(ctx, train, o.TrainOptions, o.Progress)
	if err != nil {
		return nil, err
	}
	r := &Trained{Net: m, TrainImages: train.N, TrainTime: time.Since(start)}
	var scoring func(int)
	if o.Scoring != nil {
		scoring = func(done int) { o.Scoring(done, test.N) }
	}
	if r.Accuracy, err = m.AccuracyOn(test, scoring); err != nil {
		return nil, err
	}
	r.StoredAccuracy = r.Accuracy
	if !o.Float32 {
		// Score what will be written: float16 rounding must not cost accuracy.
		m.RoundToHalf()
		if r.StoredAccuracy, err = m.AccuracyOn(test, nil); err != nil {
			return nil, err
		}
	}
	meta := map[string]string{
		"data": spec, "epochs": strconv.Itoa(o.Epochs), "batch": strconv.Itoa(o.Batch),
		"lr": strconv.FormatFloat(o.LR, 'g', -1, 64), "seed": strconv.FormatUint(o.Seed, 10),
		"train_images":  strconv.Itoa(train.N),
		"test_accuracy": strconv.FormatFloat(r.StoredAccuracy, 'f', 4, 64),
	}
	if o.Flip || o.Shift > 0 || o.Dropout > 0 { // recorded when used (the LeNets were trained without)
		meta["flip"], meta["shift"] = strconv.FormatBool(o.Flip), strconv.Itoa(o.Shift)
		meta["dropout"] = strconv.FormatFloat(o.Dropout, 'g', -1, 64)
	}
	if err := m.Save(path, !o.Float32, meta); err != nil {
		return nil, err
	}
	return r, nil
}
