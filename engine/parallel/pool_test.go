package parallel

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestForCoversRange checks that every index is visited exactly once for
// sizes around the chunking boundaries.
func TestForCoversRange(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 7, 8, 9, 63, 64, 65, 1000} {
		for _, chunk := range []int{0, 1, 3, 1000} {
			seen := make([]int32, n)
			ForChunk(n, chunk, func(lo, hi int) {
				if lo < 0 || hi > n || lo >= hi {
					t.Errorf("n=%d chunk=%d: bad range [%d,%d)", n, chunk, lo, hi)
					return
				}
				for i := lo; i < hi; i++ {
					atomic.AddInt32(&seen[i], 1)
				}
			})
			for i, c := range seen {
				if c != 1 {
					t.Fatalf("n=%d chunk=%d: index %d visited %d times", n, chunk, i, c)
				}
			}
		}
	}
}

// TestNestedForIsSerial checks that a For inside a For completes (no
// deadlock) and covers its range.
func TestNestedForIsSerial(t *testing.T) {
	var total atomic.Int64
	For(8, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			For(100, func(a, b int) { total.Add(int64(b - a)) })
		}
	})
	if got := total.Load(); got != 800 {
		t.Fatalf("nested total = %d, want 800", got)
	}
}

func TestForNoAlloc(t *testing.T) {
	fn := func(lo, hi int) {}
	For(100, fn)
	if a := testing.AllocsPerRun(100, func() { For(100, fn) }); a > 0 {
		t.Fatalf("For allocates %.1f times per call", a)
	}
}

// TestForAfterPark checks loops posted to helpers that have parked (idle
// longer than spinFor) and to helpers still spinning: every index is
// visited once either way.
func TestForAfterPark(t *testing.T) {
	for round := 0; round < 20; round++ {
		if round%2 == 0 {
			time.Sleep(2 * spinFor) // the helpers park
		}
		var seen [64]int32
		ForChunk(len(seen), 1, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				atomic.AddInt32(&seen[i], 1)
			}
		})
		for i, c := range seen {
			if c != 1 {
				t.Fatalf("round %d: index %d visited %d times", round, i, c)
			}
		}
	}
}
