// Package pretrained holds the diffusion models that ship inside the
// binary, so that `ddpm sample` draws images on a fresh machine with
// nothing to download or train. Each model is a weights-only safetensors
// file (the EMA weights, float16) in weights/, named after the data set it
// was trained on; its metadata carries the U-Net and diffusion configs and
// the training options (see weights/README.md for how each was made).
package pretrained

import (
	"embed"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/model/unet"
	"github.com/ddpm-go/ddpm/weights"
)

// Default is the model commands use when none is named.
const Default = "mnist"

// shipped holds the models, one file per data set. The folder also holds
// a README, so that the package builds before any weights exist.
//
//go:embed weights
var shipped embed.FS

// Names lists the shipped models in sorted order.
func Names() []string {
	entries, _ := fs.ReadDir(shipped, "weights")
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".safetensors"); ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// Has reports whether a model of that name ships.
func Has(name string) bool { return slices.Contains(Names(), name) }

// file returns the bytes of a shipped model.
func file(name string) ([]byte, error) {
	if !Has(name) {
		return nil, fmt.Errorf("pretrained: no model named %q ships (have: %s)", name, strings.Join(Names(), ", "))
	}
	return shipped.ReadFile("weights/" + name + ".safetensors")
}

// Load returns a fresh copy of the shipped model and its diffusion config.
func Load(name string) (*unet.UNet, diffusion.Config, error) {
	b, err := file(name)
	if err != nil {
		return nil, diffusion.Config{}, err
	}
	return checkpoint.DecodeModel(b, "shipped model "+name, false, nil)
}

// Metadata returns the shipped model's safetensors metadata.
func Metadata(name string) (map[string]string, error) {
	b, err := file(name)
	if err != nil {
		return nil, err
	}
	_, meta, err := weights.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("pretrained: %s: %w", name, err)
	}
	return meta, nil
}

// TrainingData returns the data-set spec the model was trained on (the
// "data" field of its recorded training options).
func TrainingData(name string) (string, error) {
	meta, err := Metadata(name)
	if err != nil {
		return "", err
	}
	data, err := checkpoint.TrainingData(meta)
	if err != nil || data == "" {
		return "", fmt.Errorf("pretrained: %s does not record its training data", name)
	}
	return data, nil
}

// Fit returns the reverse-variance fit (`--var fitted`) that ships beside
// a model, in weights/fits/<name>.safetensors, so that the shipped models
// need not be re-measured on every call (≈ 1.5 min each). ok is false when
// none ships. The fit belongs to the weights Load returns: its
// info.ModelDigest is checkpoint.WeightsDigest of them (a test checks it),
// and it was made by `ddpm fit-variance --model <name>`.
func Fit(name string) (f *diffusion.VarianceFit, info checkpoint.FitInfo, ok bool, err error) {
	if !Has(name) {
		return nil, info, false, fmt.Errorf("pretrained: no model named %q ships (have: %s)", name, strings.Join(Names(), ", "))
	}
	b, err := shipped.ReadFile("weights/fits/" + name + ".safetensors")
	if err != nil {
		return nil, info, false, nil
	}
	f, info, err = checkpoint.DecodeFit(b, "shipped variance fit of "+name)
	return f, info, err == nil, err
}
