// Package parallel runs data-parallel loops on a persistent pool of worker
// goroutines, one per GOMAXPROCS. The engine calls it thousands of times per
// training step, so it must not start a goroutine or allocate per call: the
// workers are started once and woken through channels.
package parallel

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// task is one parallel loop handed to the workers.
type task struct {
	fn      func(lo, hi int)
	n       int
	chunk   int
	next    atomic.Int64 // next chunk index to claim
	pending atomic.Int32 // helpers still running the loop
}

// worker is one helper goroutine's mailbox. Between loops a helper spins
// on it for a while before it parks on wake: on a virtual machine a parked
// thread's CPU halts, and waking it again goes through the hypervisor and
// can take tens to hundreds of microseconds, every time, on each of the
// ~120 loops of a U-Net forward (BenchmarkSampleStepMNISTFast). OpenMP
// runtimes spin for the same reason.
type worker struct {
	task   atomic.Pointer[task]
	parked atomic.Bool
	wake   chan struct{} // one token per unpark
	_      [64]byte      // keeps workers' hot fields on separate cache lines
}

// spinFor is how long an idle helper keeps polling for the next loop
// before it parks: longer than the serial gaps between a network's layers,
// short enough that an idle process stops using the CPU at once.
const spinFor = 500 * time.Microsecond

var (
	startOnce sync.Once
	nworkers  int
	workers   []*worker
	busy      atomic.Bool
	pool      = sync.Pool{New: func() any { return new(task) }}
)

func start() {
	nworkers = runtime.GOMAXPROCS(0)
	workers = make([]*worker, nworkers-1)
	for i := range workers {
		w := &worker{wake: make(chan struct{}, 1)}
		workers[i] = w
		go w.loop()
	}
}

// loop runs the loops handed to w: it polls w.task for spinFor after each,
// then parks until post wakes it.
func (w *worker) loop() {
	for {
		idle := time.Now()
		for spins := 0; ; spins++ {
			if t := w.task.Swap(nil); t != nil {
				t.run()
				t.pending.Add(-1)
				idle, spins = time.Now(), 0
				continue
			}
			if spins%64 == 63 && time.Since(idle) > spinFor {
				break
			}
			runtime.Gosched()
		}
		// Park. post sees parked and sends a token only if it wins the
		// CompareAndSwap below; whoever wins, the task is run once.
		w.parked.Store(true)
		if t := w.task.Swap(nil); t != nil {
			if !w.parked.CompareAndSwap(true, false) {
				<-w.wake // post unparked us and sent a token: take it
			}
			w.task.Store(t) // run it at the top of the loop
			continue
		}
		<-w.wake
	}
}

// post hands t to w, waking w if it is parked.
func (w *worker) post(t *task) {
	w.task.Store(t)
	if w.parked.CompareAndSwap(true, false) {
		w.wake <- struct{}{}
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
	t.pending.Store(int32(helpers))
	for i := 0; i < helpers; i++ {
		workers[i].post(t)
	}
	t.run()
	// The helpers are finishing their last chunks: wait without parking
	// (Gosched lets a goroutine waiting for this P run meanwhile).
	for t.pending.Load() > 0 {
		runtime.Gosched()
	}
	t.fn = nil
	pool.Put(t)
}

// Serial reports whether a For called now would run serially (the pool is
// already busy with an enclosing loop).
func Serial() bool { return busy.Load() }
