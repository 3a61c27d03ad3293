package serve

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/png"
	"math"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm"
	"github.com/ddpm-go/ddpm/imgio"
)

// pngB64 is image i of x as a base64 PNG, as the page sends it.
func pngB64(t *testing.T, x *ddpm.Tensor, i int) string {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, x.Image(i)); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b.Bytes())
}

// studioCall posts body to path and decodes the 200 answer into v.
func (ts *testServer) studioCall(t *testing.T, path string, body map[string]any, v any) {
	t.Helper()
	resp, raw, err := ts.post(context.Background(), path, body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d %s", path, resp.StatusCode, raw)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatal(err)
	}
}

// samePNG reports whether a base64 PNG shows the values x (one image).
func samePNG(t *testing.T, s string, x []float32, ref *ddpm.Tensor) bool {
	t.Helper()
	return sameImage(decodePNG(t, s), imgio.GridImage(x, 1, ref.C, ref.H, ref.W, 1))
}

// TestStudioMatchesLibrary: every studio call answers what the library's
// pipeline method gives with the same seed, although its network
// evaluations went through the scheduler's batch (here beside a sampling
// request that shares it).
func TestStudioMatchesLibrary(t *testing.T) {
	ts := tinyServer(t, Options{})
	ref := tinyPipeline(t, 20, false) // the same weights, evaluated directly
	ctx := context.Background()
	imgs, err := ref.SampleTensor(ctx, 2, ddpm.SampleOptions{Sampler: ddpm.DDIM(5), Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	a := &ddpm.Tensor{Data: imgs.Data[:64], N: 1, C: 1, H: 8, W: 8}
	// Through a PNG and back: the values the server sees.
	a = ddpm.ImageTensor([]image.Image{a.Image(0)}, 1, 8)
	b := ddpm.ImageTensor([]image.Image{imgs.Image(1)}, 1, 8)
	img := pngB64(t, a, 0)

	// A sampling request shares the batch meanwhile.
	bg := make(chan error, 1)
	go func() { _, err := ts.trySample(map[string]any{"n": 3, "sampler": "ancestral", "seed": 9}); bg <- err }()

	t.Run("bpd", func(t *testing.T) {
		var r BPDResponse
		ts.studioCall(t, "/api/v1/bpd", map[string]any{"image": img, "seed": 5}, &r)
		want, err := ref.BitsPerDim(ctx, a, ddpm.BPDOptions{Seed: 5})
		if err != nil {
			t.Fatal(err)
		}
		s := want.Summary(1)
		if r.BPD != s.TotalBPD || r.Prior != s.PriorBPD || r.Terms != s.TermsBPD || r.Decoder != s.DecoderBPD || len(r.PerT) != 20 {
			t.Errorf("bpd %+v, want %+v", r, s)
		}
		if math.Abs(r.Prior+r.Terms+r.Decoder-r.BPD) > 1e-9 || !(r.BPD > 0) {
			t.Errorf("parts %g + %g + %g do not add up to %g", r.Prior, r.Terms, r.Decoder, r.BPD)
		}
		if r.Evaluated != 20 {
			t.Errorf("%d network evaluations, want T = 20", r.Evaluated)
		}
	})

	t.Run("noise and regenerate", func(t *testing.T) {
		var n NoiseResponse
		ts.studioCall(t, "/api/v1/noise", map[string]any{"image": img, "t": 12, "seed": 4}, &n)
		var r RegenerateResponse
		ts.studioCall(t, "/api/v1/regenerate", map[string]any{"image": img, "t": 12, "n": 3, "seed": 4}, &r)
		want, err := ref.SharedLatents(ctx, ddpm.SharedOptions{Steps: []int{12}, PerRow: 3, Image: a, Seed: 4})
		if err != nil {
			t.Fatal(err)
		}
		row := want.Rows[0]
		if !samePNG(t, n.XT, row.Latent.Data, a) || n.XT != r.XT {
			t.Error("noise's x_t is not the x_t the regenerated samples share")
		}
		if n.AlphaBar != ref.Process.AlphasCumprod[11] || n.T != 12 {
			t.Errorf("noise: t %d, ᾱ %g", n.T, n.AlphaBar)
		}
		if len(r.Samples) != 3 {
			t.Fatalf("%d samples, want 3", len(r.Samples))
		}
		for i, s := range r.Samples {
			if !samePNG(t, s, row.Samples.Data[i*64:(i+1)*64], a) {
				t.Errorf("sample %d differs from SharedLatents'", i)
			}
		}
		if r.PixelStd != row.PixelStd || r.RMSE != row.RMSE {
			t.Errorf("std %g rmse %g, want %g %g", r.PixelStd, r.RMSE, row.PixelStd, row.RMSE)
		}
	})

	t.Run("compress stream", func(t *testing.T) {
		resp, raw, err := ts.post(ctx, "/api/v1/compress/stream", map[string]any{"image": img, "seed": 5, "every": 3})
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%v %s", err, raw)
		}
		ch := make(chan sseEvent, 100)
		if err := readSSE(bytes.NewReader(raw), ch); err != nil {
			t.Fatal(err)
		}
		close(ch)
		var points []RDPoint
		var done *CompressResponse
		events := 0
		for ev := range ch {
			switch ev.name {
			case "progress":
				var p CompressProgress
				json.Unmarshal(ev.data, &p)
				points = append(points, p.Points...)
				events++
			case "done":
				done = new(CompressResponse)
				json.Unmarshal(ev.data, done)
			case "error":
				t.Fatalf("error event %s", ev.data)
			}
		}
		if done == nil || events != 7 { // ⌈20/3⌉ network calls
			t.Fatalf("done %v after %d progress events, want 7", done != nil, events)
		}
		want, err := ref.RateDistortion(ctx, a, ddpm.RDOptions{Seed: 5})
		if err != nil {
			t.Fatal(err)
		}
		if len(points) != 20 {
			t.Fatalf("%d streamed points, want T = 20", len(points))
		}
		for k, p := range points {
			if p.Step != k+1 || p.T != 20-k || p.Rate != want.Rate[k] || p.RMSE != want.RMSE[k] {
				t.Errorf("streamed point %d = %+v, want step %d rate %g rmse %g", k, p, k+1, want.Rate[k], want.RMSE[k])
			}
		}
		if done.Total != want.Total || len(done.Table) != 10 || len(done.Reconstructions) != 10 || done.Reconstructions[9] == "" {
			t.Errorf("done: total %g (want %g), %d table rows, %d reconstructions", done.Total, want.Total, len(done.Table), len(done.Reconstructions))
		}
		var bpd BPDResponse
		ts.studioCall(t, "/api/v1/bpd", map[string]any{"image": img, "seed": 5}, &bpd)
		if math.Abs(bpd.BPD-done.Total) > 1e-9 {
			t.Errorf("compression's total %g is not the bound %g of the same seed", done.Total, bpd.BPD)
		}
	})

	t.Run("interpolate", func(t *testing.T) {
		var r InterpolateResponse
		ts.studioCall(t, "/api/v1/interpolate", map[string]any{"a": img, "b": pngB64(t, b, 0), "t": 10, "n": 3, "seed": 2}, &r)
		want, err := ref.Interpolate(ctx, a, b, ddpm.InterpolateOptions{Steps: []int{10}, Lambdas: []float64{0, 0.5, 1}, Seed: 2})
		if err != nil {
			t.Fatal(err)
		}
		row := want.Rows[0]
		if len(r.Images) != 3 || r.RMSEA != row.RMSEA || r.RMSEB != row.RMSEB {
			t.Fatalf("%d images, rmse %g %g, want 3, %g %g", len(r.Images), r.RMSEA, r.RMSEB, row.RMSEA, row.RMSEB)
		}
		for i, s := range r.Images {
			if !samePNG(t, s, row.Images.Data[i*64:(i+1)*64], a) {
				t.Errorf("image %d (λ = %g) differs from Interpolate's", i, r.Lambdas[i])
			}
		}
		// From seeds: the endpoints are DDIM-20 samples.
		var s InterpolateResponse
		ts.studioCall(t, "/api/v1/interpolate", map[string]any{"seed_a": 1, "seed_b": 2, "t": 5, "n": 2}, &s)
		sa, _ := ref.SampleTensor(ctx, 1, ddpm.SampleOptions{Sampler: ddpm.DDIM(20), Seed: 1})
		if !samePNG(t, s.A, sa.Data, a) {
			t.Error("seed_a's image is not the DDIM-20 sample of seed 1")
		}
	})

	t.Run("langevin", func(t *testing.T) {
		r := ts.sampleJSON(t, map[string]any{"sampler": "langevin", "n": 2, "steps": 4, "updates": 2, "seed": 6})
		l := ddpm.Langevin()
		l.Levels, l.Steps = 4, 2
		want, err := ref.SampleTensor(ctx, 2, ddpm.SampleOptions{Sampler: l, Seed: 6})
		if err != nil {
			t.Fatal(err)
		}
		checkImages(t, "langevin", r, want)
		if r.Steps != l.Evaluations(20) {
			t.Errorf("steps %d, want %d evaluations", r.Steps, l.Evaluations(20))
		}
	})
	if err := <-bg; err != nil {
		t.Fatal(err)
	}
}

// TestStudioErrors: bad studio calls are one JSON error with their status.
func TestStudioErrors(t *testing.T) {
	ts := tinyServer(t, Options{MaxImages: 4, MaxSteps: 15, MaxUploadBytes: 64 << 10})
	x := ddpm.ImageTensor([]image.Image{image.NewGray(image.Rect(0, 0, 8, 8))}, 1, 8)
	img := pngB64(t, x, 0)
	var huge bytes.Buffer
	png.Encode(&huge, image.NewGray(image.Rect(0, 0, 5000, 5000))) // compresses to a few KiB
	for _, tc := range []struct {
		name, path string
		body       any
		code       int
		want       string
	}{
		{"no image", "/api/v1/bpd", map[string]any{}, 400, `no image`},
		{"not base64", "/api/v1/noise", map[string]any{"image": "%%%"}, 400, "image: not base64"},
		{"not a picture", "/api/v1/noise", map[string]any{"image": base64.StdEncoding.EncodeToString([]byte("GIF89a"))}, 400, "not a PNG or JPEG"},
		{"too many pixels", "/api/v1/noise", map[string]any{"image": base64.StdEncoding.EncodeToString(huge.Bytes())}, 413, "5000×5000 pixels"},
		{"body too large", "/api/v1/bpd", map[string]any{"image": strings.Repeat("A", 70000)}, 413, "larger than 65536 bytes"},
		{"t out of range", "/api/v1/noise", map[string]any{"image": img, "t": 21}, 400, "t = 21 out of range 1..20"},
		{"t over the limit", "/api/v1/regenerate", map[string]any{"image": img, "t": 16}, 400, "at most 15"},
		{"n over max", "/api/v1/regenerate", map[string]any{"image": img, "t": 5, "n": 5}, 400, "n = 5 out of range 1..4"},
		{"bound over the limit", "/api/v1/compress", map[string]any{"image": img}, 400, "T = 20 network evaluations, this server allows at most 15"},
		{"unknown model", "/api/v1/bpd", map[string]any{"model": "x", "image": img}, 404, `unknown model "x"`},
		{"unknown field", "/api/v1/bpd", map[string]any{"picture": img}, 400, `unknown field "picture"`},
		{"interpolate without b", "/api/v1/interpolate", map[string]any{"a": img, "t": 3}, 400, `no image "b"`},
		{"interpolate, both", "/api/v1/interpolate", map[string]any{"a": img, "seed_a": 1, "b": img}, 400, `give "a" or "seed_a", not both`},
		{"interpolate one λ", "/api/v1/interpolate", map[string]any{"a": img, "b": img, "n": 1}, 400, "n = 1 out of range 2..4"},
		{"examples, bad n", "/api/v1/examples?n=0", nil, 400, `n = "0"`},
		{"examples, no data", "/api/v1/examples", nil, 404, "no test images for model tiny"},
		{"GET on a POST", "/api/v1/bpd", nil, 405, "takes POST"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var code int
			var raw []byte
			if tc.body == nil {
				resp, err := ts.client.Get(ts.url + tc.path)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				code = resp.StatusCode
				var e map[string]string
				if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
					t.Fatalf("not a JSON error: %v", err)
				}
				raw = []byte(e["error"])
			} else {
				resp, b, err := ts.post(context.Background(), tc.path, tc.body)
				if err != nil {
					t.Fatal(err)
				}
				code = resp.StatusCode
				var e map[string]string
				if err := json.Unmarshal(b, &e); err != nil {
					t.Fatalf("not a JSON error: %s", b)
				}
				raw = []byte(e["error"])
			}
			if code != tc.code || !strings.Contains(string(raw), tc.want) {
				t.Errorf("%d %q, want %d containing %q", code, raw, tc.code, tc.want)
			}
		})
	}
}

// TestStudioOpenAPI: openapi.json describes the studio's endpoints.
func TestStudioOpenAPI(t *testing.T) {
	var doc struct {
		Paths      map[string]map[string]any `json:"paths"`
		Components struct {
			Schemas map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	for path, method := range map[string]string{
		"/api/v1/noise": "post", "/api/v1/regenerate": "post", "/api/v1/bpd": "post", "/api/v1/compress": "post",
		"/api/v1/compress/stream": "post", "/api/v1/interpolate": "post", "/api/v1/examples": "get",
	} {
		if doc.Paths[path][method] == nil {
			t.Errorf("openapi.json lacks %s %s", method, path)
		}
	}
	for _, name := range []string{"StudioRequest", "NoiseResponse", "RegenerateResponse", "BPDResponse", "CompressResponse", "CompressProgress", "RDPoint", "InterpolateResponse"} {
		if doc.Components.Schemas[name] == nil {
			t.Errorf("openapi.json lacks the schema %s", name)
		}
	}
}
