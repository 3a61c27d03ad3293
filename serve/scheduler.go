package serve

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/ddpm-go/ddpm"
	"github.com/ddpm-go/ddpm/diffusion"
)

// Errors a submitted job can end with, besides its context's error.
var (
	// ErrQueueFull: the queue of waiting requests is at its bound; the
	// client should retry later (HTTP 503 with Retry-After).
	ErrQueueFull = errors.New("the queue is full")
	// ErrShuttingDown: the server is draining or closed and takes no new
	// work, or it gave up on this job when the shutdown's deadline passed.
	ErrShuttingDown = errors.New("the server is shutting down")
)

// method is a reverse process the scheduler can step.
type method int

const (
	ancestral method = iota
	ddim
	respaced
)

// plan is how one request walks the reverse process: the network's
// timestep index at each step and the update that follows it. Each step is
// the library's own step function (SampleStep, DDIMStep) fed the network
// output computed for the whole batch, so a request's images are those of
// ddpm.Pipeline.SampleTensor bit for bit.
type plan struct {
	kind method
	d    *diffusion.Diffusion       // the process the steps are taken on
	r    *diffusion.SpacedDiffusion // respaced: the K-step process (d is its base)
	keep []int                      // ddim, respaced: the visited base indices, increasing
	eta  float64                    // ddim: η
	K    int                        // network evaluations per image
}

// newPlan makes the plan of a sampler on the process d; ddim and respaced
// visit the timesteps of spacing (the pipeline's, ddpm.Pipeline.Spacing and
// StepsOffset, as SampleTensor does).
func newPlan(kind method, d *diffusion.Diffusion, steps int, eta float64, spacing diffusion.Spacing, offset int) (*plan, error) {
	p := &plan{kind: kind, d: d, eta: eta}
	switch kind {
	case ancestral:
		p.K = d.T
		return p, nil
	case ddim, respaced:
		keep, err := spacing.Indices(d.T, steps, offset)
		if err != nil {
			return nil, err
		}
		p.keep, p.K = keep, len(keep)
		if kind == respaced {
			if p.r, err = d.Respace(keep); err != nil {
				return nil, err
			}
		}
		return p, nil
	}
	return nil, fmt.Errorf("serve: unknown sampler kind %d", kind)
}

// netIndex is the base-process timestep index the network sees at step
// pos (0 is the first step, from x_T).
func (p *plan) netIndex(pos int) int {
	if p.kind == ancestral {
		return p.d.T - 1 - pos
	}
	return p.keep[p.K-1-pos]
}

// paperT is the paper's t (1..T) of the network's input at step pos.
func (p *plan) paperT(pos int) int { return p.netIndex(pos) + 1 }

// step takes step pos on the n images of x with the network m (a replay of
// the batch's output), drawing its noise from rng as the library's
// samplers do; it returns x̂0, which lives in buf.
func (p *plan) step(pos int, m diffusion.Model, x []float32, n int, rng *rand.Rand, buf *diffusion.StepBuffers) []float32 {
	switch p.kind {
	case ancestral:
		return p.d.SampleStep(m, x, n, p.d.T-1-pos, rng, buf)
	case ddim:
		s := p.K - 1 - pos
		prev := -1
		if s > 0 {
			prev = p.keep[s-1]
		}
		return p.d.DDIMStep(m, x, n, p.keep[s], prev, p.eta, rng, buf)
	default:
		return p.r.SampleStep(p.r.Model(m), x, n, p.K-1-pos, rng, buf)
	}
}

// replay is the network as far as one job's step is concerned: the output
// the scheduler computed for the job's images within the whole batch.
type replay struct {
	out []float32
	t   int
}

func (r *replay) Predict(out, _ []float32, t []int) {
	if len(out) != len(r.out) {
		panic(fmt.Sprintf("serve: replayed network output has %d values, the step wants %d", len(r.out), len(out)))
	}
	for _, i := range t {
		if i != r.t {
			panic(fmt.Sprintf("serve: the batch was evaluated at index %d, the step wants %d", r.t, i))
		}
	}
	copy(out, r.out)
}

// event is what a job tells its request while it runs.
type event struct {
	kind  string // "start" (admitted to the batch) or "progress"
	done  int    // network evaluations done per image, over all chunks
	total int
	t     int       // progress: the paper's t of xt
	xt    []float32 // progress: the chunk's x_t before the step (a copy)
	x0    []float32 // progress: the network's x̂0 at that step (a copy)
	n     int       // images in xt and x0
}

// job is one request's images walking the reverse process. Its images are
// denoised chunk images at a time, as SampleTensor's batches are, each
// chunk starting from x_T drawn from the request's generator.
type job struct {
	ctx   context.Context
	m     *model
	plan  *plan
	n     int
	chunk int
	rng   *rand.Rand
	every int // send a progress event every so many steps (0: none)

	out    []float32 // n images; the current chunk is denoised in place
	lo, hi int       // the current chunk
	pos    int       // steps done in the current chunk
	buf    diffusion.StepBuffers

	events chan event // progress; sends never block (a slow reader misses some)
	done   chan error // one value: nil when out holds the images

	submitted, admitted time.Time
	ended               bool // finish was called

	eval *evalJob // non-nil: one network evaluation of out's images, not sampling (evaluate.go)
}

// newJob prepares a job of n images with chunks of chunk images.
func newJob(ctx context.Context, m *model, pl *plan, n, chunk int, seed uint64, every int) *job {
	return &job{
		ctx: ctx, m: m, plan: pl, n: n, chunk: chunk, every: every,
		rng:    ddpm.SampleRNG(seed),
		out:    make([]float32, n*m.dim),
		events: make(chan event, 8),
		done:   make(chan error, 1),
	}
}

// size is the number of images of the current chunk: the job's share of
// the batch.
func (j *job) size() int { return j.hi - j.lo }

// x is the current chunk's values.
func (j *job) x() []float32 { return j.out[j.lo*j.m.dim : j.hi*j.m.dim] }

// startChunk moves to the chunk beginning at lo and draws its x_T.
func (j *job) startChunk(lo int) {
	j.lo, j.hi, j.pos = lo, min(lo+j.chunk, j.n), 0
	if j.eval != nil {
		return // its images are the caller's x_t
	}
	diffusion.FillNormal(j.x(), j.rng)
}

// evaluations is the network evaluations per image of the whole job and
// those done so far.
func (j *job) progress() (done, total int) {
	chunks := (j.n + j.chunk - 1) / j.chunk
	return j.lo/j.chunk*j.plan.K + j.pos, chunks * j.plan.K
}

func (j *job) send(e event) {
	select {
	case j.events <- e:
	default:
	}
}

// finish ends the job with err (nil: done); later calls do nothing. Only
// the scheduler's goroutine calls it.
func (j *job) finish(err error) {
	if !j.ended {
		j.ended = true
		j.done <- err
	}
}

// scheduler is the one goroutine that runs the networks: the images of
// every admitted job are denoised together, one network evaluation per
// model per step, each image at its own timestep. Jobs wait in a bounded
// FIFO queue until their chunk fits into the batch, join between steps and
// leave between steps when they finish or their context is cancelled.
type scheduler struct {
	maxBatch, maxQueue int
	metrics            *metrics
	onStep             func(images int) // tests: called after each step with the batch's images

	mu      sync.Mutex
	waiting []*job
	closing bool // refuse new jobs; exit once the queue and the batch are empty

	wake   chan struct{} // a job was queued or closing was set
	abort  chan struct{} // closed: fail every job and exit
	exited chan struct{} // closed when run returns
	abortO sync.Once

	active []*job // owned by run
}

func newScheduler(maxBatch, maxQueue int, m *metrics) *scheduler {
	return &scheduler{
		maxBatch: maxBatch, maxQueue: maxQueue, metrics: m,
		wake: make(chan struct{}, 1), abort: make(chan struct{}), exited: make(chan struct{}),
	}
}

// submit queues j, or refuses it with ErrQueueFull or ErrShuttingDown.
func (s *scheduler) submit(j *job) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closing:
		return ErrShuttingDown
	case len(s.waiting) >= s.maxQueue:
		return ErrQueueFull
	}
	j.submitted = time.Now()
	s.waiting = append(s.waiting, j)
	s.metrics.queueDepth.Set(float64(len(s.waiting)))
	s.poke()
	return nil
}

func (s *scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// drain stops taking jobs and waits until the queued and running ones are
// done; when ctx ends first it fails them with ErrShuttingDown and waits
// for the goroutine to exit, returning ctx.Err().
func (s *scheduler) drain(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	s.poke()
	s.mu.Unlock()
	select {
	case <-s.exited:
		return nil
	case <-ctx.Done():
		s.close()
		return ctx.Err()
	}
}

// close fails every job with ErrShuttingDown and waits for the goroutine to
// exit.
func (s *scheduler) close() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.abortO.Do(func() { close(s.abort) })
	<-s.exited
}

// run is the scheduler's goroutine.
func (s *scheduler) run() {
	defer close(s.exited)
	for {
		select {
		case <-s.abort:
			s.failAll(ErrShuttingDown)
			return
		default:
		}
		s.mu.Lock()
		s.admit()
		idle, exit := len(s.active) == 0, s.closing && len(s.waiting) == 0 && len(s.active) == 0
		s.mu.Unlock()
		if exit {
			return
		}
		if idle {
			select {
			case <-s.wake:
			case <-s.abort:
			}
			continue
		}
		s.safeStep()
	}
}

// safeStep is step, ending the running jobs with an error instead of taking
// the server down should a step panic (a bug).
func (s *scheduler) safeStep() {
	defer func() {
		if r := recover(); r != nil {
			err := fmt.Errorf("internal error: %v", r)
			for _, j := range s.active {
				j.finish(err)
			}
			s.active = nil
			s.metrics.activeRequests.Set(0)
			s.metrics.batchImages.Set(0)
		}
	}()
	s.step()
}

// admit drops cancelled waiting jobs and moves jobs from the head of the
// queue into the batch while their first chunk fits. s.mu is held.
func (s *scheduler) admit() {
	s.waiting = slices.DeleteFunc(s.waiting, func(j *job) bool {
		if err := j.ctx.Err(); err != nil {
			j.finish(err)
			return true
		}
		return false
	})
	used := 0
	for _, j := range s.active {
		used += j.size()
	}
	k := 0
	for ; k < len(s.waiting); k++ {
		j := s.waiting[k]
		first := min(j.chunk, j.n)
		if used+first > s.maxBatch {
			break // FIFO: a large request is not overtaken
		}
		used += first
		j.admitted = time.Now()
		j.startChunk(0)
		_, total := j.progress()
		j.send(event{kind: "start", total: total})
		s.active = append(s.active, j)
	}
	s.waiting = slices.Delete(s.waiting, 0, k)
	s.metrics.queueDepth.Set(float64(len(s.waiting)))
	s.metrics.activeRequests.Set(float64(len(s.active)))
	s.metrics.batchImages.Set(float64(used))
}

// failAll ends every queued and running job with err.
func (s *scheduler) failAll(err error) {
	s.mu.Lock()
	w := s.waiting
	s.waiting = nil
	s.mu.Unlock()
	for _, j := range append(w, s.active...) {
		j.finish(err)
	}
	s.active = nil
	s.metrics.queueDepth.Set(0)
	s.metrics.activeRequests.Set(0)
	s.metrics.batchImages.Set(0)
}

// step drops the cancelled jobs, then takes one step of every other: one
// network evaluation per model over all of its jobs' images.
func (s *scheduler) step() {
	s.active = slices.DeleteFunc(s.active, func(j *job) bool {
		if err := j.ctx.Err(); err != nil {
			j.finish(err)
			return true
		}
		return false
	})
	images := 0
	for _, m := range s.models() {
		images += s.stepModel(m)
	}
	s.metrics.activeRequests.Set(float64(len(s.active)))
	if s.onStep != nil {
		s.onStep(images)
	}
}

// models lists the models of the active jobs, in order of first appearance.
func (s *scheduler) models() []*model {
	var ms []*model
	for _, j := range s.active {
		if !slices.Contains(ms, j.m) {
			ms = append(ms, j.m)
		}
	}
	return ms
}

// stepModel evaluates m's network once on the images of its jobs, each at
// its own timestep, and takes every job's step with its share of the
// output; finished jobs leave the batch. It returns the batch's size.
func (s *scheduler) stepModel(m *model) (images int) {
	var js []*job
	for _, j := range s.active {
		if j.m == m {
			js = append(js, j)
			images += j.size()
		}
	}
	dim, outDim := m.dim, m.outDim
	m.x = grow(m.x, images*dim)
	m.out = grow(m.out, images*outDim)
	m.t = grow(m.t, images)
	off := 0
	for _, j := range js {
		copy(m.x[off*dim:], j.x())
		if j.eval != nil {
			copy(m.t[off:], j.eval.t) // each image at its own index
		} else {
			i := j.plan.netIndex(j.pos)
			for b := range j.size() {
				m.t[off+b] = i
			}
		}
		off += j.size()
	}
	start := time.Now()
	if err := m.predict(m.out, m.x, m.t); err != nil {
		for _, j := range js {
			s.remove(j, err)
		}
		return images
	}
	s.metrics.observeStep(images, time.Since(start))

	off = 0
	for _, j := range js {
		n := j.size()
		if j.eval != nil { // a one-off evaluation: hand back its output
			copy(j.eval.dst, m.out[off*outDim:(off+n)*outDim])
			off += n
			s.remove(j, nil)
			continue
		}
		rep := &replay{out: m.out[off*outDim : (off+n)*outDim], t: m.t[off]}
		off += n
		done, total := j.progress()
		done++ // the evaluation just made
		report := j.every > 0 && (done == 1 || done%j.every == 0 || done == total)
		var xt []float32
		if report {
			xt = slices.Clone(j.x())
		}
		t := j.plan.paperT(j.pos)
		x0 := j.plan.step(j.pos, rep, j.x(), n, j.rng, &j.buf)
		if report {
			j.send(event{kind: "progress", done: done, total: total, t: t, xt: xt, x0: slices.Clone(x0), n: n})
		}
		j.pos++
		if j.pos < j.plan.K {
			continue
		}
		if j.hi < j.n {
			j.startChunk(j.hi)
			continue
		}
		s.metrics.images.Add(float64(j.n))
		s.remove(j, nil)
	}
	return images
}

// remove takes j out of the batch and ends it with err.
func (s *scheduler) remove(j *job, err error) {
	s.active = slices.DeleteFunc(s.active, func(a *job) bool { return a == j })
	j.finish(err)
}

func grow[E any](s []E, n int) []E {
	if cap(s) < n {
		return make([]E, n)
	}
	return s[:n]
}
