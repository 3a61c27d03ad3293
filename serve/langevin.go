package serve

import (
	"context"
	"fmt"
	"image/png"
	"net/http"
	"time"

	"github.com/ddpm-go/ddpm"
	"github.com/ddpm-go/ddpm/imgio"
)

// Annealed Langevin sampling has no step plan of the scheduler's; it runs
// the library's sampler (Pipeline.SampleTensor) on a pipeline whose network
// evaluations join the batch (evaluate.go), so its images are those of
// `ddpm sample --sampler langevin` with the same seed and settings.

// langevin samples q's images; progress, when set, sees every every-th
// network evaluation's x_t and x̂0. The job it returns carries the images
// and times for SampleResponse.
func (s *Server) langevin(ctx context.Context, q *request, every int, progress func(ProgressEvent)) (*job, error) {
	j := &job{submitted: time.Now()}
	total := q.steps * ((q.n + s.chunk - 1) / s.chunk)
	done := 0
	o := ddpm.SampleOptions{Sampler: *q.langevin, Seed: q.seed, Batch: s.chunk}
	if progress != nil {
		o.Observe = func(i int, xt, x0 []float32) {
			done++
			if done != 1 && done%every != 0 && done != total {
				return
			}
			res, c, n := q.m.p.Resolution(), q.m.p.Channels(), len(xt)/q.m.dim
			cols := q.Cols
			if cols > n {
				cols = 0
			}
			progress(ProgressEvent{
				Step: done, Total: total, T: i + 1,
				XT: b64(pngBytes(imgio.GridImage(xt, n, c, res, res, cols), png.BestSpeed)),
				X0: b64(pngBytes(imgio.GridImage(x0, n, c, res, res, cols), png.BestSpeed)),
			})
		}
	}
	var x *ddpm.Tensor
	_, err := s.run(ctx, q.m, func(ctx context.Context, p *ddpm.Pipeline) (err error) {
		j.admitted = time.Now()
		x, err = p.SampleTensor(ctx, q.n, o)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.metrics.images.Add(float64(q.n))
	j.out = x.Data
	return j, nil
}

// streamLangevin is handleStream for the langevin sampler.
func (s *Server) streamLangevin(w http.ResponseWriter, r *http.Request, q *request, every int, start time.Time) {
	send := startEvents(w, q.seed)
	send("queued", map[string]any{"seed": q.seed, "model": q.m.name, "sampler": q.sampler, "steps": q.steps, "n": q.n})
	send("start", map[string]any{"total": q.steps * ((q.n + s.chunk - 1) / s.chunk), "queued_seconds": time.Since(start).Seconds()})
	j, err := s.langevin(r.Context(), q, every, func(e ProgressEvent) { send("progress", e) })
	s.logRequest(r, q, start, err)
	switch {
	case r.Context().Err() != nil: // the client is gone
	case err != nil:
		send("error", map[string]string{"error": err.Error()})
	default:
		send("done", s.response(q, j, start))
	}
}

// describe is the sampler for a log line or a header.
func (q *request) describe() string {
	if l := q.langevin; l != nil {
		return fmt.Sprintf("langevin, %d levels × %d updates, step scale %g", l.Levels, l.Steps, l.StepScale)
	}
	return q.plan.describe()
}
