package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/ddpm-go/ddpm/engine/parallel"
)

// withKernel runs f once per kernel available on this CPU, restoring the
// active kernel afterwards.
func withKernel(t testing.TB, f func(name string)) {
	prev := Kernel()
	defer func() {
		if err := setKernel(prev); err != nil {
			t.Fatal(err)
		}
	}()
	for _, name := range Kernels() {
		if err := setKernel(name); err != nil {
			t.Fatal(err)
		}
		f(name)
	}
}

// problem is one Sgemm call laid out in padded buffers so that strides are
// larger than rows and the area around C's window can be checked.
type problem struct {
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	a, b, c0       []float32
	lda, ldb, ldc  int
	coff           int // offset of C's window inside c0
}

const guard = float32(-12345.5)

func newProblem(rng *rand.Rand, transA, transB bool, m, n, k int, alpha, beta float32, pad int) *problem {
	p := &problem{transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, beta: beta}
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	p.lda, p.ldb, p.ldc = ac+pad, bc+pad, n+pad
	p.a = randSlice(rng, (ar-1)*p.lda+ac)
	p.b = randSlice(rng, (br-1)*p.ldb+bc)
	// C sits in the middle of a guard-filled buffer.
	p.coff = 5
	p.c0 = make([]float32, p.coff+(m-1)*p.ldc+n+7)
	for i := range p.c0 {
		p.c0[i] = guard
	}
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			if beta == 0 {
				p.c0[p.coff+i*p.ldc+j] = float32(math.NaN())
			} else {
				p.c0[p.coff+i*p.ldc+j] = rng.Float32()*2 - 1
			}
		}
	}
	return p
}

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = rng.Float32()*2 - 1
	}
	return s
}

// want returns the float64 reference result and a per-element error bound.
func (p *problem) want() (want, tol []float64) {
	want = make([]float64, p.m*p.n)
	tol = make([]float64, p.m*p.n)
	for i := 0; i < p.m; i++ {
		for j := 0; j < p.n; j++ {
			var s, mag float64
			for q := 0; q < p.k; q++ {
				var av, bv float64
				if p.transA {
					av = float64(p.a[q*p.lda+i])
				} else {
					av = float64(p.a[i*p.lda+q])
				}
				if p.transB {
					bv = float64(p.b[j*p.ldb+q])
				} else {
					bv = float64(p.b[q*p.ldb+j])
				}
				s += av * bv
				mag += math.Abs(av * bv)
			}
			v := float64(p.alpha) * s
			mag = math.Abs(float64(p.alpha)) * mag
			if p.beta != 0 {
				cv := float64(p.c0[p.coff+i*p.ldc+j])
				v += float64(p.beta) * cv
				mag += math.Abs(float64(p.beta) * cv)
			}
			want[i*p.n+j] = v
			tol[i*p.n+j] = 4e-7*float64(p.k+2)*mag + 1e-6
		}
	}
	return want, tol
}

// check runs Sgemm on a copy of C and compares window and guards.
func (p *problem) check(t *testing.T, label string, want, tol []float64) {
	t.Helper()
	c := append([]float32(nil), p.c0...)
	Sgemm(p.transA, p.transB, p.m, p.n, p.k, p.alpha, p.a, p.lda, p.b, p.ldb, p.beta, c[p.coff:], p.ldc)
	bad := 0
	for x := range c {
		r := x - p.coff
		i, j := r/p.ldc, r%p.ldc
		if r >= 0 && i < p.m && j < p.n {
			got := float64(c[x])
			if math.IsNaN(got) || math.Abs(got-want[i*p.n+j]) > tol[i*p.n+j] {
				if bad < 3 {
					t.Errorf("%s: C[%d][%d] = %v, want %v (tol %g)", label, i, j, got, want[i*p.n+j], tol[i*p.n+j])
				}
				bad++
			}
		} else if c[x] != guard {
			if bad < 3 {
				t.Errorf("%s: wrote %v outside C's window at offset %d (row %d col %d)", label, c[x], r, i, j)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Fatalf("%s: %d bad elements", label, bad)
	}
}

func TestSgemmShapes(t *testing.T) {
	dims := []int{1, 7, 12, 13, 31, 33, 64, 100, 130}
	// The columns also take a last panel of exactly 16 (the half-width
	// AVX-512 tile writes C directly) and one of 16 + 32.
	nDims := append(dims[:len(dims):len(dims)], 16, 48)
	betas := []float32{0, 1, 0.5}
	rng := rand.New(rand.NewPCG(1, 2))
	idx := 0
	for _, m := range dims {
		for _, n := range nDims {
			for _, k := range dims {
				// Every shape gets every transpose combination; beta, alpha
				// and padding rotate so the whole grid stays fast.
				for tr := 0; tr < 4; tr++ {
					idx++
					transA, transB := tr&1 != 0, tr&2 != 0
					beta := betas[idx%3]
					alpha := []float32{1.5, -0.75, 1}[(idx/3)%3]
					pad := (idx / 2) % 2 * 3
					p := newProblem(rng, transA, transB, m, n, k, alpha, beta, pad)
					want, tol := p.want()
					withKernel(t, func(name string) {
						label := fmt.Sprintf("%s tA=%v tB=%v m=%d n=%d k=%d alpha=%v beta=%v pad=%d", name, transA, transB, m, n, k, alpha, beta, pad)
						p.check(t, label, want, tol)
					})
				}
			}
		}
	}
}

// TestSgemmBlocking covers shapes spanning several k blocks (beta must apply
// only once), several column blocks, and both parallel splits.
func TestSgemmBlocking(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	shapes := [][3]int{{50, 600, 700}, {300, 40, 333}, {37, 517, 641}, {1, 1000, 1000}, {1000, 1, 500}, {64, 64, 576}}
	for _, s := range shapes {
		for tr := 0; tr < 4; tr++ {
			for _, beta := range []float32{0, 0.5} {
				transA, transB := tr&1 != 0, tr&2 != 0
				p := newProblem(rng, transA, transB, s[0], s[1], s[2], 0.9, beta, 1)
				want, tol := p.want()
				withKernel(t, func(name string) {
					p.check(t, fmt.Sprintf("%s tA=%v tB=%v %v beta=%v", name, transA, transB, s, beta), want, tol)
				})
			}
		}
	}
}

// TestSgemmNested checks the serial path taken inside parallel.For, with
// several goroutines multiplying at once (each needs its own workspace).
func TestSgemmNested(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const batch = 8
	ps := make([]*problem, batch)
	wants := make([][]float64, batch)
	tols := make([][]float64, batch)
	for i := range ps {
		ps[i] = newProblem(rng, i%2 == 1, i%4 >= 2, 32, 200, 90, 1, float32(i%2), 2)
		wants[i], tols[i] = ps[i].want()
	}
	withKernel(t, func(name string) {
		outs := make([][]float32, batch)
		parallel.For(batch, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				p := ps[i]
				c := append([]float32(nil), p.c0...)
				Sgemm(p.transA, p.transB, p.m, p.n, p.k, p.alpha, p.a, p.lda, p.b, p.ldb, p.beta, c[p.coff:], p.ldc)
				outs[i] = c
			}
		})
		for i, p := range ps {
			for r := 0; r < p.m; r++ {
				for j := 0; j < p.n; j++ {
					got := float64(outs[i][p.coff+r*p.ldc+j])
					if math.Abs(got-wants[i][r*p.n+j]) > tols[i][r*p.n+j] {
						t.Fatalf("%s batch %d: C[%d][%d] = %v, want %v", name, i, r, j, got, wants[i][r*p.n+j])
					}
				}
			}
		}
	})
}

func TestSgemmDegenerate(t *testing.T) {
	withKernel(t, func(name string) {
		// k == 0 and alpha == 0 only scale C; beta == 0 clears NaNs.
		c := []float32{float32(math.NaN()), 2, 3, 4}
		Sgemm(false, false, 2, 2, 0, 1, nil, 1, nil, 2, 0, c, 2)
		for i, v := range c {
			if v != 0 {
				t.Fatalf("%s: k=0 beta=0: c[%d] = %v", name, i, v)
			}
		}
		c = []float32{1, 2, 3, 4}
		a := []float32{float32(math.Inf(1)), 1, 1, 1}
		Sgemm(false, false, 2, 2, 2, 0, a, 2, a, 2, 2, c, 2)
		if c[3] != 8 {
			t.Fatalf("%s: alpha=0: c = %v", name, c)
		}
		Sgemm(false, false, 0, 5, 5, 1, nil, 5, nil, 5, 0, nil, 5) // m == 0: no-op
	})
}

func TestSgemmPanics(t *testing.T) {
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s: no panic", name)
			}
		}()
		f()
	}
	a := make([]float32, 12)
	mustPanic("short c", func() { Sgemm(false, false, 3, 4, 3, 1, a, 3, a, 4, 0, make([]float32, 11), 4) })
	mustPanic("short a", func() { Sgemm(false, false, 4, 3, 4, 1, a, 4, a, 3, 0, a, 3) })
	mustPanic("small lda", func() { Sgemm(false, false, 3, 3, 3, 1, a, 2, a, 3, 0, a, 3) })
}

func TestSgemmNoAlloc(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	a, b, c := randSlice(rng, 64*576), randSlice(rng, 576*256), make([]float32, 64*256)
	withKernel(t, func(name string) {
		Sgemm(false, false, 64, 256, 576, 1, a, 576, b, 256, 0, c, 256) // warm up
		n := testing.AllocsPerRun(20, func() {
			Sgemm(false, false, 64, 256, 576, 1, a, 576, b, 256, 0, c, 256)
			Sgemm(true, true, 64, 64, 64, 1, a, 64, b, 64, 1, c, 64)
		})
		if n != 0 {
			t.Errorf("%s: %v allocations per call", name, n)
		}
	})
}

func TestKernelSelection(t *testing.T) {
	ks := Kernels()
	if ks[len(ks)-1] != "generic" {
		t.Fatalf("Kernels() = %v, want generic last", ks)
	}
	if err := setKernel("nope"); err == nil {
		t.Fatal("setKernel(nope) succeeded")
	}
	t.Logf("kernels %v, active %s", ks, Kernel())
}

func TestDefaultKernel(t *testing.T) {
	want := Kernels()[0]
	if os.Getenv("DDPM_PUREGO") == "1" {
		want = "generic"
	}
	if got := Kernel(); got != want { // other tests restore the kernel they change
		t.Fatalf("default kernel %s, want %s", got, want)
	}
}

// TestRoundUpN: the rounded width covers n with whole panels of every
// kernel, and multiplying over it (B's extra columns zero) leaves the first
// n columns of C exactly as the unrounded call does.
func TestRoundUpN(t *testing.T) {
	defer setKernel(Kernel())
	for _, name := range Kernels() {
		if err := setKernel(name); err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{1, 4, 31, 32, 33, 196, 539} {
			np := RoundUpN(n)
			if np < n || np%active.nr != 0 || np-n >= active.nr {
				t.Fatalf("%s: RoundUpN(%d) = %d (panel width %d)", name, n, np, active.nr)
			}
			const m, k = 13, 37
			rng := rand.New(rand.NewPCG(uint64(n), 1))
			a, b := make([]float32, m*k), make([]float32, k*np)
			for i := range a {
				a[i] = float32(rng.NormFloat64())
			}
			for p := 0; p < k; p++ {
				for j := 0; j < n; j++ {
					b[p*np+j] = float32(rng.NormFloat64())
				}
			}
			want, got := make([]float32, m*np), make([]float32, m*np)
			Sgemm(false, false, m, n, k, 1, a, k, b, np, 0, want, np)
			Sgemm(false, false, m, np, k, 1, a, k, b, np, 0, got, np)
			for i := 0; i < m; i++ {
				for j := 0; j < n; j++ {
					if got[i*np+j] != want[i*np+j] {
						t.Fatalf("%s n=%d: C[%d,%d] = %v over the rounded width, %v over n", name, n, i, j, got[i*np+j], want[i*np+j])
					}
				}
			}
		}
	}
}
