package train

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/imgio"
	"github.com/ddpm-go/ddpm/model/unet"
)

// PreviewName is the preview grid's file name in a run directory.
const PreviewName = "preview.png"

// PreviewSteps is the number of DDIM steps a preview takes (fewer when
// the run's T is smaller).
const PreviewSteps = 20

// previewSeed seeds every preview's noise ("prev"), so that successive
// previews of a run show the same starting noise turning into images as
// training goes on.
const previewSeed = 0x70726576

// Preview writes a grid of PreviewImages samples of the run's EMA weights
// to path, atomically (a viewer never sees half a picture): deterministic
// DDIM (η = 0) over PreviewSteps evenly spaced steps from a fixed seed.
// It costs PreviewImages·PreviewSteps forward passes of one image, about
// as much as 3–4 training steps at batch 32, and leaves the training
// state (weights, Adam, EMA, random stream) untouched, so previews do not
// change the run.
func (tr *Trainer) Preview(ctx context.Context, path string) error {
	if tr.preview == nil {
		// Temporary files of a writer that was killed; this process is
		// the run's only writer.
		if stale, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")); len(stale) > 0 {
			for _, f := range stale {
				os.Remove(f)
			}
		}
		m, err := unet.New(tr.UCfg)
		if err != nil {
			return fmt.Errorf("preview: %w", err)
		}
		tr.preview = m
	}
	copy(tr.preview.Weights(), tr.EMA.W)
	keep, err := diffusion.SpacedIndices(tr.Diff.T, min(PreviewSteps, tr.Diff.T))
	if err != nil {
		return fmt.Errorf("preview: %w", err)
	}
	n, c, r := PreviewImages, tr.UCfg.InCh, tr.UCfg.Res
	rng := rand.New(rand.NewPCG(previewSeed, 0))
	x := make([]float32, n*c*r*r)
	diffusion.FillNormal(x, rng)
	if err := tr.Diff.SampleDDIM(ctx, tr.preview, x, n, keep, 0, rng, diffusion.Hooks{}); err != nil {
		return fmt.Errorf("preview: %w", err)
	}
	if err := imgio.SaveGrid(path, x, n, c, r, r, 4); err != nil {
		return fmt.Errorf("preview: %w", err)
	}
	return nil
}
