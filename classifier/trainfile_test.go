package classifier

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/ddpm-go/ddpm/data"
)

// writeIDX writes ds as the uncompressed IDX files of split ("train" or
// "t10k") into dir, as $DDPM_MNIST_DIR holds them (the reader detects gzip
// by its magic, not by the .gz name).
func writeIDX(t *testing.T, dir, split string, ds *data.Dataset) {
	t.Helper()
	var img, lbl bytes.Buffer
	binary.Write(&img, binary.BigEndian, []uint32{0x803, uint32(ds.N), 28, 28})
	img.Write(ds.Pixels)
	binary.Write(&lbl, binary.BigEndian, []uint32{0x801, uint32(ds.N)})
	for _, l := range ds.Labels {
		lbl.WriteByte(byte(l))
	}
	for name, b := range map[string][]byte{"images-idx3-ubyte.gz": img.Bytes(), "labels-idx1-ubyte.gz": lbl.Bytes()} {
		if err := os.WriteFile(filepath.Join(dir, split+"-"+name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTrainFile trains on stripes posing as MNIST: the hooks are called
// in order, the file holds the weights as stored with their settings and
// accuracy, and float16 storage is scored as stored.
func TestTrainFile(t *testing.T) {
	dir := t.TempDir()
	writeIDX(t, dir, "train", stripes(256, 6))
	writeIDX(t, dir, "t10k", stripes(100, 7))
	t.Setenv("DDPM_MNIST_DIR", dir)

	var images, steps, stepped, scored, total int
	o := FileOptions{TrainOptions: TrainOptions{Epochs: 2, Batch: 32, LR: 1e-3, Seed: 9},
		Begin:    func(n, s int) { images, steps = n, s },
		Progress: func(step, _ int, _ float64) { stepped = step },
		Scoring:  func(done, n int) { scored, total = done, n },
	}
	path := filepath.Join(t.TempDir(), "c.safetensors")
	r, err := TrainFile(context.Background(), "mnist", path, o)
	if err != nil {
		t.Fatal(err)
	}
	if images != 256 || steps != 16 || stepped != 16 || scored != 100 || total != 100 || r.TrainImages != 256 {
		t.Errorf("begin %d images, %d steps; %d steps taken, %d/%d scored; report %+v", images, steps, stepped, scored, total, r)
	}
	if r.Accuracy < 0.95 || r.StoredAccuracy < 0.95 {
		t.Errorf("accuracy %.3f, as stored %.3f; want ≥ 0.95 on stripes", r.Accuracy, r.StoredAccuracy)
	}
	m, meta, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if meta["data"] != "mnist" || meta["epochs"] != "2" || meta["batch"] != "32" || meta["seed"] != "9" || meta["train_images"] != "256" ||
		meta["test_accuracy"] != strconv.FormatFloat(r.StoredAccuracy, 'f', 4, 64) {
		t.Errorf("metadata %v", meta)
	}
	test, err := data.Load("mnist", "test")
	if err != nil {
		t.Fatal(err)
	}
	if acc, err := m.AccuracyOn(test, nil); err != nil || acc != r.StoredAccuracy {
		t.Errorf("the file scores %v (%v), TrainFile said %v", acc, err, r.StoredAccuracy)
	}

	o.Epochs = 0
	if _, err := TrainFile(context.Background(), "mnist", path, o); err == nil {
		t.Error("0 epochs accepted")
	}
}
