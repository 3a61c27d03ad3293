// Package serve is `ddpm serve`: an HTTP API and a web studio over a
// batching serving core.
//
// One scheduler goroutine owns the networks. The images of every request
// in flight are denoised together — one network evaluation per model per
// step for the whole batch, each image at its own timestep — so that eight
// clients at once cost about one batch rather than eight runs. Requests
// join and leave the batch between steps; a request whose client goes away
// frees its place at the next step. Each step is the diffusion package's
// own (SampleStep, DDIMStep, the respaced process's SampleStep) fed the
// batch's network output, so a request's images are bit for bit those of
// ddpm.Pipeline.SampleTensor with the same seed.
//
// The API (docs/serve.md, and /api/v1/openapi.json):
//
//	GET  /api/v1/models          the models served
//	POST /api/v1/sample          {"model":"mnist","n":4,"sampler":"ddim","steps":10,"seed":1} → PNG grid (or JSON)
//	POST /api/v1/sample/stream   the same as Server-Sent Events: progress with x_t and x̂0, then the images
//	POST /api/v1/noise, /regenerate, /bpd, /compress(/stream), /interpolate   the studio's experiments (studio.go)
//	GET  /metrics                Prometheus metrics
//	GET  /                       the web studio
package serve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ddpm-go/ddpm"
)

// Options configure a [Server]. The zero value serves the shipped MNIST
// model with the defaults below.
type Options struct {
	// Models are the models to serve, as ddpm.Load takes them: a shipped
	// name, a run directory, a checkpoint or weights file, a diffusers
	// folder. A shipped model is served under its name, any other under its
	// file or folder name without the extension. Nil and no Pipelines:
	// ddpm.DefaultModel.
	Models []string
	// Pipelines are models loaded already (a program embedding the server,
	// tests), served under their map keys, after Models.
	Pipelines map[string]*ddpm.Pipeline
	// MaxBatch is the most images denoised in one network evaluation (0: 64).
	// A request's images are denoised min(64, MaxBatch) at a time.
	MaxBatch int
	// Queue is the most requests waiting for room in the batch (0: 64);
	// beyond it requests are refused with 503 and Retry-After.
	Queue int
	// MaxImages is the most images one request may ask for (0: 64).
	MaxImages int
	// MaxSteps is the most network evaluations per image one request may
	// ask for (0: 1000): DDIM and respaced steps, T for ancestral.
	MaxSteps int
	// MaxBodyBytes limits a request body (0: 64 KiB); larger bodies get 413.
	MaxBodyBytes int64
	// MaxUploadBytes limits the body of the studio's calls that carry
	// images (/noise, /regenerate, /bpd, /compress, /interpolate; 0: 1 MiB).
	MaxUploadBytes int64
	// RetryAfter is what a 503 asks clients to wait (0: 2 s).
	RetryAfter time.Duration
	// ShutdownTimeout is how long ListenAndServe lets running requests
	// finish after its context ends before cancelling them (0: 30 s).
	ShutdownTimeout time.Duration
	// Logf, when set, gets one line per request and per lifecycle event.
	Logf func(format string, args ...any)

	onStep func(images int) // tests: after each scheduler step
}

func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.MaxBatch, 64)
	def(&o.Queue, 64)
	def(&o.MaxImages, 64)
	def(&o.MaxSteps, 1000)
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 64 << 10
	}
	if o.MaxUploadBytes <= 0 {
		o.MaxUploadBytes = 1 << 20
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = 2 * time.Second
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 30 * time.Second
	}
	if o.Models == nil && len(o.Pipelines) == 0 {
		o.Models = []string{ddpm.DefaultModel}
	}
	return o
}

// model is one served pipeline and the scheduler's batch buffers for it.
type model struct {
	name        string
	p           *ddpm.Pipeline
	dim, outDim int // values per image in and out of the network

	x, out []float32 // the batch, owned by the scheduler
	t      []int
}

func newModel(name string, p *ddpm.Pipeline) *model {
	c := p.Net.Config()
	return &model{name: name, p: p, dim: c.InCh * c.Res * c.Res, outDim: c.OutCh * c.Res * c.Res}
}

// predict runs the network, turning a panic (a bug) into an error for the
// jobs of the batch rather than a crash of the server.
func (m *model) predict(out, x []float32, t []int) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error: network evaluation failed: %v", r)
		}
	}()
	m.p.Net.Predict(out, x, t)
	return nil
}

// Server is the serving core, its HTTP API and the web studio.
type Server struct {
	opts    Options
	models  []*model // in the order of Options
	byName  map[string]*model
	sched   *scheduler
	metrics *metrics
	handler http.Handler
	chunk   int // images of a request denoised together (SampleTensor's Batch)
}

// New loads the models and starts the scheduler. Stop it with Shutdown or
// Close.
func New(opts Options) (*Server, error) {
	o := opts.withDefaults()
	s := &Server{opts: o, byName: map[string]*model{}, metrics: newMetrics(), chunk: min(ddpm.DefaultBatch, o.MaxBatch)}
	add := func(name string, p *ddpm.Pipeline) error {
		if _, dup := s.byName[name]; dup {
			return fmt.Errorf("serve: two models named %q", name)
		}
		m := newModel(name, p)
		s.models = append(s.models, m)
		s.byName[name] = m
		return nil
	}
	for _, src := range o.Models {
		p, err := ddpm.Load(src)
		if err != nil {
			return nil, fmt.Errorf("serve: %w", err)
		}
		if err := add(ModelName(src, p.Source), p); err != nil {
			return nil, err
		}
	}
	names := make([]string, 0, len(o.Pipelines))
	for name := range o.Pipelines {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if name == "" || o.Pipelines[name] == nil {
			return nil, fmt.Errorf("serve: a pipeline needs a name and a model")
		}
		if err := add(name, o.Pipelines[name]); err != nil {
			return nil, err
		}
	}
	s.sched = newScheduler(o.MaxBatch, o.Queue, s.metrics)
	s.sched.onStep = o.onStep
	s.handler = s.routes()
	go s.sched.run()
	return s, nil
}

// ModelName is the name a model source is served under: a shipped model's
// name, otherwise the file or folder name without its extension.
func ModelName(source string, src ddpm.Source) string {
	if src.Kind == ddpm.Shipped {
		return src.Name
	}
	base := filepath.Base(filepath.Clean(source))
	if ext := filepath.Ext(base); ext != "" && ext != base {
		base = strings.TrimSuffix(base, ext)
	}
	return base
}

// Handler is the HTTP API, the metrics and the web studio.
func (s *Server) Handler() http.Handler { return s.handler }

// Shutdown stops taking requests (new ones get 503) and waits until the
// running and queued ones are done; when ctx ends first they are ended with
// ErrShuttingDown and Shutdown returns ctx.Err(). The HTTP server in front
// of Handler is the caller's to shut down.
func (s *Server) Shutdown(ctx context.Context) error { return s.sched.drain(ctx) }

// Close ends every running and queued request with ErrShuttingDown and
// stops the scheduler.
func (s *Server) Close() { s.sched.close() }

// HTTPServer is an http.Server for Handler with the timeouts a public
// endpoint needs: headers within 10 s, idle connections closed after 2 min.
// It has no write timeout, since a stream lasts as long as its sampling;
// request bodies are limited and read under a deadline by the handlers.
func (s *Server) HTTPServer(addr string) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

// ListenAndServe serves on addr until ctx ends, then shuts down
// gracefully: no new connections or requests, the running requests get
// Options.ShutdownTimeout to finish before they are cancelled. ready, when
// not nil, is called with the address listened on.
func (s *Server) ListenAndServe(ctx context.Context, addr string, ready func(net.Addr)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		s.Close()
		return err
	}
	if ready != nil {
		ready(ln.Addr())
	}
	return s.Serve(ctx, ln)
}

// Serve is ListenAndServe on a listener.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := s.HTTPServer(ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		s.Close()
		return err
	case <-ctx.Done():
	}
	s.logf("shutting down: finishing the running requests (at most %s)", s.opts.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	drained := make(chan error, 1)
	go func() { drained <- s.Shutdown(sctx) }()
	herr := hs.Shutdown(sctx)
	derr := <-drained
	if herr != nil {
		hs.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	if derr != nil {
		return fmt.Errorf("serve: shutdown: running requests cancelled after %s", s.opts.ShutdownTimeout)
	}
	return nil
}

func (s *Server) logf(format string, args ...any) {
	if s.opts.Logf != nil {
		s.opts.Logf(format, args...)
	}
}
