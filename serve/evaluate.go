package serve

import (
	"context"
	"sync"
	"time"

	"github.com/ddpm-go/ddpm"
)

// The studio's experiments (bits/dim, regeneration, compression,
// interpolation, Langevin sampling) run the library's own pipeline methods,
// but their network evaluations join the scheduler's shared batch: a
// batchModel is a diffusion.Model whose Predict queues its images — each
// with its own timestep — as a one-step job and waits for the batched
// evaluation, and ddpm.Pipeline.Through makes a pipeline that uses it.

// evalJob is a job's one-off network evaluation: the job's images (its
// out, as for sampling jobs) at the timestep indices t; the scheduler
// copies their share of the batch's output into dst and ends the job.
type evalJob struct {
	t   []int
	dst []float32
}

// batchModel evaluates a model's network through the scheduler. The first
// error (queue full, shutting down) cancels its context, so the pipeline
// method running on it stops at its next check; err says why.
type batchModel struct {
	s      *Server
	m      *model
	ctx    context.Context
	cancel context.CancelFunc

	mu  sync.Mutex
	err error

	evals int // network evaluations requested (images), for the log
	start time.Time
}

// newBatchModel returns the model and a pipeline that evaluates through
// it; call cancel when done.
func (s *Server) newBatchModel(ctx context.Context, m *model) (*batchModel, *ddpm.Pipeline) {
	b := &batchModel{s: s, m: m, start: time.Now()}
	b.ctx, b.cancel = context.WithCancel(ctx)
	return b, m.p.Through(b)
}

// fail records the first error and cancels the pipeline's context.
func (b *batchModel) fail(err error) {
	b.mu.Lock()
	if b.err == nil {
		b.err = err
	}
	b.mu.Unlock()
	b.cancel()
}

// Err is the error that stopped the model, or nil.
func (b *batchModel) Err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// Predict evaluates the images xt at indices t within the scheduler's next
// batches, at most MaxBatch images at a time, and blocks until done. After
// a failure it returns zeros at once (the caller stops at its next context
// check).
func (b *batchModel) Predict(out, xt []float32, t []int) {
	n := len(t)
	if n == 0 {
		return
	}
	in, od := len(xt)/n, len(out)/n
	for lo := 0; lo < n; lo += b.s.opts.MaxBatch {
		hi := min(lo+b.s.opts.MaxBatch, n)
		if b.ctx.Err() != nil || b.Err() != nil {
			clear(out[lo*od:])
			return
		}
		j := newEvalJob(b.ctx, b.m, xt[lo*in:hi*in], t[lo:hi], out[lo*od:hi*od])
		if err := b.s.sched.submit(j); err != nil {
			b.s.metrics.rejected.WithLabelValues(rejectReason(err)).Inc()
			b.fail(err)
			clear(out[lo*od:])
			return
		}
		b.evals += hi - lo
		// Always wait: the scheduler may still be writing into out until
		// it ends the job, which it does within a step of a cancellation.
		if err := <-j.done; err != nil {
			b.fail(err)
			clear(out[lo*od:])
			return
		}
	}
}

// newEvalJob is a job of one network evaluation of the images x at
// indices t, its output going to dst.
func newEvalJob(ctx context.Context, m *model, x []float32, t []int, dst []float32) *job {
	n := len(t)
	j := &job{
		ctx: ctx, m: m, plan: &plan{K: 1}, n: n, chunk: n,
		out:    append([]float32(nil), x...),
		events: make(chan event, 1),
		done:   make(chan error, 1),
		eval:   &evalJob{t: t, dst: dst},
	}
	return j
}

func rejectReason(err error) string {
	if err == ErrShuttingDown {
		return "shutting_down"
	}
	return "queue_full"
}
