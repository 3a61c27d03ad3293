package serve

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus metrics, on a registry of its own
// (several servers in one process, as in tests, do not collide).
type metrics struct {
	reg *prometheus.Registry

	queueDepth     prometheus.Gauge
	activeRequests prometheus.Gauge
	batchImages    prometheus.Gauge
	batchSize      prometheus.Histogram
	stepSeconds    prometheus.Histogram
	evaluations    prometheus.Counter
	images         prometheus.Counter
	rejected       *prometheus.CounterVec
	latency        *prometheus.HistogramVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ddpm_serve_queue_depth", Help: "Requests waiting for room in the batch.",
		}),
		activeRequests: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ddpm_serve_active_requests", Help: "Requests whose images are being denoised.",
		}),
		batchImages: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ddpm_serve_batch_images", Help: "Images in the batch after the latest admission.",
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ddpm_serve_batch_size", Help: "Images per network evaluation.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}),
		stepSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ddpm_serve_step_seconds", Help: "Duration of one batched network evaluation.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		evaluations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ddpm_serve_network_evaluations_total", Help: "Batched network evaluations.",
		}),
		images: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ddpm_serve_images_total", Help: "Images generated (rate() of it is images/s).",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ddpm_serve_rejected_total", Help: "Requests refused before running, by reason.",
		}, []string{"reason"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ddpm_serve_request_duration_seconds", Help: "HTTP request latency, by handler and status code.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 16),
		}, []string{"handler", "code"}),
	}
	m.reg.MustRegister(m.queueDepth, m.activeRequests, m.batchImages, m.batchSize, m.stepSeconds,
		m.evaluations, m.images, m.rejected, m.latency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observeStep(images int, d time.Duration) {
	m.batchSize.Observe(float64(images))
	m.stepSeconds.Observe(d.Seconds())
	m.evaluations.Inc()
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// instrument records h's latency under name.
func (m *metrics) instrument(name string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		start := time.Now()
		h.ServeHTTP(rec, r)
		m.latency.WithLabelValues(name, strconv.Itoa(rec.code)).Observe(time.Since(start).Seconds())
	})
}

// statusRecorder remembers the status code written; Unwrap lets
// http.ResponseController reach the connection (Flush, deadlines).
type statusRecorder struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wrote {
		r.code, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
