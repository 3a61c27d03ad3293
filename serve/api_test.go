package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm"
)

func tinyServer(t *testing.T, o Options) *testServer {
	t.Helper()
	if o.Pipelines == nil {
		o.Pipelines = map[string]*ddpm.Pipeline{"tiny": tinyPipeline(t, 20, false)}
	}
	return newTestServer(t, o)
}

// TestErrors: bad requests are JSON {"error": …} with the right status,
// and leave the server serving.
func TestErrors(t *testing.T) {
	ts := tinyServer(t, Options{MaxImages: 8, MaxSteps: 15, MaxBodyBytes: 512})
	for _, tc := range []struct {
		name, path string
		body       any
		code       int
		want       string
	}{
		{"malformed JSON", "/api/v1/sample", `{"n": 2,`, 400, "malformed JSON"},
		{"not an object", "/api/v1/sample", `[1, 2]`, 400, "malformed JSON"},
		{"two values", "/api/v1/sample", `{"n": 1} {"n": 2}`, 400, "more than one value"},
		{"empty body", "/api/v1/sample", ``, 400, "empty body"},
		{"wrong type", "/api/v1/sample", `{"n": "four"}`, 400, "n must be a int"},
		{"unknown field", "/api/v1/sample", `{"samples": 4}`, 400, `unknown field "samples"`},
		{"huge n", "/api/v1/sample", map[string]any{"n": 1000000}, 400, "n = 1000000 out of range 1..8"},
		{"zero n", "/api/v1/sample", map[string]any{"n": 0}, 400, "n = 0 out of range"},
		{"negative seed", "/api/v1/sample", `{"seed": -1}`, 400, "seed must be a uint64"},
		{"unknown sampler", "/api/v1/sample", map[string]any{"sampler": "euler"}, 400, `unknown sampler "euler" (have ancestral, ddim, respaced, langevin)`},
		{"langevin over the limit", "/api/v1/sample/stream", map[string]any{"sampler": "langevin", "steps": 20, "updates": 1}, 400, "langevin with 21 steps: this server allows at most 15"},
		{"langevin step scale", "/api/v1/sample", map[string]any{"sampler": "langevin", "step_scale": 4}, 400, "0 < step_scale < 4"},
		{"updates for ddim", "/api/v1/sample", map[string]any{"updates": 3}, 400, "updates and step_scale apply to the langevin sampler only"},
		{"steps over T", "/api/v1/sample", map[string]any{"steps": 21}, 400, "steps = 21 out of range 1..20 (T) for ddim"},
		{"respaced 1 step", "/api/v1/sample", map[string]any{"sampler": "respaced", "steps": 1}, 400, "out of range 2..20"},
		{"steps over the limit", "/api/v1/sample", map[string]any{"steps": 16}, 400, "at most 15 network evaluations"},
		{"ancestral over the limit", "/api/v1/sample", map[string]any{"sampler": "ancestral"}, 400, "at most 15"},
		{"ancestral with steps", "/api/v1/sample", map[string]any{"sampler": "ancestral", "steps": 5}, 400, "takes all T = 20 steps"},
		{"eta for respaced", "/api/v1/sample", map[string]any{"sampler": "respaced", "steps": 4, "eta": 0.5}, 400, "eta applies to the ddim sampler only"},
		{"eta out of range", "/api/v1/sample", map[string]any{"eta": 1.5}, 400, "eta = 1.5 out of range 0..1"},
		{"unknown format", "/api/v1/sample", map[string]any{"format": "gif"}, 400, `unknown format "gif"`},
		{"cols over n", "/api/v1/sample", map[string]any{"n": 2, "cols": 3}, 400, "cols = 3 out of range 0..2"},
		{"unknown model", "/api/v1/sample", map[string]any{"model": "cifar10"}, 404, `unknown model "cifar10" (serving tiny)`},
		{"unknown model, stream", "/api/v1/sample/stream", map[string]any{"model": "x"}, 404, "unknown model"},
		{"body too large", "/api/v1/sample", `{"model": "` + strings.Repeat("a", 1000) + `"}`, 413, "larger than 512 bytes"},
		{"body too large, valid prefix", "/api/v1/sample", `{"n": 1}` + strings.Repeat(" ", 1000), 413, "larger than 512 bytes"},
		{"no such endpoint", "/api/v1/nothing", `{}`, 404, "no endpoint POST /api/v1/nothing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b, err := ts.post(context.Background(), tc.path, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			var e struct{ Error string }
			if err := json.Unmarshal(b, &e); err != nil {
				t.Fatalf("%s: body %q is not a JSON error: %v", resp.Status, b, err)
			}
			if resp.StatusCode != tc.code || !strings.Contains(e.Error, tc.want) {
				t.Errorf("%s %q: want %d containing %q", resp.Status, e.Error, tc.code, tc.want)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
	// Methods the endpoints do not take.
	resp, err := ts.client.Get(ts.url + "/api/v1/sample")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /api/v1/sample: %s, want 405", resp.Status)
	}
	// Still serving.
	ts.sampleJSON(t, map[string]any{"n": 1, "steps": 2})
}

// TestFormats: a PNG grid by default, JSON per Accept or "format", the
// seed reported back and a random one when none is given.
func TestFormats(t *testing.T) {
	ts := tinyServer(t, Options{})
	body := map[string]any{"n": 3, "steps": 3, "seed": 42, "cols": 3}
	resp, b, err := ts.post(context.Background(), "/api/v1/sample", body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/png" || resp.Header.Get("X-Seed") != "42" {
		t.Fatalf("%s %v", resp.Status, resp.Header)
	}
	grid, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if got := grid.Bounds().Dx(); got != 3*8+2*2 && got != 3*8+2 {
		t.Logf("grid %v", grid.Bounds()) // the padding is imgio's
	}
	// Accept: application/json gives the same images as JSON.
	resp, b, err = ts.post(context.Background(), "/api/v1/sample", body, "Accept", "application/json")
	if err != nil {
		t.Fatal(err)
	}
	var r SampleResponse
	if err := json.Unmarshal(b, &r); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%s %v %s", resp.Status, err, b)
	}
	if r.N != 3 || len(r.Images) != 3 || r.Seed != 42 || r.Sampler != "ddim" || r.Steps != 3 || r.Width != 8 || r.Channels != 1 {
		t.Errorf("response %+v", r)
	}
	if !sameImage(decodePNG(t, r.Grid), grid) {
		t.Error("the JSON grid differs from the PNG answer")
	}
	// No seed: a random one, reported.
	a := ts.sampleJSON(t, map[string]any{"steps": 2})
	c := ts.sampleJSON(t, map[string]any{"steps": 2})
	if a.Seed == c.Seed {
		t.Errorf("two requests without a seed both got seed %d", a.Seed)
	}
	again := ts.sampleJSON(t, map[string]any{"steps": 2, "seed": a.Seed})
	if !sameImage(decodePNG(t, again.Images[0]), decodePNG(t, a.Images[0])) {
		t.Error("the reported seed does not reproduce the image")
	}
}

// TestModelsEndpoint lists the models with their shapes.
func TestModelsEndpoint(t *testing.T) {
	ts := tinyServer(t, Options{MaxSteps: 10})
	resp, err := ts.client.Get(ts.url + "/api/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Models []ModelInfo }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	want := ModelInfo{Name: "tiny", Resolution: 8, Channels: 1, T: 20, Source: "in-memory model",
		Samplers: []string{"ddim", "respaced", "langevin"}, MaxSteps: 10, MaxImages: 64}
	if len(body.Models) != 1 || !equalJSON(body.Models[0], want) {
		t.Errorf("models %+v, want %+v", body.Models, want)
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// TestOpenAPIPageMetrics: the description parses and names every route,
// the page and its assets are served with no external references, and the
// metrics are exposed.
func TestOpenAPIPageMetrics(t *testing.T) {
	ts := tinyServer(t, Options{})
	ts.sampleJSON(t, map[string]any{"n": 2, "steps": 2})
	get := func(path string) (*http.Response, string) {
		resp, err := ts.client.Get(ts.url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %s", path, resp.Status)
		}
		return resp, string(b)
	}
	_, spec := get("/api/v1/openapi.json")
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal([]byte(spec), &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi %q", doc.OpenAPI)
	}
	for path, method := range map[string]string{
		"/api/v1/models": "get", "/api/v1/sample": "post", "/api/v1/sample/stream": "post",
		"/api/v1/openapi.json": "get", "/metrics": "get", "/healthz": "get",
	} {
		if doc.Paths[path][method] == nil {
			t.Errorf("openapi.json lacks %s %s", method, path)
		}
	}
	for _, path := range []string{"/", "/app.js", "/studio.js", "/style.css"} {
		resp, body := get(path)
		if strings.Contains(body, "http://") || strings.Contains(body, "https://") || strings.Contains(body, "//cdn") {
			t.Errorf("%s refers to another site", path)
		}
		if resp.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("%s has no Content-Security-Policy", path)
		}
	}
	_, page := get("/")
	for _, want := range []string{`data-tab="generate"`, `id="pad"`, `id="compress-form"`, `id="interp-form"`, `src="studio.js"`, `name="viewport"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	_, m := get("/metrics")
	for _, want := range []string{
		"ddpm_serve_queue_depth 0", "ddpm_serve_batch_size_bucket", "ddpm_serve_images_total 2",
		`ddpm_serve_request_duration_seconds_count{code="200",handler="sample"} 1`, "ddpm_serve_network_evaluations_total 2",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	_, h := get("/healthz")
	if !strings.Contains(h, "ok") {
		t.Errorf("healthz %q", h)
	}
}
