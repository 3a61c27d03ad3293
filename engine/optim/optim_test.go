package optim

import (
	"math"
	"testing"
)

// adamRef is textbook Adam (Kingma & Ba, with PyTorch's placement of ε) in
// float64, the closed-form recursion the float32 implementation must follow.
func adamRef(x, m, v float64, g float64, t int, lr float64) (float64, float64, float64) {
	m = 0.9*m + 0.1*g
	v = 0.999*v + 0.001*g*g
	mh := m / (1 - math.Pow(0.9, float64(t)))
	den := math.Sqrt(v)/math.Sqrt(1-math.Pow(0.999, float64(t))) + 1e-8
	return x - lr*mh/den, m, v
}

func TestAdamScalarQuadratic(t *testing.T) {
	// f(x) = ½·a·(x−c)², ∇f = a·(x−c).
	const a, c, lr = 3.0, 0.25, 0.1
	w := []float32{1}
	g := make([]float32, 1)
	opt := NewAdam(1, lr)
	x, m, v := 1.0, 0.0, 0.0
	// Hand-computed: the first Adam step moves by lr·sign(g) (up to ε).
	want := []float64{0.9}
	for step := 1; step <= 3; step++ {
		g[0] = float32(a * (float64(w[0]) - c))
		opt.Step(w, g)
		x, m, v = adamRef(x, m, v, a*(x-c), step, lr)
		if step <= len(want) && math.Abs(float64(w[0])-want[step-1]) > 1e-6 {
			t.Fatalf("step %d: w=%v, hand-computed %v", step, w[0], want[step-1])
		}
		if math.Abs(float64(w[0])-x) > 1e-6 {
			t.Fatalf("step %d: w=%v, reference %v", step, w[0], x)
		}
		if math.Abs(float64(opt.M[0])-m) > 1e-6 || math.Abs(float64(opt.V[0])-v) > 1e-7 {
			t.Fatalf("step %d: state m=%v v=%v, reference %v %v", step, opt.M[0], opt.V[0], m, v)
		}
	}
	if opt.StepCount != 3 {
		t.Fatalf("StepCount = %d", opt.StepCount)
	}
	// Hand-computed second step for a=1, c=0 from x=1: x2 = 0.9 − 0.1·(0.18/0.19)/sqrt(0.001809/0.001999).
	w2 := []float32{1}
	o2 := NewAdam(1, 0.1)
	for range 2 {
		o2.Step(w2, []float32{w2[0]})
	}
	x2 := 0.9 - 0.1*(0.18/0.19)/math.Sqrt(0.001809/0.001999)
	if math.Abs(float64(w2[0])-x2) > 1e-6 {
		t.Fatalf("second step %v, hand-computed %v", w2[0], x2)
	}
}

// TestAdamLargeBuffer runs the parallel path (many ranges) and checks every
// element against the scalar reference, and that saving and restoring the
// state resumes the same trajectory.
func TestAdamLargeBuffer(t *testing.T) {
	const n = 5*grain + 123
	w := make([]float32, n)
	g := make([]float32, n)
	for i := range w {
		w[i] = float32(i%17) - 8
	}
	opt := NewAdam(n, 1e-2)
	opt.WeightDecay = 0
	ref := make([]float64, n)
	rm := make([]float64, n)
	rv := make([]float64, n)
	for i := range ref {
		ref[i] = float64(w[i])
	}
	for step := 1; step <= 3; step++ {
		for i := range g {
			g[i] = 2 * w[i]
		}
		opt.Step(w, g)
		for i := range ref {
			ref[i], rm[i], rv[i] = adamRef(ref[i], rm[i], rv[i], 2*ref[i], step, 1e-2)
		}
	}
	for i := range w {
		if math.Abs(float64(w[i])-ref[i]) > 1e-5 {
			t.Fatalf("w[%d] = %v, reference %v", i, w[i], ref[i])
		}
	}
	// Resume from copied state.
	o2 := &Adam{LR: opt.LR, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8,
		M: append([]float32(nil), opt.M...), V: append([]float32(nil), opt.V...), StepCount: opt.StepCount}
	w2 := append([]float32(nil), w...)
	for i := range g {
		g[i] = 2 * w[i]
	}
	opt.Step(w, g)
	o2.Step(w2, g)
	for i := range w {
		if w[i] != w2[i] {
			t.Fatalf("resumed trajectory differs at %d", i)
		}
	}
}

func TestAdamWeightDecay(t *testing.T) {
	// With g = 0 and weight decay λ, the effective gradient is λ·w.
	w := []float32{2}
	opt := NewAdam(1, 0.5)
	opt.WeightDecay = 0.1
	opt.Step(w, []float32{0})
	if math.Abs(float64(w[0])-1.5) > 1e-6 {
		t.Fatalf("w = %v, want 1.5", w[0])
	}
}

func TestClipGradNorm(t *testing.T) {
	g := []float32{3, 4} // norm 5
	n := ClipGradNorm(g, 1)
	if math.Abs(n-5) > 1e-6 {
		t.Fatalf("norm = %v", n)
	}
	s := 1 / (5 + 1e-6)
	if math.Abs(float64(g[0])-3*s) > 1e-6 || math.Abs(float64(g[1])-4*s) > 1e-6 {
		t.Fatalf("clipped = %v", g)
	}
	// Inside the ball: untouched.
	g = []float32{0.3, 0.4}
	if n := ClipGradNorm(g, 1); math.Abs(n-0.5) > 1e-7 || g[0] != 0.3 || g[1] != 0.4 {
		t.Fatalf("norm %v, g %v", n, g)
	}
	// Large buffer: parallel reduction.
	big := make([]float32, 7*grain+5)
	for i := range big {
		big[i] = 1
	}
	n = ClipGradNorm(big, 2)
	if want := math.Sqrt(float64(len(big))); math.Abs(n-want) > 1e-9*want {
		t.Fatalf("norm %v, want %v", n, want)
	}
	if after := GradNorm(big); math.Abs(after-2) > 1e-4 {
		t.Fatalf("norm after clipping %v, want 2", after)
	}
	// Non-finite: reported, not applied.
	g = []float32{float32(math.Inf(1)), 1}
	if n := ClipGradNorm(g, 1); !math.IsInf(n, 1) || g[1] != 1 {
		t.Fatalf("inf: norm %v g %v", n, g)
	}
}

func TestWarmupLR(t *testing.T) {
	cases := []struct {
		step, warm int
		want       float64
	}{{1, 4, 0.5}, {2, 4, 1}, {4, 4, 2}, {100, 4, 2}, {7, 0, 2}}
	for _, c := range cases {
		if got := WarmupLR(2, c.step, c.warm); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("WarmupLR(2, %d, %d) = %v, want %v", c.step, c.warm, got, c.want)
		}
	}
}

func TestEMA(t *testing.T) {
	w := []float32{1, 2}
	e := NewEMA(w, 0.9)
	w[0], w[1] = 11, -8
	e.Update(w)
	// 0.9·1 + 0.1·11 = 2; 0.9·2 + 0.1·(−8) = 1.
	if math.Abs(float64(e.W[0])-2) > 1e-6 || math.Abs(float64(e.W[1])-1) > 1e-6 {
		t.Fatalf("EMA = %v", e.W)
	}
	e.Update(w)
	// 0.9·2 + 1.1 = 2.9; 0.9·1 − 0.8 = 0.1.
	if math.Abs(float64(e.W[0])-2.9) > 1e-6 || math.Abs(float64(e.W[1])-0.1) > 1e-6 {
		t.Fatalf("EMA = %v", e.W)
	}
	// The average is a copy, not an alias.
	if &e.W[0] == &w[0] {
		t.Fatal("EMA aliases the weights")
	}
	big := make([]float32, 3*grain+1)
	eb := NewEMA(big, 0.5)
	for i := range big {
		big[i] = 4
	}
	eb.Update(big)
	for i, x := range eb.W {
		if x != 2 {
			t.Fatalf("W[%d] = %v", i, x)
		}
	}
}

func TestScheduledLR(t *testing.T) {
	cases := []struct {
		decay       string
		step, total int
		want        float64
	}{
		{"constant", 50, 100, 2}, {"", 100, 100, 2},
		{"cosine", 10, 110, 2}, {"cosine", 60, 110, 1}, {"cosine", 110, 110, 0}, {"cosine", 200, 110, 0},
		{"linear", 35, 110, 1.5}, {"linear", 110, 110, 0},
		{"cosine", 5, 110, 1}, // still warming up: warm-up wins
	}
	for _, c := range cases {
		if got := ScheduledLR(2, c.step, 10, c.total, c.decay); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("ScheduledLR(2, %d, 10, %d, %q) = %v, want %v", c.step, c.total, c.decay, got, c.want)
		}
	}
}
