package serve

import (
	"testing"

	"github.com/ddpm-go/ddpm/diffusion"
)

// TestPlanSpacing: a plan visits the timesteps of the pipeline's spacing
// (a diffusers model's scheduler config), from the top, as SampleTensor's
// samplers do.
func TestPlanSpacing(t *testing.T) {
	d, err := diffusion.New(diffusion.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		kind    method
		spacing diffusion.Spacing
		offset  int
		want    []int
	}{
		{ddim, diffusion.SpacingAuto, 0, []int{999, 666, 333, 0}},
		{ddim, diffusion.SpacingLeading, 0, []int{750, 500, 250, 0}},
		{respaced, diffusion.SpacingLeading, 1, []int{751, 501, 251, 1}},
		{respaced, diffusion.SpacingTrailing, 0, []int{999, 749, 499, 249}},
	}
	for _, c := range cases {
		p, err := newPlan(c.kind, d, 4, 0, c.spacing, c.offset)
		if err != nil {
			t.Fatal(err)
		}
		for pos, want := range c.want {
			if got := p.netIndex(pos); got != want {
				t.Errorf("%v %v offset %d: step %d at %d, want %d", c.kind, c.spacing, c.offset, pos, got, want)
			}
		}
	}
	if _, err := newPlan(ddim, d, 61, 0, diffusion.SpacingTrailing, 0); err == nil {
		t.Error("trailing spacing with 61 of 1000 steps was planned")
	}
}
