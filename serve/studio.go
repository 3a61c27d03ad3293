package serve

// The studio's experiments as API calls: q(x_t | x0) of an image, samples
// regenerated from it (Fig. 7), its bits/dim (eq. 5), its progressive lossy
// compression (Table 4, Fig. 5) and interpolation in x_t (Fig. 8). Each
// runs the library's pipeline method on a pipeline whose network
// evaluations join the scheduler's batch (evaluate.go).

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // uploads may be JPEG
	"image/png"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ddpm-go/ddpm"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/experiments/rd"
	"github.com/ddpm-go/ddpm/imgio"
)

// maxPixels bounds an uploaded image's width × height before it is
// decoded (a small PNG can claim a huge canvas).
const maxPixels = 4096 * 4096

// StudioRequest is the body of /noise, /regenerate, /bpd, /compress and
// /interpolate; each endpoint uses the fields it documents and refuses the
// others' only when they are unknown JSON.
type StudioRequest struct {
	// Model is a served model's name (default: the first served).
	Model string `json:"model,omitempty"`
	// Image is the picture (base64 PNG or JPEG, a data: URL too), cropped
	// to a square and resized to the model's resolution and channels.
	Image string `json:"image,omitempty"`
	// T is the paper's timestep t, 1..T.
	T int `json:"t,omitempty"`
	// N is the number of samples (regenerate) or of λ values (interpolate).
	N int `json:"n,omitempty"`
	// Seed seeds the noise (default: random, reported back).
	Seed *uint64 `json:"seed,omitempty"`
	// A and B are interpolate's two images (as Image); when one is absent
	// its SeedA/SeedB draws it (DDIM, 20 steps).
	A     string  `json:"a,omitempty"`
	B     string  `json:"b,omitempty"`
	SeedA *uint64 `json:"seed_a,omitempty"`
	SeedB *uint64 `json:"seed_b,omitempty"`
	// Every is how many reverse steps apart compress/stream's progress
	// events are (default T/40).
	Every int `json:"every,omitempty"`
}

// NoiseResponse is q(x_t | x0) of an image.
type NoiseResponse struct {
	Model     string  `json:"model"`
	T         int     `json:"t"`
	Seed      uint64  `json:"seed"`
	AlphaBar  float64 `json:"alpha_bar"` // ᾱ_t: x_t = √ᾱ_t x0 + √(1−ᾱ_t) ε
	Image     string  `json:"image"`     // x0 as the model sees it (base64 PNG)
	XT        string  `json:"xt"`        // x_t (base64 PNG)
	Evaluated int     `json:"network_evaluations"`
}

// RegenerateResponse is Fig. 7's row for one image: samples x0 ~ p(x0 | x_t)
// that share the image's x_t.
type RegenerateResponse struct {
	NoiseResponse
	Samples  []string `json:"samples"`   // base64 PNGs
	Grid     string   `json:"grid"`      // all samples, one row
	PixelStd float64  `json:"pixel_std"` // spread across the samples, on [0, 255]
	RMSE     float64  `json:"rmse"`      // samples against the image, on [0, 255]
	Seconds  float64  `json:"seconds"`
}

// BPDResponse is an image's variational bound (eq. 5) in bits/dim.
type BPDResponse struct {
	Model     string    `json:"model"`
	Seed      uint64    `json:"seed"`
	Image     string    `json:"image"`
	BPD       float64   `json:"bits_per_dim"` // L = L_T + Σ L_{t−1} + L_0
	Prior     float64   `json:"prior_bpd"`    // L_T
	Terms     float64   `json:"terms_bpd"`    // L_1 + … + L_{T−1}
	Decoder   float64   `json:"decoder_bpd"`  // L_0
	PerT      []float64 `json:"per_t_bpd"`    // index t−1: L_{t−1} (index 0: L_0)
	Evaluated int       `json:"network_evaluations"`
	Seconds   float64   `json:"seconds"`
}

// RDPoint is the rate–distortion curve after reverse step k (x_t received,
// t = T − k + 1).
type RDPoint struct {
	Step int     `json:"step"`
	T    int     `json:"t"`
	Rate float64 `json:"rate"` // bits/dim sent so far: L_T + … + L_t
	RMSE float64 `json:"rmse"` // of the receiver's x̂0, on [0, 255]
}

// CompressResponse is Table 4 and Fig. 5 for one image.
type CompressResponse struct {
	Model   string    `json:"model"`
	Seed    uint64    `json:"seed"`
	T       int       `json:"T"`
	Image   string    `json:"image"`
	Rate    []float64 `json:"rate"` // after reverse step k = 1..T (index k−1)
	RMSE    []float64 `json:"rmse"`
	Prior   float64   `json:"prior_bpd"`
	Decoder float64   `json:"decoder_bpd"`
	Total   float64   `json:"total_bpd"` // the whole bound: rate at the end plus the decoder
	Table   []RDPoint `json:"table"`     // Table 4's rows: steps T/10, 2T/10, …, T
	// Reconstructions are the receiver's x̂0 at the table's steps (base64 PNGs).
	Reconstructions []string `json:"reconstructions"`
	Seconds         float64  `json:"seconds"`
}

// CompressProgress is the data of compress/stream's progress events.
type CompressProgress struct {
	Step   int       `json:"step"` // reverse steps done, of total
	Total  int       `json:"total"`
	Points []RDPoint `json:"points"` // the curve's points since the last event
	XT     string    `json:"xt"`     // x_t received at this step (base64 PNG)
	X0     string    `json:"x0"`     // the receiver's reconstruction x̂0 from it
}

// InterpolateResponse is one row of Fig. 8.
type InterpolateResponse struct {
	Model   string    `json:"model"`
	T       int       `json:"t"`
	Seed    uint64    `json:"seed"`
	Lambdas []float64 `json:"lambdas"`
	A       string    `json:"a"`      // the two images as the model sees them
	B       string    `json:"b"`      //
	Images  []string  `json:"images"` // decoded (1−λ)x_t(a) + λx_t(b), one per λ
	Pixel   []string  `json:"pixel"`  // (1−λ)a + λb in pixel space, for comparison
	Grid    string    `json:"grid"`   // a, the row, b
	RMSEA   float64   `json:"rmse_a"` // λ = 0's image against a, on [0, 255]
	RMSEB   float64   `json:"rmse_b"` // λ = 1's image against b
	Seconds float64   `json:"seconds"`
}

// studio is a validated studio request.
type studio struct {
	StudioRequest
	m    *model
	seed uint64
	x0   *ddpm.Tensor // Image, decoded (nil when absent)
}

// readStudio decodes a studio request; needImage refuses one without Image.
func (s *Server) readStudio(w http.ResponseWriter, r *http.Request, needImage bool) (*studio, error) {
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(30 * time.Second))
	defer rc.SetReadDeadline(time.Time{})
	var sr StudioRequest
	if err := decodeBody(http.MaxBytesReader(w, r.Body, s.opts.MaxUploadBytes), &sr); err != nil {
		return nil, err
	}
	q := &studio{StudioRequest: sr}
	var err error
	if q.m, err = s.modelByName(sr.Model); err != nil {
		return nil, err
	}
	q.seed = rand.Uint64() >> 11 // exact in JSON numbers read as doubles
	if sr.Seed != nil {
		q.seed = *sr.Seed
	}
	if sr.Image != "" {
		if q.x0, err = s.decodeImage(q.m, sr.Image, "image"); err != nil {
			return nil, err
		}
	} else if needImage {
		return nil, badRequest("no image: send one as base64 PNG in \"image\"")
	}
	return q, nil
}

// decodeBody reads one JSON object with no unknown fields.
func decodeBody(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if mbe := new(http.MaxBytesError); errors.As(err, &mbe) {
			return decodeError(err)
		}
		return badRequest("malformed JSON: more than one value in the body")
	}
	return nil
}

func (s *Server) modelByName(name string) (*model, error) {
	if name == "" {
		return s.models[0], nil
	}
	if m := s.byName[name]; m != nil {
		return m, nil
	}
	return nil, &apiError{http.StatusNotFound, fmt.Sprintf("unknown model %q (serving %s)", name, strings.Join(s.modelNames(), ", "))}
}

// decodeImage turns a base64 PNG or JPEG (or a data: URL of one) into the
// model's input: centre-cropped, resized, grey or RGB as the model takes.
func (s *Server) decodeImage(m *model, b64s, field string) (*ddpm.Tensor, error) {
	if i := strings.Index(b64s, ";base64,"); strings.HasPrefix(b64s, "data:") && i >= 0 {
		b64s = b64s[i+len(";base64,"):]
	}
	raw, err := base64.StdEncoding.DecodeString(b64s)
	if err != nil {
		return nil, badRequest("%s: not base64: %v", field, err)
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(raw))
	if err != nil {
		return nil, badRequest("%s: not a PNG or JPEG image: %v", field, err)
	}
	if cfg.Width < 1 || cfg.Height < 1 || cfg.Width*cfg.Height > maxPixels {
		return nil, &apiError{http.StatusRequestEntityTooLarge, fmt.Sprintf("%s: %d×%d pixels, at most %d in all", field, cfg.Width, cfg.Height, maxPixels)}
	}
	img, _, err := image.Decode(bytes.NewReader(raw))
	if err != nil {
		return nil, badRequest("%s: %v", field, err)
	}
	return ddpm.ImageTensor([]image.Image{img}, m.p.Channels(), m.p.Resolution()), nil
}

// checkT checks the paper's t (0: def) against T and MaxSteps, since
// decoding from x_t costs t network evaluations per image.
func (s *Server) checkT(q *studio, def int) (int, error) {
	t, T := q.T, q.m.p.T()
	if t == 0 {
		t = def
	}
	if t < 1 || t > T {
		return 0, badRequest("t = %d out of range 1..%d (T)", t, T)
	}
	if t > s.opts.MaxSteps {
		return 0, badRequest("t = %d: decoding from x_t costs t network evaluations per image, this server allows at most %d", t, s.opts.MaxSteps)
	}
	return t, nil
}

// checkCount checks a count (0: def) against 1..max.
func checkCount(name string, v, def, lo, hi int) (int, error) {
	if v == 0 {
		v = def
	}
	if v < lo || v > hi {
		return 0, badRequest("%s = %d out of range %d..%d", name, v, lo, hi)
	}
	return v, nil
}

// run calls f with a pipeline whose network evaluations join the batch,
// and turns its errors into API errors: the scheduler's refusals (503), the
// library's invalid options (400).
func (s *Server) run(ctx context.Context, m *model, f func(ctx context.Context, p *ddpm.Pipeline) error) (evals int, err error) {
	b, p := s.newBatchModel(ctx, m)
	defer b.cancel()
	err = f(b.ctx, p)
	if e := b.Err(); e != nil {
		return b.evals, e
	}
	if errors.Is(err, ddpm.ErrInvalidOption) {
		return b.evals, badRequest("%s", strings.TrimPrefix(err.Error(), ddpm.ErrInvalidOption.Error()+": "))
	}
	return b.evals, err
}

// jsonCall makes a handler of fn, which computes a JSON answer: the
// wrapper times and logs the call and writes the value or the error.
func (s *Server) jsonCall(fn func(w http.ResponseWriter, r *http.Request, start time.Time) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		v, err := fn(w, r, start)
		s.answer(w, r, start, v, err)
	}
}

// studioCall is jsonCall for the calls on images: the body is read first
// (its "image" required when needImage).
func (s *Server) studioCall(needImage bool, fn func(r *http.Request, q *studio, start time.Time) (any, error)) http.HandlerFunc {
	return s.jsonCall(func(w http.ResponseWriter, r *http.Request, start time.Time) (any, error) {
		q, err := s.readStudio(w, r, needImage)
		if err != nil {
			return nil, err
		}
		return fn(r, q, start)
	})
}

// answer writes v, or err unless the client has gone; it logs the request.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, start time.Time, v any, err error) {
	outcome := "ok"
	if err != nil {
		outcome = err.Error()
	}
	s.logf("%s %s: %s in %.2fs", r.Method, r.URL.Path, outcome, time.Since(start).Seconds())
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, v)
	case r.Context().Err() != nil: // the client is gone
	default:
		if ae := new(apiError); errors.As(err, &ae) && ae.code < 500 {
			s.metrics.rejected.WithLabelValues("bad_request").Inc()
		}
		s.writeErr(w, err)
	}
}

func (s *Server) png(m *model, x []float32, n int) string {
	return b64(s.gridPNG(m, x, n, n, png.DefaultCompression))
}

// pngs encodes each image of t.
func (s *Server) pngs(m *model, t *ddpm.Tensor) []string {
	out := make([]string, t.N)
	d := len(t.Data) / t.N
	for i := range out {
		out[i] = s.png(m, t.Data[i*d:(i+1)*d], 1)
	}
	return out
}

// handleNoise answers q(x_t | x0): the image noised to t, no network.
func (s *Server) handleNoise(r *http.Request, q *studio, start time.Time) (any, error) {
	t, err := s.checkT(q, q.m.p.T()/2)
	if err != nil {
		return nil, err
	}
	return s.noise(q, t)
}

func (s *Server) noise(q *studio, t int) (*NoiseResponse, error) {
	xt, err := q.m.p.Noised(q.x0, t, q.seed)
	if err != nil {
		return nil, badRequest("%v", err)
	}
	return &NoiseResponse{
		Model: q.m.name, T: t, Seed: q.seed, AlphaBar: q.m.p.Process.AlphasCumprod[t-1],
		Image: s.png(q.m, q.x0.Data, 1), XT: s.png(q.m, xt.Data, 1),
	}, nil
}

// handleRegenerate draws n samples from the image's x_t (Fig. 7).
func (s *Server) handleRegenerate(r *http.Request, q *studio, start time.Time) (any, error) {
	t, err := s.checkT(q, q.m.p.T()/2)
	if err != nil {
		return nil, err
	}
	n, err := checkCount("n", q.N, min(8, s.opts.MaxImages), 1, s.opts.MaxImages)
	if err != nil {
		return nil, err
	}
	resp := &RegenerateResponse{}
	nr, err := s.noise(q, t)
	if err != nil {
		return nil, err
	}
	resp.NoiseResponse = *nr
	var res *ddpm.SharedResult
	resp.Evaluated, err = s.run(r.Context(), q.m, func(ctx context.Context, p *ddpm.Pipeline) (err error) {
		res, err = p.SharedLatents(ctx, ddpm.SharedOptions{Steps: []int{t}, PerRow: n, Image: q.x0, Seed: q.seed})
		return err
	})
	if err != nil {
		return nil, err
	}
	row := res.Rows[0]
	resp.Samples = s.pngs(q.m, row.Samples)
	resp.Grid = s.png(q.m, row.Samples.Data, n)
	resp.PixelStd, resp.RMSE, resp.Seconds = row.PixelStd, row.RMSE, time.Since(start).Seconds()
	return resp, nil
}

// checkBound refuses a bound (T network evaluations) beyond MaxSteps.
func (s *Server) checkBound(m *model) error {
	if T := m.p.T(); T > s.opts.MaxSteps {
		return badRequest("the bound costs T = %d network evaluations, this server allows at most %d", T, s.opts.MaxSteps)
	}
	return nil
}

// handleBPD computes the image's bound in bits/dim, every term exact.
func (s *Server) handleBPD(r *http.Request, q *studio, start time.Time) (any, error) {
	if err := s.checkBound(q.m); err != nil {
		return nil, err
	}
	var b *diffusion.Bound
	evals, err := s.run(r.Context(), q.m, func(ctx context.Context, p *ddpm.Pipeline) (err error) {
		b, err = p.BitsPerDim(ctx, q.x0, ddpm.BPDOptions{Seed: q.seed})
		return err
	})
	if err != nil {
		return nil, err
	}
	sum := b.Summary(1)
	return &BPDResponse{
		Model: q.m.name, Seed: q.seed, Image: s.png(q.m, q.x0.Data, 1),
		BPD: sum.TotalBPD, Prior: sum.PriorBPD, Terms: sum.TermsBPD, Decoder: sum.DecoderBPD, PerT: sum.PerTBPD,
		Evaluated: evals, Seconds: time.Since(start).Seconds(),
	}, nil
}

// compress runs the image through progressive lossy compression;
// progress, when set, gets the curve as it grows, every `every` steps.
func (s *Server) compress(ctx context.Context, q *studio, every int, progress func(CompressProgress)) (*CompressResponse, error) {
	m, T := q.m, q.m.p.T()
	rate := q.m.p.Process.PriorBPD(q.x0.Data, 1)[0] // bits sent before step 1: L_T
	var pending []RDPoint
	var xt, x0 []float32
	table := map[int]string{} // t → x̂0 at Table 4's steps
	for _, k := range rd.TableSteps(T) {
		table[T-k+1] = ""
	}
	// Pairs come for i = T−1 down to 0, one per reverse step k = T − i:
	// x_t (t = i+1) has been received with the rate so far, and x̂0(x_t)
	// is the receiver's reconstruction. The pair's term L_i is sent with
	// the next step (i = 0's is the decoder L_0, not part of the rate).
	o := ddpm.RDOptions{Seed: q.seed, Batch: every}
	o.Observe = func(_, i int, xtv, xs []float32) {
		xt, x0 = append(xt[:0], xtv...), append(x0[:0], xs...)
		if _, ok := table[i+1]; ok {
			table[i+1] = s.png(m, xs, 1)
		}
		pending = append(pending, RDPoint{Step: T - i, T: i + 1, RMSE: imgio.RMSE255(xs, q.x0.Data)})
	}
	o.Term = func(_, i int, bits float64) {
		pending[len(pending)-1].Rate = rate // Observe came first for this pair
		if i > 0 {
			rate += bits
		}
	}
	o.Progress = func(done, total int) {
		if progress != nil {
			progress(CompressProgress{Step: done, Total: total, Points: pending, XT: s.png(m, xt, 1), X0: s.png(m, x0, 1)})
		}
		pending = pending[:0]
	}
	start := time.Now()
	var res *ddpm.RDResult
	_, err := s.run(ctx, m, func(ctx context.Context, p *ddpm.Pipeline) (err error) {
		res, err = p.RateDistortion(ctx, q.x0, o)
		return err
	})
	if err != nil {
		return nil, err
	}
	resp := &CompressResponse{
		Model: m.name, Seed: q.seed, T: T, Image: s.png(m, q.x0.Data, 1), Rate: res.Rate, RMSE: res.RMSE,
		Prior: res.Prior, Decoder: res.Decoder, Total: res.Total, Seconds: time.Since(start).Seconds(),
	}
	for _, row := range res.Table() {
		t := T - row.ReverseStep + 1
		resp.Table = append(resp.Table, RDPoint{Step: row.ReverseStep, T: t, Rate: row.Rate, RMSE: row.RMSE})
		resp.Reconstructions = append(resp.Reconstructions, table[t])
	}
	return resp, nil
}

func (s *Server) readCompress(w http.ResponseWriter, r *http.Request) (*studio, int, error) {
	q, err := s.readStudio(w, r, true)
	if err != nil {
		return nil, 0, err
	}
	if err := s.checkBound(q.m); err != nil {
		return nil, 0, err
	}
	T := q.m.p.T()
	every, err := checkCount("every", q.Every, max(1, T/40), 1, T)
	return q, every, err
}

// handleCompress answers the whole curve at once.
func (s *Server) handleCompress(w http.ResponseWriter, r *http.Request, start time.Time) (any, error) {
	q, every, err := s.readCompress(w, r)
	if err != nil {
		return nil, err
	}
	return s.compress(r.Context(), q, max(every, 64), nil)
}

// handleCompressStream streams the curve as it grows: "progress" events
// (CompressProgress), then "done" (CompressResponse) or "error".
func (s *Server) handleCompressStream(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	q, every, err := s.readCompress(w, r)
	if err != nil {
		s.answer(w, r, start, nil, err)
		return
	}
	send := startEvents(w, q.seed)
	send("queued", map[string]any{"seed": q.seed, "model": q.m.name, "total": q.m.p.T()})
	resp, err := s.compress(r.Context(), q, every, func(p CompressProgress) { send("progress", p) })
	s.logf("%s %s: %s, seed %d: %v in %.2fs", r.Method, r.URL.Path, q.m.name, q.seed, errOK(err), time.Since(start).Seconds())
	switch {
	case r.Context().Err() != nil: // the client is gone
	case err != nil:
		send("error", map[string]string{"error": err.Error()})
	default:
		send("done", resp)
	}
}

func errOK(err error) any {
	if err == nil {
		return "ok"
	}
	return err
}

// startEvents writes the headers of a Server-Sent Events answer and
// returns its send function.
func startEvents(w http.ResponseWriter, seed uint64) func(name string, v any) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	h.Set("X-Seed", strconv.FormatUint(seed, 10))
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	return func(name string, v any) {
		b, _ := json.Marshal(v)
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, b)
		rc.Flush()
	}
}

// handleInterpolate decodes mixes of two images' x_t at one t (Fig. 8).
func (s *Server) handleInterpolate(r *http.Request, q *studio, start time.Time) (any, error) {
	if q.Image != "" {
		return nil, badRequest("interpolate takes two images, \"a\" and \"b\", not \"image\"")
	}
	t, err := s.checkT(q, q.m.p.T()/2)
	if err != nil {
		return nil, err
	}
	n, err := checkCount("n", q.N, min(9, s.opts.MaxImages), 2, s.opts.MaxImages)
	if err != nil {
		return nil, err
	}
	a, err := s.endpoint(r.Context(), q, q.A, q.SeedA, "a")
	if err != nil {
		return nil, err
	}
	b, err := s.endpoint(r.Context(), q, q.B, q.SeedB, "b")
	if err != nil {
		return nil, err
	}
	lambdas := make([]float64, n)
	for k := range lambdas {
		lambdas[k] = float64(k) / float64(n-1)
	}
	var res *ddpm.Interpolation
	if _, err := s.run(r.Context(), q.m, func(ctx context.Context, p *ddpm.Pipeline) (err error) {
		res, err = p.Interpolate(ctx, a, b, ddpm.InterpolateOptions{Steps: []int{t}, Lambdas: lambdas, Seed: q.seed})
		return err
	}); err != nil {
		return nil, err
	}
	row := res.Rows[0]
	grid := append(append(append([]float32(nil), a.Data...), row.Images.Data...), b.Data...)
	return &InterpolateResponse{
		Model: q.m.name, T: t, Seed: q.seed, Lambdas: lambdas,
		A: s.png(q.m, a.Data, 1), B: s.png(q.m, b.Data, 1),
		Images: s.pngs(q.m, row.Images), Pixel: s.pngs(q.m, res.Pixel), Grid: s.png(q.m, grid, n+2),
		RMSEA: row.RMSEA, RMSEB: row.RMSEB, Seconds: time.Since(start).Seconds(),
	}, nil
}

// endpoint is one of interpolate's images: decoded from img, or sampled
// with seed (DDIM, 20 steps) through the batch.
func (s *Server) endpoint(ctx context.Context, q *studio, img string, seed *uint64, name string) (*ddpm.Tensor, error) {
	switch {
	case img != "" && seed != nil:
		return nil, badRequest("give %q or \"seed_%s\", not both", name, name)
	case img != "":
		return s.decodeImage(q.m, img, name)
	case seed == nil:
		return nil, badRequest("no image %q: send a base64 PNG in %q or a seed in \"seed_%s\"", name, name, name)
	}
	var x *ddpm.Tensor
	_, err := s.run(ctx, q.m, func(ctx context.Context, p *ddpm.Pipeline) (err error) {
		x, err = p.SampleTensor(ctx, 1, ddpm.SampleOptions{Sampler: ddpm.DDIM(min(20, p.T())), Seed: *seed})
		return err
	})
	return x, err
}

// ExamplesResponse is GET /api/v1/examples: the model's first test images.
type ExamplesResponse struct {
	Model  string   `json:"model"`
	Data   string   `json:"data"`
	Images []string `json:"images"`
}

// handleExamples answers the first n (default 8, at most 64) test images
// of the model's training data, as the model sees them.
func (s *Server) handleExamples(w http.ResponseWriter, r *http.Request, start time.Time) (any, error) {
	m, err := s.modelByName(r.URL.Query().Get("model"))
	if err != nil {
		return nil, err
	}
	n := 8
	if v := r.URL.Query().Get("n"); v != "" {
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > 64 {
			return nil, badRequest("n = %q: want a whole number 1..64", v)
		}
	}
	x, err := m.p.DataTensor("", "test", n)
	if err != nil {
		return nil, &apiError{http.StatusNotFound, fmt.Sprintf("no test images for model %s: %v", m.name, err)}
	}
	return &ExamplesResponse{Model: m.name, Data: m.p.Source.String(), Images: s.pngs(m, x)}, nil
}
