package classifier

import (
	"embed"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"

	"github.com/ddpm-go/ddpm/weights"
)

// Format names the weights-file layout in its metadata.
const Format = "ddpm-classifier/1"

// Save writes the weights to path (atomically, see weights.Save) under the
// names of Params, with meta and the format in the file's metadata. half
// stores them as float16, which halves the file; the shipped classifiers
// are stored that way because rounding does not change their test accuracy
// (see weights/README.md).
func (m *Net) Save(path string, half bool, meta map[string]string) error {
	tensors := map[string]weights.Tensor{}
	for _, p := range m.params {
		t := weights.F32Tensor(p.W, p.Shape...)
		if half {
			t.DType = "F16"
		}
		tensors[p.Name] = t
	}
	md := maps.Clone(meta)
	if md == nil {
		md = map[string]string{}
	}
	md["format"] = Format
	md["arch"] = m.arch.Name
	if err := weights.Save(path, tensors, md); err != nil {
		return fmt.Errorf("classifier: %w", err)
	}
	return nil
}

// RoundToHalf rounds every weight to the nearest float16 value, so that
// the network computes exactly what it will after a Save with half set.
func (m *Net) RoundToHalf() {
	for i, w := range m.w {
		m.w[i] = weights.HalfToFloat32(weights.Float32ToHalf(w))
	}
}

// Load reads a classifier written by Save and returns it with its metadata.
func Load(path string) (*Net, map[string]string, error) {
	tensors, meta, err := weights.Load(path)
	if err != nil {
		return nil, nil, fmt.Errorf("classifier: %w", err)
	}
	m, err := fromTensors(tensors, meta)
	if err != nil {
		return nil, nil, fmt.Errorf("classifier: %s: %w", path, err)
	}
	return m, meta, nil
}

// Decode is Load from the bytes of a file.
func Decode(b []byte) (*Net, map[string]string, error) {
	tensors, meta, err := weights.Decode(b)
	if err != nil {
		return nil, nil, fmt.Errorf("classifier: %w", err)
	}
	m, err := fromTensors(tensors, meta)
	if err != nil {
		return nil, nil, fmt.Errorf("classifier: %w", err)
	}
	return m, meta, nil
}

func fromTensors(tensors map[string]weights.Tensor, meta map[string]string) (*Net, error) {
	if meta["format"] != Format {
		return nil, fmt.Errorf("not a classifier weights file (format %q, want %q)", meta["format"], Format)
	}
	arch := meta["arch"]
	if arch == "" {
		arch = LeNet // files from before the RGB network
	}
	classes := 0
	if b, ok := tensors["fc2.bias"]; ok && len(b.Shape) == 1 {
		classes = b.Shape[0]
	}
	m, err := NewArch(arch, classes)
	if err != nil {
		return nil, err
	}
	for _, p := range m.params {
		t, ok := tensors[p.Name]
		if !ok {
			return nil, fmt.Errorf("tensor %s is missing", p.Name)
		}
		if !slices.Equal(t.Shape, p.Shape) || len(t.F32) != p.Size() {
			return nil, fmt.Errorf("tensor %s has shape %v (%s), want %v", p.Name, t.Shape, t.DType, p.Shape)
		}
		copy(p.W, t.F32)
	}
	if len(tensors) != len(m.params) {
		return nil, fmt.Errorf("file holds %d tensors, the classifier has %d", len(tensors), len(m.params))
	}
	return m, nil
}

// shipped holds the trained classifiers, one file per data set, named
// after the data set spec (weights/mnist.safetensors, …). The folder also
// holds a README, so that the package builds before any weights exist.
//
//go:embed weights
var shipped embed.FS

// Datasets lists the data sets a classifier ships for.
func Datasets() []string {
	entries, _ := fs.ReadDir(shipped, "weights")
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".safetensors"); ok {
			names = append(names, n)
		}
	}
	return names
}

// Embedded returns a fresh copy of the classifier shipped for dataset
// ("mnist", "fashion-mnist" or "emoji") and its metadata.
func Embedded(dataset string) (*Net, map[string]string, error) {
	b, err := shipped.ReadFile("weights/" + dataset + ".safetensors")
	if err != nil || dataset == "" {
		return nil, nil, fmt.Errorf("classifier: none ships for data set %q (have: %s); train one with `ddpm classifier train`", dataset, strings.Join(Datasets(), ", "))
	}
	return Decode(b)
}
