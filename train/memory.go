package train

import (
	"fmt"

	"github.com/ddpm-go/ddpm/internal/sysmem"
	"github.com/ddpm-go/ddpm/model/unet"
)

// PreviewImages is how many images a preview grid holds (see Preview).
const PreviewImages = 16

// StepMemory estimates the bytes a run of the network ucfg (OutCh set)
// needs at batch images per step, beside its data set: the network's
// forward and backward pass ([unet.EstimateMemory]), Adam's two moments and
// the EMA weights, the step's own tensors (x0, x_t, ε, the network's
// output and its gradient) and the preview network (the EMA weights and a
// forward pass over PreviewImages images).
func StepMemory(ucfg unet.Config, batch int) float64 {
	ucfg = ucfg.Normalized()
	params := float64(unet.NumParams(ucfg))
	pixels := float64(ucfg.Res * ucfg.Res)
	step := unet.EstimateMemory(ucfg, true).Bytes(batch)
	step += 4 * 3 * params                                                  // Adam m, v; EMA
	step += 4 * float64(batch) * pixels * float64(3*ucfg.InCh+2*ucfg.OutCh) // x0, xt, ε; out, dOut
	step += unet.EstimateMemory(ucfg, false).Bytes(PreviewImages)           // the preview network
	return step
}

// MemoryError refuses a batch whose training step cannot fit in memory.
type MemoryError struct {
	Batch     int
	Need      float64 // bytes the step needs (StepMemory)
	Available float64 // bytes the machine has available
	// Suggest is the largest power-of-two batch, at most 128, whose step
	// fits in three quarters of the available memory; 0 when even a batch
	// of 1 does not fit.
	Suggest int
	// Suggest1 is what a batch of 1 needs, when Suggest is 0.
	Need1 float64
}

func (e *MemoryError) Error() string {
	s := fmt.Sprintf("--batch %d needs about %s for a training step; this machine has %s available",
		e.Batch, sysmem.Size(e.Need), sysmem.Size(e.Available))
	if e.Suggest > 0 {
		return s + fmt.Sprintf(" — try --batch %d", e.Suggest)
	}
	return s + fmt.Sprintf(" — even --batch 1 needs about %s: pick a smaller --config", sysmem.Size(e.Need1))
}

// Is makes a refused batch an ErrInvalidOption: the batch and the config
// are the user's to change.
func (e *MemoryError) Is(target error) bool { return target == ErrInvalidOption }

// available is sysmem.Available, replaceable by tests.
var available = sysmem.Available

// CheckMemory refuses (with a *MemoryError) a batch whose training step
// would need more memory than the machine has available, before anything
// is allocated: the Go runtime's answer to an allocation it cannot make is
// a fatal error with a page of stack trace, not an error a caller can
// report. Where the available memory is unknown (not Linux) it checks
// nothing.
func CheckMemory(ucfg unet.Config, batch int) error {
	avail, ok := available()
	if !ok {
		return nil
	}
	need := StepMemory(ucfg, batch)
	if need <= avail {
		return nil
	}
	e := &MemoryError{Batch: batch, Need: need, Available: avail}
	for b := 128; b >= 1; b /= 2 {
		if b < batch && StepMemory(ucfg, b) <= 0.75*avail {
			e.Suggest = b
			break
		}
	}
	if e.Suggest == 0 {
		e.Need1 = StepMemory(ucfg, 1)
	}
	return e
}
