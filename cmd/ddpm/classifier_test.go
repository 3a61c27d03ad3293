package main

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/classifier"
	"github.com/ddpm-go/ddpm/data"
)

// writeIDX writes the first n images of ds and their labels as the IDX
// files of split ("train" or "t10k") into dir, uncompressed (the reader
// detects gzip by its magic, not by the .gz name).
func writeIDX(t *testing.T, dir, split string, ds *data.Dataset, n int) {
	t.Helper()
	var img, lbl bytes.Buffer
	binary.Write(&img, binary.BigEndian, []uint32{0x803, uint32(n), 28, 28})
	img.Write(ds.Pixels[:n*28*28])
	binary.Write(&lbl, binary.BigEndian, []uint32{0x801, uint32(n)})
	for _, l := range ds.Labels[:n] {
		lbl.WriteByte(byte(l))
	}
	if err := os.WriteFile(filepath.Join(dir, split+"-images-idx3-ubyte.gz"), img.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, split+"-labels-idx1-ubyte.gz"), lbl.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestClassifierTrainEval trains on a 512-image cut of MNIST (through
// $DDPM_MNIST_DIR) twice with one seed and checks that the files are
// identical, then scores the result with `classifier eval --weights`.
func TestClassifierTrainEval(t *testing.T) {
	train, err := data.Load("mnist", "train", data.WithLimit(512))
	if err != nil {
		t.Skipf("MNIST not available: %v", err)
	}
	test, err := data.Load("mnist", "test", data.WithLimit(200))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeIDX(t, dir, "train", train, 512)
	writeIDX(t, dir, "t10k", test, 200)
	t.Setenv("DDPM_MNIST_DIR", dir)

	out := t.TempDir()
	a, b := filepath.Join(out, "a.safetensors"), filepath.Join(out, "b.safetensors")
	for _, path := range []string{a, b} {
		if code, _ := runCaptured(t, "classifier", "train", "--quiet", "--data", "mnist", "--out", path, "--epochs", "2", "--seed", "5"); code != 0 {
			t.Fatalf("classifier train: exit status %d", code)
		}
	}
	fa, _ := os.ReadFile(a)
	fb, _ := os.ReadFile(b)
	if len(fa) == 0 || !bytes.Equal(fa, fb) {
		t.Error("two trainings with the same seed wrote different files")
	}
	_, meta, err := classifier.Load(a)
	if err != nil {
		t.Fatal(err)
	}
	if meta["data"] != "mnist" || meta["seed"] != "5" || meta["epochs"] != "2" || meta["test_accuracy"] == "" {
		t.Errorf("metadata %v", meta)
	}

	code, stdout := runCaptured(t, "classifier", "eval", "--quiet", "--data", "mnist", "--weights", a)
	if code != 0 {
		t.Fatalf("classifier eval: exit status %d", code)
	}
	acc := parseAccuracy(t, stdout)
	if want, _ := strconv.ParseFloat(meta["test_accuracy"], 64); absDiff(acc/100, want) > 1e-4 {
		t.Errorf("eval prints %.2f%%, training recorded %v", acc, want)
	}
	// 16 steps on 512 digits already beat chance (10 %) by far.
	if acc < 40 {
		t.Errorf("accuracy after 16 steps %.1f%%, want > 40%%", acc)
	}
}

// TestClassifierEvalEmbedded scores the shipped MNIST classifier on the
// first 1000 test digits through the command.
func TestClassifierEvalEmbedded(t *testing.T) {
	if _, err := data.Load("mnist", "test", data.WithLimit(1)); err != nil {
		t.Skipf("MNIST not available: %v", err)
	}
	code, stdout := runCaptured(t, "classifier", "eval", "--quiet", "--data", "mnist", "--n", "1000")
	if code != 0 {
		t.Fatalf("exit status %d", code)
	}
	if acc := parseAccuracy(t, stdout); acc < 98.5 {
		t.Errorf("shipped MNIST classifier: %.2f%% on 1000 test digits, want ≥ 98.5%%", acc)
	}
}

func TestClassifierErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"classifier"}, 2, "train or eval"},
		{[]string{"classifier", "fit"}, 2, "unknown action"},
		{[]string{"classifier", "train", "--data", "mnist"}, 2, "--out"},
		{[]string{"classifier", "train", "--data", "mnist", "--out", "x", "--epochs", "0"}, 2, "epochs"},
		{[]string{"classifier", "eval"}, 2, "--data"},
		{[]string{"classifier", "eval", "--data", "cifar10:/nowhere"}, 1, "none ships"},
		{[]string{"classifier", "eval", "--data", "mnist", "--weights", "/nowhere.safetensors"}, 1, "nowhere"},
	} {
		stderr := captureStderr(t, func() {
			if code, _ := runCaptured(t, c.args...); code != c.code {
				t.Errorf("%v: exit status %d, want %d", c.args, code, c.code)
			}
		})
		if !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("%v: stderr %q, want one line containing %q", c.args, stderr, c.want)
		}
	}
}

var accuracyRE = regexp.MustCompile(`test accuracy on \S+: ([0-9.]+)%`)

func parseAccuracy(t *testing.T, out string) float64 {
	t.Helper()
	m := accuracyRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no accuracy in %q", out)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

func absDiff(a, b float64) float64 {
	if a > b {
		return a - b
	}
	return b - a
}
