package serve

import (
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

// throughput serves clients requests of n MNIST images each (DDIM, steps
// steps) all at once and then one at a time, returning images/s of both.
// `ddpm bench --mode serve` measures the same more carefully (interleaved
// rounds, medians, the network's own batch gain, a lone client's latency).
func throughput(tb testing.TB, ts *testServer, clients, n, steps int) (concurrent, sequential float64) {
	body := func(k int) map[string]any {
		return map[string]any{"model": "mnist", "n": n, "sampler": "ddim", "steps": steps, "seed": k}
	}
	run := func(k int) {
		if _, err := ts.trySample(body(k)); err != nil {
			tb.Error(err)
		}
	}
	// Keep every client's connection between rounds (the default keeps 2:
	// the others would dial again), and grow the network's buffers to both
	// batch sizes first: the first batches of 16 cost 0.5–1.2 s more, which
	// the concurrent clients, measured first, used to pay (docs/serve.md).
	ts.client.Transport.(*http.Transport).MaxIdleConnsPerHost = clients
	for _, m := range []int{min(clients*n, ts.opts.MaxImages), n} {
		if _, err := ts.trySample(map[string]any{"model": "mnist", "n": m, "sampler": "ddim", "steps": 2}); err != nil {
			tb.Fatal(err)
		}
	}
	images := float64(clients * n)
	start := time.Now()
	var wg sync.WaitGroup
	for k := range clients {
		wg.Add(1)
		go func() { defer wg.Done(); run(k) }()
	}
	wg.Wait()
	concurrent = images / time.Since(start).Seconds()
	start = time.Now()
	for k := range clients {
		run(k)
	}
	sequential = images / time.Since(start).Seconds()
	return concurrent, sequential
}

// TestThroughput measures images/s of 16 concurrent DDIM-20 clients
// against the same requests served one at a time (DDPM_SERVE_BENCH=1;
// DDPM_SERVE_BENCH_N images per request, default 1).
func TestThroughput(t *testing.T) {
	if os.Getenv("DDPM_SERVE_BENCH") == "" {
		t.Skip("set DDPM_SERVE_BENCH=1 to measure")
	}
	n := 1
	if v, err := strconv.Atoi(os.Getenv("DDPM_SERVE_BENCH_N")); err == nil && v > 0 {
		n = v
	}
	ts := newTestServer(t, Options{Models: []string{"mnist"}})
	c, s := throughput(t, ts, 16, n, 20)
	t.Logf("16 clients × %d images, DDIM 20 steps: concurrent %.2f images/s, one at a time %.2f images/s (×%.2f)", n, c, s, c/s)
}

// BenchmarkServeConcurrent: 16 concurrent DDIM-20 clients of one MNIST
// image each, and the same requests one at a time.
func BenchmarkServeConcurrent(b *testing.B) {
	ts := newTestServer(b, Options{Models: []string{"mnist"}})
	var c, s float64
	for b.Loop() {
		ci, si := throughput(b, ts, 16, 1, 20)
		c += ci
		s += si
	}
	b.ReportMetric(c/float64(b.N), "images/s-concurrent")
	b.ReportMetric(s/float64(b.N), "images/s-sequential")
}
