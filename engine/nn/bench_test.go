package nn

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

// The conv shapes of the "small" U-Net at batch 32 (conv_in, a level-0
// ResBlock conv, a level-1/2 conv, the level-0 Downsample), and one of the
// cifar config's.
var benchConvs = []struct {
	name                      string
	cin, cout, k, stride, pad int
	h, w                      int
	inputGrad                 bool // conv_in needs no input gradient
}{
	{"1to32_32x32", 1, 32, 3, 1, 1, 32, 32, false},
	{"32to32_32x32", 32, 32, 3, 1, 1, 32, 32, true},
	{"64to64_16x16", 64, 64, 3, 1, 1, 16, 16, true},
	{"32to32_s2_32x32", 32, 32, 3, 2, 1, 32, 32, true},
	{"128to128_32x32", 128, 128, 3, 1, 1, 32, 32, true}, // the cifar config's level 0
	// The mnist-fast config's (the first shipped models'):
	// 24/48/48 channels at 28×28, 14×14 and 7×7, an up-path conv after a
	// skip concatenation, and conv_out.
	{"24to24_28x28", 24, 24, 3, 1, 1, 28, 28, true},
	{"48to48_14x14", 48, 48, 3, 1, 1, 14, 14, true},
	{"48to48_7x7", 48, 48, 3, 1, 1, 7, 7, true},
	{"48to24_28x28", 48, 24, 3, 1, 1, 28, 28, true},
	{"24to1_28x28", 24, 1, 3, 1, 1, 28, 28, true},
	// mnist-deep's (16/32/64 channels, two blocks per level): its level-0
	// and level-1 convs and a level-0 up-path conv after a concatenation.
	{"16to16_28x28", 16, 16, 3, 1, 1, 28, 28, true},
	{"32to16_28x28", 32, 16, 3, 1, 1, 28, 28, true},
	{"32to32_14x14", 32, 32, 3, 1, 1, 14, 14, true},
	// Small output planes, lowered several images per GEMM
	// (forwardGrouped): 7×7 after a concatenation, an attention
	// projection, and the two Downsamples.
	{"96to48_7x7", 96, 48, 3, 1, 1, 7, 7, true},
	{"48to48_1x1_7x7", 48, 48, 1, 1, 0, 7, 7, true},
	{"24to24_s2_28x28", 24, 24, 3, 2, 1, 28, 28, true},
	{"48to48_s2_14x14", 48, 48, 3, 2, 1, 14, 14, true},
}

const benchBatch = 32

func setupConv(b *testing.B, i int) (l *Conv2d, in, out, dIn []float32, flops float64) {
	c := benchConvs[i]
	rng := newRNG(uint64(i))
	l = NewConv2d(c.cin, c.cout, c.k, c.stride, c.pad)
	bindRandom(rng, l.Params(), 0.1)
	ho, wo := l.OutSize(c.h, c.w)
	in = randn(rng, benchBatch*c.cin*c.h*c.w, 1)
	out = randn(rng, benchBatch*c.cout*ho*wo, 1)
	if c.inputGrad {
		dIn = make([]float32, len(in))
	}
	flops = 2 * float64(benchBatch*c.cout*ho*wo*c.cin*c.k*c.k)
	return
}

func BenchmarkConvForward(b *testing.B) {
	for i, c := range benchConvs {
		b.Run(c.name, func(b *testing.B) {
			l, in, out, _, flops := setupConv(b, i)
			l.Forward(out, in, benchBatch, c.h, c.w) // grow scratch
			b.ResetTimer()
			for b.Loop() {
				l.Forward(out, in, benchBatch, c.h, c.w)
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkConvForwardWinograd compares, on the 3×3 "same" shapes, the
// Winograd forward with the direct (GEMM) conv it replaces; GFLOP/s counts
// the direct conv's flops for both, so the ratio is the speed-up.
func BenchmarkConvForwardWinograd(b *testing.B) {
	for i, c := range benchConvs {
		l := NewConv2d(c.cin, c.cout, c.k, c.stride, c.pad)
		if !l.winograd(c.h, c.w) {
			continue
		}
		for _, v := range []struct {
			name       string
			off, only2 bool
		}{{"direct", true, false}, {"winograd2", false, true}, {"winograd", false, false}} {
			b.Run(c.name+"/"+v.name, func(b *testing.B) {
				l, in, out, _, flops := setupConv(b, i)
				l.NoWinograd, l.NoWinograd4 = v.off, v.only2
				l.Forward(out, in, benchBatch, c.h, c.w)
				b.ResetTimer()
				for b.Loop() {
					l.Forward(out, in, benchBatch, c.h, c.w)
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

func BenchmarkConvBackward(b *testing.B) {
	for i, c := range benchConvs {
		b.Run(c.name, func(b *testing.B) {
			l, in, dOut, dIn, flops := setupConv(b, i)
			if dIn != nil {
				flops *= 2 // dW and dIn are one forward's worth each
			}
			l.Backward(dIn, dOut, in, benchBatch, c.h, c.w)
			b.ResetTimer()
			for b.Loop() {
				l.Backward(dIn, dOut, in, benchBatch, c.h, c.w)
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkAttnBlock is the small U-Net's attention (64 channels at 16×16),
// forward then backward.
func BenchmarkAttnBlock(b *testing.B) {
	const c, h, w = 64, 16, 16
	rng := newRNG(9)
	l := NewAttnBlock(c, 8, 1e-6)
	bindRandom(rng, l.Params(), 0.1)
	in := randn(rng, benchBatch*c*h*w, 1)
	out, dIn := make([]float32, len(in)), make([]float32, len(in))
	hw := h * w
	// 4 1×1 convs + 2 attention GEMMs forward; backward is twice that.
	flops := 3 * float64(benchBatch) * float64(4*2*c*c*hw+2*2*hw*hw*c)
	for b.Loop() {
		l.Forward(out, in, benchBatch, h, w)
		l.Backward(dIn, out, in, benchBatch, h, w)
	}
	b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// BenchmarkElementwise times the memory-bound layers at the size of the
// small U-Net's level-0 activations (32×32×32×32 = 1M elements).
func BenchmarkElementwise(b *testing.B) {
	const c, hw = 32, 32 * 32
	rng := newRNG(10)
	in := randn(rng, benchBatch*c*hw, 1)
	out, d := make([]float32, len(in)), make([]float32, len(in))
	gn := NewGroupNorm(8, c, 1e-6)
	bindRandom(rng, gn.Params(), 1)
	for _, k := range []struct {
		name string
		fn   func()
	}{
		{"SiLUForward", func() { SiLUForward(out, in) }},
		{"SiLUBackward", func() { SiLUBackward(d, out, in) }},
		{"GroupNormForward", func() { gn.Forward(out, in, benchBatch, hw) }},
		{"GroupNormBackward", func() { gn.Backward(d, out, in, benchBatch, hw) }},
	} {
		b.Run(k.name, func(b *testing.B) {
			k.fn()
			for b.Loop() {
				k.fn()
			}
			b.ReportMetric(float64(len(in))*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gelem/s")
		})
	}
}

// TestNoScratchAllocs checks that after a warm-up the layers reuse
// their scratch: what is left per call is the closures handed to the
// parallel pool (a few small objects), so the bytes allocated per step must
// not grow with the tensor size.
func TestNoScratchAllocs(t *testing.T) {
	perStep := func(n, hw int) int64 {
		rng := newRNG(11)
		l := NewConv2d(8, 8, 3, 1, 1)
		bindRandom(rng, l.Params(), 0.1)
		a := NewAttnBlock(8, 4, 1e-6)
		bindRandom(rng, a.Params(), 0.1)
		in := randn(rng, n*8*hw*hw, 1)
		out, d := make([]float32, len(in)), make([]float32, len(in))
		step := func() {
			l.Forward(out, in, n, hw, hw)
			l.Backward(d, out, in, n, hw, hw)
			a.Forward(out, in, n, hw, hw)
			a.Backward(d, out, in, n, hw, hw)
		}
		// Borrowed scratch sets grow to each role they meet, in whatever order the
		// workers take them, so warm up until every set has met every role.
		for range 8 {
			step()
		}
		return testing.Benchmark(func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				step()
			}
		}).AllocedBytesPerOp()
	}
	small, large := perStep(4, 6), perStep(4, 12)
	t.Logf("bytes allocated per conv+attention forward/backward: %d at 6×6, %d at 12×12", small, large)
	if large > small+512 || small > 16<<10 {
		t.Errorf("per-step allocations grow with the tensors (%d → %d bytes): scratch is not reused", small, large)
	}
}

// BenchmarkConvWinogradGate times the Winograd forward against the direct
// conv on the wide kernels at small planes that winoMaxKernel sends to the
// direct conv (the 256×256 network's 512-channel levels), and on cifar's
// that it keeps on Winograd, at batch 1 and 8.
func BenchmarkConvWinogradGate(b *testing.B) {
	for _, c := range [][4]int{{512, 512, 16, 1}, {1024, 512, 16, 1}, {512, 512, 8, 1}, {512, 512, 16, 8},
		{256, 256, 16, 8}, {512, 256, 16, 8}, {256, 256, 8, 8}, {256, 256, 32, 1}} {
		for _, direct := range []bool{false, true} {
			name := fmt.Sprintf("%dto%d_%dx%d_b%d/winograd", c[0], c[1], c[2], c[2], c[3])
			if direct {
				name = name[:len(name)-len("winograd")] + "direct"
			}
			b.Run(name, func(b *testing.B) {
				rng := newRNG(1)
				l := NewConv2d(c[0], c[1], 3, 1, 1)
				bindRandom(rng, l.Params(), 0.1)
				n, h := c[3], c[2]
				in, out := randn(rng, n*c[0]*h*h, 1), make([]float32, n*c[1]*h*h)
				if direct {
					l.NoWinograd = true
				} else {
					l.forwardWinograd(out, in, nil, n, h, h) // the path itself, whatever winograd() says
				}
				fwd := func() {
					if direct {
						l.Forward(out, in, n, h, h)
					} else {
						l.forwardWinograd(out, in, nil, n, h, h)
					}
				}
				fwd()
				b.ResetTimer()
				for b.Loop() {
					fwd()
				}
				b.ReportMetric(b.Elapsed().Seconds()/float64(b.N)*1e3, "ms/op")
			})
		}
	}
}

// BenchmarkConvLargePlanes times the 256×256 network's convs on its two
// largest planes at batch 1 through F(2×2, 3×3) and F(4×4, 3×3) (the
// latter in segments of 16 tiles a kernel call, vec.NewWino4Plan), with
// the tile rows split among the workers.
func BenchmarkConvLargePlanes(b *testing.B) {
	for _, c := range [][3]int{{128, 128, 256}, {256, 128, 256}, {128, 128, 128}, {256, 256, 64}} {
		for _, only2 := range []bool{true, false} {
			name := fmt.Sprintf("%dto%d_%dx%d/winograd4", c[0], c[1], c[2], c[2])
			if only2 {
				name = name[:len(name)-1] + "2"
			}
			b.Run(name, func(b *testing.B) {
				rng := newRNG(1)
				l := NewConv2d(c[0], c[1], 3, 1, 1)
				l.NoWinograd4 = only2
				bindRandom(rng, l.Params(), 0.1)
				h := c[2]
				in, out := randn(rng, c[0]*h*h, 1), make([]float32, c[1]*h*h)
				l.Forward(out, in, 1, h, h)
				cpu0 := cpuTime()
				b.ResetTimer()
				for b.Loop() {
					l.Forward(out, in, 1, h, h)
				}
				b.ReportMetric(b.Elapsed().Seconds()/float64(b.N)*1e3, "ms/op")
				b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N)*1e3, "cpu-ms/op")
			})
		}
	}
}

// cpuTime is the process's user and system CPU time: on a shared machine
// (other processes taking turns on the cores) it varies less than the
// wall time, with -test.cpu 1.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
