package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ddpm-go/ddpm"
	"github.com/ddpm-go/ddpm/diffusion"
)

// TestConcurrentClients: 24 clients at once against the shipped MNIST
// model with a small batch and queue: each is answered with the images it
// would get alone (bit for bit) or refused cleanly with 503 and
// Retry-After; the images of several requests share network evaluations.
func TestConcurrentClients(t *testing.T) {
	var biggest atomic.Int64
	ts := newTestServer(t, Options{
		Models: []string{"mnist"}, MaxBatch: 16, Queue: 10,
		onStep: func(n int) {
			for {
				b := biggest.Load()
				if int64(n) <= b || biggest.CompareAndSwap(b, int64(n)) {
					return
				}
			}
		},
	})
	ref := loadMNIST(t)
	const clients = 24
	type result struct {
		r    *SampleResponse
		err  error
		body map[string]any
	}
	results := make([]result, clients)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for k := range clients {
		body := map[string]any{"model": "mnist", "n": 1 + k%3, "sampler": "ddim", "steps": 3, "seed": 1000 + k}
		switch {
		case k%5 == 0:
			body["sampler"] = "respaced"
		case k%4 == 0:
			body["eta"] = 0.5
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r, err := ts.trySample(body)
			results[k] = result{r, err, body}
		}()
	}
	close(start)
	wg.Wait()
	ok, refused := 0, 0
	for k, res := range results {
		if res.err != nil {
			var se *statusError
			if !errors.As(res.err, &se) || se.code != http.StatusServiceUnavailable || se.resp.Header.Get("Retry-After") == "" || !strings.Contains(se.body, `"error"`) {
				t.Fatalf("client %d: %v", k, res.err)
			}
			refused++
			continue
		}
		ok++
		var s diffusion.Sampler = ddpm.DDIM(3)
		if res.body["sampler"] == "respaced" {
			s = ddpm.Respaced(3)
		} else if eta, has := res.body["eta"]; has {
			s = diffusion.DDIM{Steps: 3, Eta: eta.(float64)}
		}
		want, err := ref.SampleTensor(context.Background(), res.r.N, ddpm.SampleOptions{Sampler: s, Seed: uint64(1000 + k)})
		if err != nil {
			t.Fatal(err)
		}
		checkImages(t, fmt.Sprintf("client %d %v", k, res.body), res.r, want)
	}
	t.Logf("%d answered, %d refused with 503; largest batch %d images", ok, refused, biggest.Load())
	if ok == 0 {
		t.Fatal("no client was answered")
	}
	if biggest.Load() <= 3 {
		t.Errorf("largest batch %d images: the requests were not batched", biggest.Load())
	}
}

// TestQueueFull: with the batch busy and the queue at its bound, a request
// is refused at once with 503, Retry-After and a JSON error; the queued
// one runs when there is room.
func TestQueueFull(t *testing.T) {
	w := newStepWatch()
	defer w.free()
	ts := tinyServer(t, Options{MaxBatch: 2, Queue: 1, RetryAfter: 3 * time.Second, onStep: w.hook})
	var wg sync.WaitGroup
	var errA, errB error
	wg.Add(2)
	go func() { defer wg.Done(); _, errA = ts.trySample(map[string]any{"n": 2, "steps": 4}) }()
	if n := w.next(t); n != 2 {
		t.Fatalf("first step of %d images, want 2", n)
	}
	go func() { defer wg.Done(); _, errB = ts.trySample(map[string]any{"n": 1, "steps": 4}) }()
	waitFor(t, "the second request to queue", func() bool { return ts.queued() == 1 })
	for _, path := range []string{"/api/v1/sample", "/api/v1/sample/stream"} {
		resp, b, err := ts.post(context.Background(), path, map[string]any{"n": 1})
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "3" || !strings.Contains(string(b), `{"error":"the queue is full"}`) {
			t.Errorf("%s with the queue full: %s, Retry-After %q, %s", path, resp.Status, resp.Header.Get("Retry-After"), b)
		}
	}
	w.free()
	wg.Wait()
	if errA != nil || errB != nil {
		t.Fatalf("the running and the queued request: %v, %v", errA, errB)
	}
	resp, err := ts.client.Get(ts.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	if _, err := fmt.Fprint(&b, readAll(resp)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `ddpm_serve_rejected_total{reason="queue_full"} 2`) {
		t.Errorf("metrics do not count the two refusals")
	}
}

func readAll(resp *http.Response) string {
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

// streamEvents starts a stream request and returns its events as they come.
func (ts *testServer) stream(t *testing.T, ctx context.Context, body map[string]any) <-chan sseEvent {
	t.Helper()
	raw, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, "POST", ts.url+"/api/v1/sample/stream", strings.NewReader(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan sseEvent, 1024)
	go func() {
		defer close(events)
		resp, err := ts.client.Do(req)
		if err != nil {
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			events <- sseEvent{name: "status", data: []byte(resp.Status)}
			return
		}
		readSSE(resp.Body, events)
	}()
	return events
}

// nextEvent waits for an event of the stream.
func nextEvent(t *testing.T, events <-chan sseEvent) sseEvent {
	t.Helper()
	select {
	case e, ok := <-events:
		if !ok {
			t.Fatal("the stream ended")
		}
		return e
	case <-time.After(30 * time.Second):
		t.Fatal("no event within 30 s")
	}
	return sseEvent{}
}

// TestStream: queued, start, progress events with x_t and x̂0 grids, then
// the images of a plain request.
func TestStream(t *testing.T) {
	ts := tinyServer(t, Options{})
	body := map[string]any{"n": 3, "sampler": "respaced", "steps": 10, "seed": 5, "every": 3}
	events := ts.stream(t, context.Background(), body)
	var names []string
	var last ProgressEvent
	var done SampleResponse
	for e := range events {
		names = append(names, e.name)
		switch e.name {
		case "progress":
			if err := json.Unmarshal(e.data, &last); err != nil {
				t.Fatal(err)
			}
			for _, s := range []string{last.XT, last.X0} {
				if b := decodePNG(t, s).Bounds(); b.Dx() <= 2*8 || b.Dy() <= 2*8 || b.Dx() > 3*8 {
					t.Errorf("progress grid of %v, want 3 images of 8×8 in 2 rows", b)
				}
			}
		case "done":
			if err := json.Unmarshal(e.data, &done); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := "queued start progress progress progress progress progress done" // steps 1, 3, 6, 9, 10
	if got := strings.Join(names, " "); got != want {
		t.Errorf("events %q, want %q", got, want)
	}
	if last.Step != 10 || last.Total != 10 || last.T != 1 {
		t.Errorf("last progress %d/%d at t=%d, want 10/10 at t=1", last.Step, last.Total, last.T)
	}
	plain := ts.sampleJSON(t, body)
	for i := range plain.Images {
		if !sameImage(decodePNG(t, plain.Images[i]), decodePNG(t, done.Images[i])) {
			t.Errorf("image %d of the stream differs from the plain request's", i)
		}
	}
}

// TestDisconnectFreesSlots: a client that goes away mid-stream leaves the
// batch at the next steps; the other request finishes with its solo
// images.
func TestDisconnectFreesSlots(t *testing.T) {
	w := newStepWatch()
	defer w.free()
	p := tinyPipeline(t, 40, false)
	ts := tinyServer(t, Options{Pipelines: map[string]*ddpm.Pipeline{"tiny": p}, onStep: w.hook})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := ts.stream(t, ctx, map[string]any{"n": 3, "steps": 40, "every": 1})
	if n := w.next(t); n != 3 {
		t.Fatalf("first step of %d images, want 3", n)
	}
	var errB error
	var rB *SampleResponse
	doneB := make(chan struct{})
	go func() {
		defer close(doneB)
		rB, errB = ts.trySample(map[string]any{"n": 2, "steps": 30, "seed": 9})
	}()
	waitFor(t, "the second request to queue", func() bool { return ts.queued() == 1 })
	// The step under way when it queued has A alone; B joins the next.
	if n := w.next(t); n != 3 {
		t.Fatalf("second step of %d images, want 3", n)
	}
	if n := w.next(t); n != 5 {
		t.Fatalf("third step of %d images, want 3 + 2", n)
	}
	for e := nextEvent(t, events); e.name != "progress"; e = nextEvent(t, events) {
	}
	cancel() // the client goes away
	steps := 0
	for n := w.next(t); n != 2; n = w.next(t) {
		if n != 5 {
			t.Fatalf("a step of %d images", n)
		}
		if steps++; steps > 20 {
			t.Fatal("the disconnected request still holds its place after 20 steps")
		}
		time.Sleep(5 * time.Millisecond) // the server notices the closed connection
	}
	t.Logf("the batch shrank %d steps after the disconnect", steps+1)
	w.free()
	<-doneB
	if errB != nil {
		t.Fatal(errB)
	}
	want, err := tinyPipeline(t, 40, false).SampleTensor(context.Background(), 2, ddpm.SampleOptions{Sampler: ddpm.DDIM(30), Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	checkImages(t, "the request that stayed", rB, want)
}

// TestShutdownDrains: Shutdown refuses new requests with 503 and lets the
// running one finish.
func TestShutdownDrains(t *testing.T) {
	w := newStepWatch()
	defer w.free()
	ts := tinyServer(t, Options{onStep: w.hook})
	var errA error
	doneA := make(chan struct{})
	go func() {
		defer close(doneA)
		_, errA = ts.trySample(map[string]any{"n": 2, "steps": 10})
	}()
	w.next(t)
	shut := make(chan error, 1)
	go func() { shut <- ts.Shutdown(context.Background()) }()
	waitFor(t, "the server to close", func() bool {
		ts.sched.mu.Lock()
		defer ts.sched.mu.Unlock()
		return ts.sched.closing
	})
	resp, b, err := ts.post(context.Background(), "/api/v1/sample", map[string]any{"n": 1})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), "shutting down") {
		t.Errorf("a request during shutdown: %s %s", resp.Status, b)
	}
	hr, err := ts.client.Get(ts.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	hr.Body.Close()
	if hr.StatusCode != 503 {
		t.Errorf("healthz during shutdown: %s", hr.Status)
	}
	w.free()
	<-doneA
	if errA != nil {
		t.Errorf("the running request: %v", errA)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// TestShutdownCancels: when Shutdown's context ends first, the running
// and queued requests are answered 503 and Shutdown returns its error.
func TestShutdownCancels(t *testing.T) {
	w := newStepWatch()
	defer w.free()
	ts := tinyServer(t, Options{MaxBatch: 2, onStep: w.hook})
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for k := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); _, errs[k] = ts.trySample(map[string]any{"n": 2, "steps": 10}) }()
		if k == 0 {
			w.next(t)
		}
	}
	waitFor(t, "the second request to queue", func() bool { return ts.queued() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- ts.Shutdown(ctx) }()
	<-ctx.Done()
	w.free()
	if err := <-shut; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want the deadline", err)
	}
	wg.Wait()
	for k, err := range errs {
		var se *statusError
		if !errors.As(err, &se) || se.code != 503 || !strings.Contains(se.body, "shutting down") {
			t.Errorf("request %d: %v, want 503 shutting down", k, err)
		}
	}
}

// TestServeShutdown: Serve on a real listener stops accepting when its
// context ends (SIGINT in `ddpm serve`), finishes the request in flight and
// returns, leaving no goroutines behind.
func TestServeShutdown(t *testing.T) {
	base := baseline(t)
	w := newStepWatch()
	defer w.free()
	s, err := New(Options{Pipelines: map[string]*ddpm.Pipeline{"tiny": tinyPipeline(t, 20, false)}, onStep: w.hook, ShutdownTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	url := "http://" + ln.Addr().String()
	type answer struct {
		code int
		img  image.Image
		err  error
	}
	got := make(chan answer, 1)
	go func() {
		resp, err := client.Post(url+"/api/v1/sample", "application/json", strings.NewReader(`{"n": 2, "steps": 8, "format": "json"}`))
		if err != nil {
			got <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		var r SampleResponse
		err = json.NewDecoder(resp.Body).Decode(&r)
		got <- answer{code: resp.StatusCode, err: err}
	}()
	w.next(t)
	stop() // SIGINT
	waitFor(t, "the listener to close", func() bool {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	w.free()
	a := <-got
	if a.err != nil || a.code != 200 {
		t.Errorf("the request in flight: %d %v", a.code, a.err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	client.CloseIdleConnections()
	checkGoroutines(t, base)
}
