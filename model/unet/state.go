package unet

import (
	"fmt"
	"slices"

	"github.com/ddpm-go/ddpm/weights"
)

// StateDict returns the parameters as named tensors (PyTorch names and
// layouts, F32). The tensors alias the model's weight buffer: save them
// before the next optimiser step, or copy them.
func (u *UNet) StateDict() map[string]weights.Tensor {
	sd := make(map[string]weights.Tensor, len(u.params))
	for _, p := range u.params {
		sd[p.Name] = weights.Tensor{DType: "F32", Shape: slices.Clone(p.Shape), F32: p.W}
	}
	return sd
}

// LoadStateDict copies every parameter from sd, which must hold exactly the
// model's parameter names with matching shapes. It checks everything before
// copying anything, so on error the model is unchanged; the error names the
// first offending tensor in state_dict order. F16/BF16/F64 tensors are
// accepted (they were decoded to float32 by package weights).
func (u *UNet) LoadStateDict(sd map[string]weights.Tensor) error {
	for _, p := range u.params {
		t, ok := sd[p.Name]
		if !ok {
			return fmt.Errorf("unet: load state dict: missing tensor %q (shape %v)", p.Name, p.Shape)
		}
		if !slices.Equal(t.Shape, p.Shape) {
			return fmt.Errorf("unet: load state dict: tensor %q has shape %v, model expects %v", p.Name, t.Shape, p.Shape)
		}
		if t.F32 == nil || len(t.F32) != p.Size() {
			return fmt.Errorf("unet: load state dict: tensor %q (%s) has %d float values, model expects %d",
				p.Name, t.DType, len(t.F32), p.Size())
		}
	}
	if len(sd) != len(u.params) {
		have := make(map[string]bool, len(u.params))
		for _, p := range u.params {
			have[p.Name] = true
		}
		var extra []string
		for name := range sd {
			if !have[name] {
				extra = append(extra, name)
			}
		}
		slices.Sort(extra)
		return fmt.Errorf("unet: load state dict: %d unexpected tensors, first %q (wrong config?)", len(extra), extra[0])
	}
	for _, p := range u.params {
		copy(p.W, sd[p.Name].F32)
	}
	return nil
}
