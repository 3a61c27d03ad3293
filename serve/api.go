package serve

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ddpm-go/ddpm"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/imgio"
)

// SampleRequest is the body of POST /api/v1/sample and /sample/stream.
// Absent fields take their defaults; unknown fields are refused.
type SampleRequest struct {
	// Model is a served model's name (default: the first served).
	Model string `json:"model,omitempty"`
	// N is the number of images (default 1, at most Options.MaxImages).
	N *int `json:"n,omitempty"`
	// Sampler is ancestral, ddim (default) or respaced.
	Sampler string `json:"sampler,omitempty"`
	// Steps are the timesteps ddim and respaced visit (default min(50, T));
	// ancestral takes all T (0 or T).
	Steps int `json:"steps,omitempty"`
	// Eta is DDIM's η in [0, 1] (default 0, deterministic).
	Eta *float64 `json:"eta,omitempty"`
	// Seed seeds x_T and the noise (default: a random seed, reported back).
	Seed *uint64 `json:"seed,omitempty"`
	// Format is png (a grid) or json (per-image PNGs); default by Accept.
	Format string `json:"format,omitempty"`
	// Cols are the grid's columns (default about √n).
	Cols int `json:"cols,omitempty"`
	// Every is how many steps apart the stream's progress events are
	// (default: about 20 events per request).
	Every int `json:"every,omitempty"`
	// Updates are langevin's updates per noise level (default 5); its
	// steps are the noise levels (default min(20, T)).
	Updates int `json:"updates,omitempty"`
	// StepScale is langevin's r in α_i = r·σ_i², 0 < r < 4 (default 1).
	StepScale *float64 `json:"step_scale,omitempty"`
}

// SampleResponse is the JSON answer of /sample and the stream's final event.
type SampleResponse struct {
	Model    string   `json:"model"`
	Sampler  string   `json:"sampler"`
	Steps    int      `json:"steps"`
	Eta      float64  `json:"eta"`
	Seed     uint64   `json:"seed"`
	N        int      `json:"n"`
	Channels int      `json:"channels"`
	Width    int      `json:"width"`
	Height   int      `json:"height"`
	Images   []string `json:"images"` // base64 PNGs, one per image
	Grid     string   `json:"grid"`   // base64 PNG of all images
	Seconds  float64  `json:"seconds"`
	Queued   float64  `json:"queued_seconds"` // waiting for room in the batch
}

// ModelInfo is one entry of GET /api/v1/models.
type ModelInfo struct {
	Name       string   `json:"name"`
	Resolution int      `json:"resolution"`
	Channels   int      `json:"channels"`
	T          int      `json:"T"`
	Source     string   `json:"source"`
	Samplers   []string `json:"samplers"`
	MaxSteps   int      `json:"max_steps"`
	MaxImages  int      `json:"max_images"`
}

// ProgressEvent is the data of the stream's progress events.
type ProgressEvent struct {
	Step  int    `json:"step"`  // network evaluations done per image
	Total int    `json:"total"` // of this many
	T     int    `json:"t"`     // the paper's t of x_t
	XT    string `json:"xt"`    // base64 PNG grid of x_t
	X0    string `json:"x0"`    // base64 PNG grid of the predicted x̂0
}

// samplers are the names the API knows, in the order documented.
var samplers = []string{"ancestral", "ddim", "respaced", "langevin"}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	allow := map[string]string{} // path → its method, for 405s
	handle := func(method, path, name string, h http.HandlerFunc) {
		mux.Handle(method+" "+path, s.metrics.instrument(name, h))
		allow[path] = method
	}
	handle("GET", "/api/v1/models", "models", s.handleModels)
	handle("POST", "/api/v1/sample", "sample", s.handleSample)
	handle("POST", "/api/v1/sample/stream", "stream", s.handleStream)
	handle("POST", "/api/v1/noise", "noise", s.studioCall(true, s.handleNoise))
	handle("POST", "/api/v1/regenerate", "regenerate", s.studioCall(true, s.handleRegenerate))
	handle("POST", "/api/v1/bpd", "bpd", s.studioCall(true, s.handleBPD))
	handle("POST", "/api/v1/compress", "compress", s.jsonCall(s.handleCompress))
	handle("POST", "/api/v1/compress/stream", "compress_stream", s.handleCompressStream)
	handle("POST", "/api/v1/interpolate", "interpolate", s.studioCall(false, s.handleInterpolate))
	handle("GET", "/api/v1/examples", "examples", s.jsonCall(s.handleExamples))
	handle("GET", "/api/v1/openapi.json", "openapi", s.handleOpenAPI)
	handle("GET", "/healthz", "healthz", s.handleHealth)
	mux.Handle("GET /metrics", s.metrics.handler())
	page := webHandler()
	mux.Handle("/", s.metrics.instrument("other", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m, ok := allow[r.URL.Path]; ok {
			w.Header().Set("Allow", m)
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s: the endpoint takes %s", r.Method, r.URL.Path, m))
			return
		}
		switch {
		case strings.HasPrefix(r.URL.Path, "/api/"):
			writeError(w, http.StatusNotFound, fmt.Sprintf("no endpoint %s %s (see /api/v1/openapi.json)", r.Method, r.URL.Path))
		case r.Method != http.MethodGet && r.Method != http.MethodHead:
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s: the page takes GET", r.Method, r.URL.Path))
		default:
			page.ServeHTTP(w, r)
		}
	})))
	return securityHeaders(mux)
}

// securityHeaders keeps the page to its own origin: no external requests,
// no framing.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'")
		hd.Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}

// apiError is an error with its HTTP status.
type apiError struct {
	code int
	msg  string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, a ...any) *apiError {
	return &apiError{http.StatusBadRequest, fmt.Sprintf(format, a...)}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func (s *Server) writeErr(w http.ResponseWriter, err error) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		writeError(w, ae.code, ae.msg)
	case errors.Is(err, ErrQueueFull), errors.Is(err, ErrShuttingDown):
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(s.opts.RetryAfter.Seconds()))))
		if errors.Is(err, ErrShuttingDown) {
			w.Header().Set("Connection", "close")
		}
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	out := make([]ModelInfo, len(s.models))
	for k, m := range s.models {
		out[k] = ModelInfo{
			Name: m.name, Resolution: m.p.Resolution(), Channels: m.p.Channels(), T: m.p.T(),
			Source: m.p.Source.String(), Samplers: s.samplersFor(m), MaxSteps: s.opts.MaxSteps, MaxImages: s.opts.MaxImages,
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"models": out})
}

// samplersFor lists the samplers a model can be served with: ancestral
// only when its T is within MaxSteps.
func (s *Server) samplersFor(m *model) []string {
	if m.p.T() > s.opts.MaxSteps {
		return samplers[1:]
	}
	return samplers
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	s.sched.mu.Lock()
	closing := s.sched.closing
	s.sched.mu.Unlock()
	if closing {
		s.writeErr(w, ErrShuttingDown)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// request is a validated sample request.
type request struct {
	SampleRequest
	m       *model
	n       int
	kind    method
	steps   int
	eta     float64
	seed    uint64
	asJSON  bool
	plan    *plan
	sampler string

	langevin *diffusion.Langevin // set for the langevin sampler, which has no plan (langevin.go)
}

// readRequest decodes and checks a sample request.
func (s *Server) readRequest(w http.ResponseWriter, r *http.Request) (*request, error) {
	// A slow body must not hold a handler for long; the limit answers 413.
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(30 * time.Second))
	defer rc.SetReadDeadline(time.Time{})
	body := http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	var sr SampleRequest
	if err := dec.Decode(&sr); err != nil {
		return nil, decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if mbe := new(http.MaxBytesError); errors.As(err, &mbe) {
			return nil, decodeError(err)
		}
		return nil, badRequest("malformed JSON: more than one value in the body")
	}
	q := &request{SampleRequest: sr}
	if sr.Model == "" {
		q.m = s.models[0]
	} else if q.m = s.byName[sr.Model]; q.m == nil {
		return nil, &apiError{http.StatusNotFound, fmt.Sprintf("unknown model %q (serving %s)", sr.Model, strings.Join(s.modelNames(), ", "))}
	}
	T := q.m.p.T()
	q.n = 1
	if sr.N != nil {
		q.n = *sr.N
	}
	if q.n < 1 || q.n > s.opts.MaxImages {
		return nil, badRequest("n = %d out of range 1..%d", q.n, s.opts.MaxImages)
	}
	q.sampler = sr.Sampler
	if q.sampler == "" {
		q.sampler = "ddim"
	}
	switch q.sampler {
	case "ancestral":
		q.kind = ancestral
		if sr.Steps != 0 && sr.Steps != T {
			return nil, badRequest("ancestral sampling takes all T = %d steps; steps = %d (use ddim or respaced for fewer)", T, sr.Steps)
		}
		q.steps = T
	case "ddim", "respaced":
		q.kind = ddim
		lo := 1
		if q.sampler == "respaced" {
			q.kind, lo = respaced, 2
		}
		q.steps = sr.Steps
		if q.steps == 0 {
			q.steps = max(lo, min(50, T, s.opts.MaxSteps))
		}
		if q.steps < lo || q.steps > T {
			return nil, badRequest("steps = %d out of range %d..%d (T) for %s", q.steps, lo, T, q.sampler)
		}
	case "langevin":
		l := ddpm.Langevin()
		l.Levels, l.Steps = cmp.Or(sr.Steps, min(20, T)), cmp.Or(sr.Updates, 5)
		if sr.StepScale != nil {
			l.StepScale = *sr.StepScale
		}
		if !(l.StepScale > 0 && l.StepScale < 4) || l.Levels < 1 || sr.Updates < 0 {
			return nil, badRequest("langevin needs steps (noise levels) 1..%d, updates ≥ 1 and 0 < step_scale < 4", T)
		}
		if err := l.Validate(T); err != nil {
			return nil, badRequest("%v", strings.TrimPrefix(err.Error(), "diffusion: "))
		}
		q.langevin, q.steps = &l, l.Evaluations(T)
	default:
		return nil, badRequest("unknown sampler %q (have %s)", sr.Sampler, strings.Join(samplers, ", "))
	}
	if q.langevin == nil && (sr.Updates != 0 || sr.StepScale != nil) {
		return nil, badRequest("updates and step_scale apply to the langevin sampler only")
	}
	if q.steps > s.opts.MaxSteps {
		return nil, badRequest("%s with %d steps: this server allows at most %d network evaluations per image", q.sampler, q.steps, s.opts.MaxSteps)
	}
	if sr.Eta != nil {
		if q.kind != ddim {
			return nil, badRequest("eta applies to the ddim sampler only")
		}
		if q.eta = *sr.Eta; !(q.eta >= 0 && q.eta <= 1) {
			return nil, badRequest("eta = %g out of range 0..1", q.eta)
		}
	}
	if sr.Seed != nil {
		q.seed = *sr.Seed
	} else {
		q.seed = rand.Uint64() >> 11 // exact in JSON numbers read as doubles
	}
	switch sr.Format {
	case "":
		q.asJSON = acceptsJSON(r.Header.Get("Accept"))
	case "png":
	case "json":
		q.asJSON = true
	default:
		return nil, badRequest("unknown format %q (have png, json)", sr.Format)
	}
	if sr.Cols < 0 || sr.Cols > q.n {
		return nil, badRequest("cols = %d out of range 0..%d (n)", sr.Cols, q.n)
	}
	if sr.Every < 0 {
		return nil, badRequest("every = %d must be ≥ 0", sr.Every)
	}
	if q.langevin != nil {
		return q, nil
	}
	pl, err := newPlan(q.kind, q.m.p.Process, q.steps, q.eta, q.m.p.Spacing, q.m.p.StepsOffset)
	if err != nil {
		return nil, badRequest("%v", err)
	}
	q.plan = pl
	return q, nil
}

func decodeError(err error) error {
	if mbe := new(http.MaxBytesError); errors.As(err, &mbe) {
		return &apiError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", mbe.Limit)}
	}
	if errors.Is(err, io.EOF) {
		return badRequest("empty body: want a JSON object")
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return badRequest("malformed JSON: unexpected end of the body")
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return badRequest("malformed JSON: %s must be a %s, got a %s", te.Field, te.Type, te.Value)
	}
	return badRequest("malformed JSON: %v", strings.TrimPrefix(err.Error(), "json: "))
}

// acceptsJSON reports whether an Accept header asks for JSON (rather than
// the default PNG).
func acceptsJSON(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case "image/png":
			return false
		case "application/json":
			return true
		}
	}
	return false
}

func (s *Server) modelNames() []string {
	names := make([]string, len(s.models))
	for k, m := range s.models {
		names[k] = m.name
	}
	return names
}

// submit queues the request's job; every is its progress interval (0:
// none).
func (s *Server) submit(ctx context.Context, q *request, every int) (*job, error) {
	j := newJob(ctx, q.m, q.plan, q.n, s.chunk, q.seed, every)
	if err := s.sched.submit(j); err != nil {
		reason := "queue_full"
		if errors.Is(err, ErrShuttingDown) {
			reason = "shutting_down"
		}
		s.metrics.rejected.WithLabelValues(reason).Inc()
		return nil, err
	}
	return j, nil
}

func (s *Server) handleSample(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	q, err := s.readRequest(w, r)
	if err != nil {
		s.answer(w, r, start, nil, err)
		return
	}
	var j *job
	if q.langevin != nil {
		j, err = s.langevin(r.Context(), q, 0, nil)
	} else if j, err = s.submit(r.Context(), q, 0); err == nil {
		err = <-j.done
	} else {
		s.writeErr(w, err)
		return
	}
	s.logRequest(r, q, start, err)
	if err != nil {
		if r.Context().Err() != nil {
			return // the client is gone
		}
		s.writeErr(w, err)
		return
	}
	if q.asJSON {
		writeJSON(w, http.StatusOK, s.response(q, j, start))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "image/png")
	h.Set("X-Seed", strconv.FormatUint(q.seed, 10))
	h.Set("X-Model", q.m.name)
	h.Set("X-Sampler", q.describe())
	h.Set("Content-Disposition", fmt.Sprintf(`inline; filename="%s-%s-seed%d.png"`, q.m.name, q.sampler, q.seed))
	w.Write(s.gridPNG(q.m, j.out, q.n, q.Cols, png.DefaultCompression))
}

func (s *Server) logRequest(r *http.Request, q *request, start time.Time, err error) {
	outcome := "ok"
	if err != nil {
		outcome = err.Error()
	}
	s.logf("%s %s: %s, %d images, %s, seed %d: %s in %.2fs", r.Method, r.URL.Path, q.m.name, q.n, q.describe(), q.seed, outcome, time.Since(start).Seconds())
}

// describe is the sampler for a log line or a header.
func (p *plan) describe() string {
	switch p.kind {
	case ancestral:
		return "ancestral"
	case ddim:
		return fmt.Sprintf("ddim, %d steps, eta %g", p.K, p.eta)
	}
	return fmt.Sprintf("respaced, %d steps", p.K)
}

// response is the JSON answer for a finished job.
func (s *Server) response(q *request, j *job, start time.Time) *SampleResponse {
	m := q.m
	c, res := m.p.Channels(), m.p.Resolution()
	imgs := make([]string, q.n)
	for i := range imgs {
		imgs[i] = b64(pngBytes(imgio.GridImage(j.out[i*m.dim:(i+1)*m.dim], 1, c, res, res, 1), png.DefaultCompression))
	}
	return &SampleResponse{
		Model: m.name, Sampler: q.sampler, Steps: q.steps, Eta: q.eta, Seed: q.seed, N: q.n,
		Channels: c, Width: res, Height: res, Images: imgs,
		Grid:    b64(s.gridPNG(m, j.out, q.n, q.Cols, png.DefaultCompression)),
		Seconds: time.Since(start).Seconds(), Queued: j.admitted.Sub(j.submitted).Seconds(),
	}
}

func (s *Server) gridPNG(m *model, x []float32, n, cols int, level png.CompressionLevel) []byte {
	res := m.p.Resolution()
	return pngBytes(imgio.GridImage(x[:n*m.dim], n, m.p.Channels(), res, res, cols), level)
}

func pngBytes(img image.Image, level png.CompressionLevel) []byte {
	var b bytes.Buffer
	enc := png.Encoder{CompressionLevel: level}
	if err := enc.Encode(&b, img); err != nil {
		panic("serve: PNG of an in-memory image: " + err.Error()) // cannot fail writing to memory
	}
	return b.Bytes()
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// handleStream answers a sample request as Server-Sent Events: "queued"
// at once, "start" when the request joins the batch, "progress" every few
// steps with the x_t and x̂0 grids, then "done" with the SampleResponse, or
// "error". Errors found before the stream starts are plain JSON errors.
func (s *Server) handleStream(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	q, err := s.readRequest(w, r)
	if err != nil {
		s.answer(w, r, start, nil, err)
		return
	}
	every := q.Every
	if every == 0 {
		every = max(1, q.steps/20)
	}
	if q.langevin != nil {
		s.streamLangevin(w, r, q, every, start)
		return
	}
	j, err := s.submit(r.Context(), q, every)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	h.Set("X-Seed", strconv.FormatUint(q.seed, 10))
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	send := func(name string, v any) {
		b, _ := json.Marshal(v)
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, b)
		rc.Flush()
	}
	send("queued", map[string]any{"seed": q.seed, "model": q.m.name, "sampler": q.sampler, "steps": q.steps, "n": q.n})
	keepAlive := time.NewTicker(15 * time.Second)
	defer keepAlive.Stop()
	event := func(e event) {
		switch e.kind {
		case "start":
			send("start", map[string]any{"total": e.total, "queued_seconds": time.Since(start).Seconds()})
		case "progress":
			res, c := q.m.p.Resolution(), q.m.p.Channels()
			cols := q.Cols
			if cols > e.n {
				cols = 0
			}
			send("progress", ProgressEvent{
				Step: e.done, Total: e.total, T: e.t,
				XT: b64(pngBytes(imgio.GridImage(e.xt, e.n, c, res, res, cols), png.BestSpeed)),
				X0: b64(pngBytes(imgio.GridImage(e.x0, e.n, c, res, res, cols), png.BestSpeed)),
			})
		}
	}
	for {
		select {
		case e := <-j.events:
			event(e)
		case <-keepAlive.C:
			fmt.Fprint(w, ": keep-alive\n\n")
			rc.Flush()
		case err := <-j.done:
			s.logRequest(r, q, start, err)
			if r.Context().Err() != nil {
				return // the client is gone
			}
			for len(j.events) > 0 { // sent before the job ended
				event(<-j.events)
			}
			if err != nil {
				send("error", map[string]string{"error": err.Error()})
				return
			}
			send("done", s.response(q, j, start))
			return
		}
	}
}
