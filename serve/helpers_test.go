package serve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ddpm-go/ddpm"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/imgio"
	"github.com/ddpm-go/ddpm/model/unet"
)

// tinyPipeline is a small random network (8×8 grey images) on a T-step
// process: fast enough to run ancestral sampling in a test. Its weights are
// perturbed away from the DDPM initialisation (which zeroes the output
// layer) so that every image's output depends on its input and timestep.
func tinyPipeline(t testing.TB, T int, learned bool) *ddpm.Pipeline {
	t.Helper()
	cfg := unet.Config{InCh: 1, Res: 8, Ch: 8, ChMult: []int{1, 2}, NumResBlocks: 1, AttnRes: []int{4}, Groups: 4}
	dc := diffusion.DefaultConfig()
	dc.T = T
	if learned {
		cfg.OutCh = 2
		dc.Var = diffusion.Learned
	}
	net, err := unet.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, uint64(T)))
	net.Init(rng)
	for i, w := range net.Weights() {
		net.Weights()[i] = w + float32(0.05*rng.NormFloat64())
	}
	p, err := ddpm.New(net, dc)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// loadMNIST loads the shipped MNIST model. The server and the reference
// runs need loads of their own: a network is not safe for concurrent use.
func loadMNIST(t testing.TB) *ddpm.Pipeline {
	t.Helper()
	p, err := ddpm.Load("mnist")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// testServer is a Server behind an httptest server, with a client of its
// own and a goroutine check at cleanup.
type testServer struct {
	*Server
	http   *httptest.Server
	client *http.Client
	url    string
}

func newTestServer(t testing.TB, o Options) *testServer {
	t.Helper()
	base := baseline(t)
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	ts := &testServer{Server: s, http: hs, client: &http.Client{Transport: &http.Transport{}}, url: hs.URL}
	t.Cleanup(func() {
		ts.client.CloseIdleConnections()
		hs.Close()
		s.Close()
		checkGoroutines(t, base)
	})
	return ts
}

// baseline is the goroutine count once the engine's worker pool runs.
func baseline(t testing.TB) int {
	p := tinyPipeline(t, 10, false)
	out := make([]float32, 8*8)
	p.Net.Predict(out, make([]float32, 8*8), []int{0})
	return runtime.NumGoroutine()
}

// checkGoroutines waits for the goroutine count to come back to base.
func checkGoroutines(t testing.TB, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > base {
		var b bytes.Buffer
		pprof.Lookup("goroutine").WriteTo(&b, 1)
		t.Errorf("%d goroutines after the test, %d before:\n%s", n, base, b.String())
	}
}

// post sends a JSON body (a string is sent as is).
func (ts *testServer) post(ctx context.Context, path string, body any, header ...string) (*http.Response, []byte, error) {
	var r io.Reader
	switch b := body.(type) {
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, err := json.Marshal(body)
		if err != nil {
			return nil, nil, err
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, "POST", ts.url+path, r)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k := 0; k+1 < len(header); k += 2 {
		req.Header.Set(header[k], header[k+1])
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// sampleJSON posts a request for the JSON answer and checks its status.
func (ts *testServer) sampleJSON(t *testing.T, body map[string]any) *SampleResponse {
	t.Helper()
	r, err := ts.trySample(body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// statusError is a non-200 answer.
type statusError struct {
	code int
	body string
	resp *http.Response
}

func (e *statusError) Error() string { return fmt.Sprintf("%d %s", e.code, e.body) }

// trySample is sampleJSON for other goroutines than the test's.
func (ts *testServer) trySample(body map[string]any) (*SampleResponse, error) {
	b := map[string]any{"format": "json"}
	for k, v := range body {
		b[k] = v
	}
	resp, raw, err := ts.post(context.Background(), "/api/v1/sample", b)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return nil, &statusError{resp.StatusCode, string(raw), resp}
	}
	var r SampleResponse
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// decodePNG decodes a base64 PNG.
func decodePNG(t *testing.T, s string) image.Image {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// sameImage reports whether two images have the same pixels.
func sameImage(a, b image.Image) bool {
	if a.Bounds() != b.Bounds() {
		return false
	}
	r := a.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if a.At(x, y) != b.At(x, y) {
				return false
			}
		}
	}
	return true
}

// checkImages compares a response's images with values computed directly.
func checkImages(t *testing.T, what string, r *SampleResponse, want *ddpm.Tensor) {
	t.Helper()
	if len(r.Images) != want.N {
		t.Fatalf("%s: %d images, want %d", what, len(r.Images), want.N)
	}
	d := want.C * want.H * want.W
	for i, s := range r.Images {
		w := imgio.GridImage(want.Data[i*d:(i+1)*d], 1, want.C, want.H, want.W, 1)
		if !sameImage(decodePNG(t, s), w) {
			t.Errorf("%s: image %d differs from SampleTensor's", what, i)
		}
	}
}

// sseEvent is one Server-Sent Event.
type sseEvent struct {
	name string
	data []byte
}

// readSSE reads events from a stream until it ends, sending each to out.
func readSSE(r io.Reader, out chan<- sseEvent) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var ev sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.name != "" {
				out <- ev
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev.data = append(ev.data, strings.TrimPrefix(line, "data: ")...)
		}
	}
	return sc.Err()
}

// stepWatch hands the scheduler's steps to a test one at a time (Options'
// onStep) until free is called.
type stepWatch struct {
	ch   chan int
	stop chan struct{}
	once sync.Once
}

func newStepWatch() *stepWatch {
	return &stepWatch{ch: make(chan int), stop: make(chan struct{})}
}

func (w *stepWatch) hook(images int) {
	select {
	case w.ch <- images:
	case <-w.stop:
	}
}

// next waits for the next step and returns its batch size.
func (w *stepWatch) next(t *testing.T) int {
	t.Helper()
	select {
	case n := <-w.ch:
		return n
	case <-time.After(30 * time.Second):
		t.Fatal("no scheduler step within 30 s")
		return 0
	}
}

// free lets the scheduler run on unwatched.
func (w *stepWatch) free() { w.once.Do(func() { close(w.stop) }) }

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// queued is the number of requests waiting for room in the batch.
func (s *Server) queued() int {
	s.sched.mu.Lock()
	defer s.sched.mu.Unlock()
	return len(s.sched.waiting)
}
