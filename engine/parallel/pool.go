// Package parallel runs data-parallel loops on a persistent pool of worker
// goroutines, one per GOMAXPROCS. The engine calls it thousands of times per
// training step, so it must not start a goroutine or allocate per call: the
// workers are started once and woken through channels.
package parallel

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// task is one parallel loop handed to the workers.
type task struct {
	fn    func(lo, hi int)
	n     int
	chunk int
	next  atomic.Int64 // next chunk index to claim
	wg    sync.WaitGroup
}

var (
	startOnce sync.Once
	nworkers  int
	wake      []chan *task
	busy      atomic.Bool
	pool      = sync.Pool{New: func() any { return new(task) }}
)

func start() {
	nworkers = runtime.GOMAXPROCS(0)
	wake = make([]chan *task, nworkers-1)
	for i := range wake {
		wake[i] = make(chan *task, 1)
		go worker(wake[i])
	}
}

func worker(c chan *task) {
	for t := range c {
		t.run()
		t.wg.Done()
	}
}

func (t *task) run() {
	nchunks := int64((t.n + t.chunk - 1) / t.chunk)
	for {
		i := t.next.Add(1) - 1
		if i >= nchunks {
			return
		}
		lo := int(i) * t.chunk
		hi := min(lo+t.chunk, t.n)
		t.fn(lo, hi)
	}
}

// Workers is the number of goroutines a loop is spread over.
func Workers() int {
	startOnce.Do(start)
	return nworkers
}

// For calls fn(lo, hi) over disjoint ranges covering [0, n), spread over the
// pool. It returns when every range is done. Ranges are about n/(4·workers)
// long so that uneven work still balances. A For called from inside another
// For (nested parallelism) runs serially in the calling goroutine.
func For(n int, fn func(lo, hi int)) {
	ForChunk(n, 0, fn)
}

// ForChunk is For with an explicit range length (0 picks one).
func ForChunk(n, chunk int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	w := Workers()
	if w == 1 || n == 1 || !busy.CompareAndSwap(false, true) {
		fn(0, n)
		return
	}
	defer busy.Store(false)
	if chunk <= 0 {
		chunk = (n + 4*w - 1) / (4 * w)
	}
	if chunk >= n {
		fn(0, n)
		return
	}
	t := pool.Get().(*task)
	t.fn, t.n, t.chunk = fn, n, chunk
	t.next.Store(0)
	helpers := min(w-1, (n+chunk-1)/chunk-1)
	t.wg.Add(helpers)
	for i := 0; i < helpers; i++ {
		wake[i] <- t
	}
	t.run()
	t.wg.Wait()
	t.fn = nil
	pool.Put(t)
}

// Serial reports whether a For called now would run serially (the pool is
// already busy with an enclosing loop).
func Serial() bool { return busy.Load() }
