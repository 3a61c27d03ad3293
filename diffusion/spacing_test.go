package diffusion

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// upFrom is a, a+d, a+2d, … (n values).
func upFrom(a, d, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = a + i*d
	}
	return out
}

// TestSpacingIndices checks each spacing against the timesteps diffusers'
// set_timesteps produces (schedulers/scheduling_ddpm.py 321-340 at
// diffusers 58eb52c0; scheduling_ddim.py 357-376 is the same code), worked
// out by hand from its formulas, listed increasing (diffusers lists them
// decreasing):
//
//	leading:  arange(0, K) * (T // K) + steps_offset
//	trailing: round(arange(T, 0, −T/K)) − 1      (np.round: halves to even)
//	linspace: round(linspace(0, T − 1, K))
func TestSpacingIndices(t *testing.T) {
	cases := []struct {
		sp        Spacing
		T, K, off int
		want      []int
	}{
		// T = 1000, K = 10: step_ratio 100 (leading, trailing), 111 (linspace).
		{SpacingLeading, 1000, 10, 0, upFrom(0, 100, 10)},
		{SpacingLeading, 1000, 10, 1, upFrom(1, 100, 10)}, // steps_offset 1: 1, 101, …, 901
		{SpacingTrailing, 1000, 10, 0, upFrom(99, 100, 10)},
		{SpacingTrailing, 1000, 10, 1, upFrom(99, 100, 10)}, // trailing ignores steps_offset
		{SpacingLinspace, 1000, 10, 0, upFrom(0, 111, 10)},
		{SpacingEven, 1000, 10, 0, upFrom(0, 111, 10)},
		// T = 1000, K = 50: FACTS.md §5's 980, 960, …, 0 for leading.
		{SpacingLeading, 1000, 50, 0, upFrom(0, 20, 50)},
		{SpacingTrailing, 1000, 50, 0, upFrom(19, 20, 50)},
		// linspace(0, 999, 50) = 999·s/49: never a half, so as SpacedIndices.
		{SpacingLinspace, 1000, 50, 0, []int{0, 20, 41, 61, 82, 102, 122, 143, 163, 183, 204, 224, 245, 265, 285, 306, 326,
			347, 367, 387, 408, 428, 449, 469, 489, 510, 530, 550, 571, 591, 612, 632, 652, 673, 693, 714, 734, 754, 775,
			795, 816, 836, 856, 877, 897, 917, 938, 958, 979, 999}},
		// K not dividing T: leading floors the ratio (1000 // 7 = 142) and
		// never reaches the top; trailing rounds 1000 − 1000k/7.
		{SpacingLeading, 1000, 7, 0, upFrom(0, 142, 7)},
		{SpacingTrailing, 1000, 7, 0, []int{142, 285, 428, 570, 713, 856, 999}},
		{SpacingTrailing, 1000, 3, 0, []int{332, 666, 999}},
		// diffusers issue #9261 prints DDPMScheduler's trailing timesteps for
		// T = 1000, K = 13: 999, 922, 845, 768, 691, 614, 537, 461, 384, 307,
		// 230, 153, 76.
		{SpacingTrailing, 1000, 13, 0, []int{76, 153, 230, 307, 384, 461, 537, 614, 691, 768, 845, 922, 999}},
		// Halves: 999·s/6 = 166.5 and 832.5 round to even in numpy (166,
		// 832), away from zero in SpacedIndices (167, 833).
		{SpacingLinspace, 1000, 7, 0, []int{0, 166, 333, 500, 666, 832, 999}},
		{SpacingEven, 1000, 7, 0, []int{0, 167, 333, 500, 666, 833, 999}},
		{SpacingLinspace, 10, 3, 0, []int{0, 4, 9}},
		// One step: linspace(0, T−1, 1) = [0]; leading [0 + offset];
		// trailing [T − 1]; SpacedIndices' T − 1.
		{SpacingLinspace, 1000, 1, 0, []int{0}},
		{SpacingLeading, 1000, 1, 3, []int{3}},
		{SpacingTrailing, 1000, 1, 0, []int{999}},
		{SpacingEven, 1000, 1, 0, []int{999}},
		{SpacingAuto, 1000, 10, 0, upFrom(0, 111, 10)},
		// K = T: every spacing is the full chain (the fixtures' traces).
		{SpacingLeading, 1000, 1000, 0, upFrom(0, 1, 1000)},
		{SpacingTrailing, 1000, 1000, 0, upFrom(0, 1, 1000)},
		{SpacingLinspace, 1000, 1000, 0, upFrom(0, 1, 1000)},
	}
	for _, c := range cases {
		got, err := c.sp.Indices(c.T, c.K, c.off)
		if err != nil {
			t.Errorf("%v T=%d K=%d offset %d: %v", c.sp, c.T, c.K, c.off, err)
			continue
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%v T=%d K=%d offset %d:\n got %v\nwant %v", c.sp, c.T, c.K, c.off, got, c.want)
		}
	}
}

// TestSpacingIndicesRefused: what diffusers cannot do either is refused in
// one line.
func TestSpacingIndicesRefused(t *testing.T) {
	cases := []struct {
		sp        Spacing
		T, K, off int
		want      string
	}{
		{SpacingLeading, 1000, 0, 0, "out of range"},
		{SpacingLinspace, 1000, 1001, 0, "out of range"},
		{SpacingLeading, 1000, 10, 100, "past T−1"},    // 900 + 100
		{SpacingLeading, 1000, 10, -1, "offset"},       // negative
		{SpacingTrailing, 1000, 61, 0, "62 timesteps"}, // numpy's arange overshoots: a 62nd timestep, −1
		{Spacing(99), 1000, 10, 0, "unknown"},
	}
	for _, c := range cases {
		_, err := c.sp.Indices(c.T, c.K, c.off)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") || strings.Count(err.Error(), "diffusion:") != 1 {
			t.Errorf("%v T=%d K=%d offset %d: error %v, want one line with %q", c.sp, c.T, c.K, c.off, err, c.want)
		}
	}
}

// TestSpacingNames: the flag and JSON names parse back.
func TestSpacingNames(t *testing.T) {
	for _, name := range []string{"auto", "even", "leading", "trailing", "linspace"} {
		var s Spacing
		if err := s.UnmarshalText([]byte(name)); err != nil || s.String() != name {
			t.Errorf("%q: %v, %v", name, s, err)
		}
	}
	var s Spacing
	if err := s.UnmarshalText([]byte("lead")); err == nil {
		t.Error("an unknown spacing name parsed")
	}
}

// recordModel records the timesteps a sampler evaluates the network at
// (one batch entry each) and predicts zero noise.
type recordModel struct{ ts []int }

func (r *recordModel) Predict(out, xt []float32, t []int) {
	clear(out)
	r.ts = append(r.ts, t[0])
}

// TestSamplersVisitSpacing: DDIM and Respaced evaluate the network at
// exactly the spacing's timesteps, from the top down (as DDPMPipeline and
// DDIMPipeline iterate scheduler.timesteps), and WithSpacing fills in only
// a spacing left to the model.
func TestSamplersVisitSpacing(t *testing.T) {
	d := mustNew(t, Eps, FixedSmall, Simple, true)
	for _, sp := range []Spacing{SpacingEven, SpacingLeading, SpacingTrailing, SpacingLinspace} {
		for _, s := range []Sampler{
			WithSpacing(DDIM{Steps: 10}, sp, 1),
			WithSpacing(&Respaced{Steps: 10}, sp, 1),
		} {
			keep, _ := sp.Indices(1000, 10, 1)
			want := slices.Clone(keep)
			slices.Reverse(want)
			var m recordModel
			x := make([]float32, 4)
			if err := s.Sample(context.Background(), d, &m, x, 1, rand.New(rand.NewPCG(1, 2)), Hooks{}); err != nil {
				t.Fatalf("%v: %v", s, err)
			}
			if !slices.Equal(m.ts, want) {
				t.Errorf("%v visited %v, want %v", s, m.ts, want)
			}
		}
	}
	if s := WithSpacing(DDIM{Steps: 10, Spacing: SpacingTrailing}, SpacingLeading, 1).(DDIM); s.Spacing != SpacingTrailing || s.StepsOffset != 0 {
		t.Errorf("WithSpacing replaced a chosen spacing: %+v", s)
	}
	if s := WithSpacing(Ancestral{}, SpacingLeading, 0); s != (Ancestral{}) {
		t.Errorf("WithSpacing changed an ancestral sampler: %v", s)
	}
	if err := (Respaced{Steps: 61, Spacing: SpacingTrailing}).Validate(1000); err == nil || !strings.HasPrefix(err.Error(), "respaced: ") {
		t.Errorf("Validate of an impossible trailing spacing: %v", err)
	}
}

// TestRespacedLeadingIsDDPMScheduler: the respaced process over diffusers'
// leading timesteps has, at each visited t, DDPMScheduler.step's
// coefficients (scheduling_ddpm.py 500-539, previous_timestep 648-668):
// ᾱ_prev = ᾱ at the next visited timestep (1 after the last),
// current_β = 1 − ᾱ_t/ᾱ_prev, and the fixed_small variance
// (1 − ᾱ_prev)/(1 − ᾱ_t)·current_β.
func TestRespacedLeadingIsDDPMScheduler(t *testing.T) {
	d := mustNew(t, Eps, FixedSmall, Simple, true)
	keep, err := SpacingLeading.Indices(1000, 50, 0)
	if err != nil {
		t.Fatal(err)
	}
	r, err := d.Respace(keep)
	if err != nil {
		t.Fatal(err)
	}
	for s, i := range keep {
		at := d.AlphasCumprod[i]
		prev := 1.0
		if s > 0 {
			prev = d.AlphasCumprod[keep[s-1]]
		}
		beta := 1 - at/prev
		if !close(r.AlphasCumprod[s], at, 1e-12, 0) || !close(r.Betas[s], beta, 1e-9, 0) {
			t.Fatalf("t=%d: ᾱ %g β %g, DDPMScheduler's %g, %g", i, r.AlphasCumprod[s], r.Betas[s], at, beta)
		}
		if s > 0 && !close(r.PosteriorVariance[s], (1-prev)/(1-at)*beta, 1e-9, 0) {
			t.Fatalf("t=%d: posterior variance %g, DDPMScheduler's %g", i, r.PosteriorVariance[s], (1-prev)/(1-at)*beta)
		}
	}
}

// TestTrailingOvershoot: the step counts for which numpy's
// arange(1000, 0, −1000/K) has K+1 values (the last rounding to −1), so that
// diffusers' trailing spacing makes K+1 timesteps, are exactly those
// refused. The list was printed by numpy 1.24 (Debian's python3-numpy);
// the same run matched every trailing and linspace list of Indices, value
// for value, for T ∈ {2, 7, 50, 100, 500, 1000, 1024, 4000} and every K.
func TestTrailingOvershoot(t *testing.T) {
	numpy := []int{61, 103, 121, 122, 201, 206, 217, 223, 227, 233, 242, 244, 397, 402, 412, 419, 434, 446, 454, 457,
		463, 465, 466, 484, 485, 487, 488, 497, 499, 769, 794, 804, 805, 824, 829, 835, 838, 868, 871, 887, 892, 908, 914,
		926, 930, 932, 937, 941, 951, 961, 965, 968, 970, 974, 975, 976, 979, 981, 985, 994, 995, 998}
	var refused []int
	for K := 1; K <= 1000; K++ {
		if _, err := SpacingTrailing.Indices(1000, K, 0); err != nil {
			refused = append(refused, K)
		}
	}
	if !slices.Equal(refused, numpy) {
		t.Errorf("refused K = %v\nnumpy's overshoots: %v", refused, numpy)
	}
}
