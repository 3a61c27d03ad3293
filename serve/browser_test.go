package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// The studio in a real headless Chromium, driven over the DevTools protocol
// by chromedp: every tab runs to completion against the shipped MNIST
// model. DDPM_SCREENSHOTS=DIR also saves a PNG of each tab there:
//
//	DDPM_SCREENSHOTS=$PWD/docs/images go test ./serve -run TestBrowserStudio -v

// chromium finds a Chromium or Chrome binary: $DDPM_CHROMIUM, then the
// usual names on PATH.
func chromium() string {
	if p := os.Getenv("DDPM_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browser is a headless Chromium tab and what it reported.
type browser struct {
	t   *testing.T
	ctx context.Context

	mu         sync.Mutex
	exceptions []string
}

func newBrowser(t *testing.T, width, height int) *browser {
	t.Helper()
	path := chromium()
	if path == "" {
		t.Skip("no chromium binary (apt-get install chromium, or set DDPM_CHROMIUM): the studio is not tested in a real browser")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.WindowSize(width, height),
		chromedp.Flag("disable-gpu", true))
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); acancel() }) // before the server's goroutine check
	if err := chromedp.Do(ctx); err != nil {  // starts the browser
		t.Fatalf("starting %s: %v", path, err)
	}
	b := &browser{t: t, ctx: ctx}
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.exceptions = append(b.exceptions, fmt.Sprintf("%s %s", ev.ExceptionDetails.Text, exceptionDescription(ev)))
			b.mu.Unlock()
		}
	}()
	return b
}

func exceptionDescription(ev runtime.EventExceptionThrown) string {
	if e := ev.ExceptionDetails.Exception; e != nil {
		return e.Description
	}
	return ""
}

// do runs actions, failing the test on error.
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression into T.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// wait polls a JavaScript expression until it is truthy, for up to 90 s,
// failing with the status line given.
func (b *browser) wait(what, expr, status string) {
	b.t.Helper()
	start := time.Now()
	if _, err := chromedp.Run(b.ctx, chromedp.Poll[any](expr, chromedp.WithPollingTimeout(90*time.Second), chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		b.t.Fatalf("waiting for %s: %v; the page says %q", what, err, eval[string](b, status))
	}
	b.t.Logf("%s: %.1fs", what, time.Since(start).Seconds())
}

// screenshot saves the whole page as DIR/name when DDPM_SCREENSHOTS=DIR.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	dir := os.Getenv("DDPM_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("wrote %s (%d bytes)", filepath.Join(dir, name), len(png))
}

// contrast is the page's helper: the spread (max − min, 0..255) of an
// image's or canvas's red channel; 0 is blank.
const contrastJS = `window.contrast = (el) => {
  const w = el.naturalWidth || el.width, h = el.naturalHeight || el.height;
  if (!w || !h || (el.complete === false)) return -1;
  const c = document.createElement("canvas");
  c.width = w; c.height = h;
  const g = c.getContext("2d");
  g.drawImage(el, 0, 0);
  const d = g.getImageData(0, 0, w, h).data;
  let lo = 255, hi = 0;
  for (let i = 0; i < d.length; i += 4) { lo = Math.min(lo, d[i]); hi = Math.max(hi, d[i]); }
  return hi - lo;
}; true`

// TestBrowserStudio: in headless Chromium, the Generate tab streams a
// grid; a stroke drawn on the Draw tab's pad gets its noised x_t, samples
// regenerated from it and its bits/dim; Compress draws the rate–distortion
// curve to the end of the chain; Interpolate decodes a row and its λ
// slider picks a column. No request leaves the server's origin, no script
// throws, and the page fits a phone's width.
func TestBrowserStudio(t *testing.T) {
	if chromium() == "" {
		t.Skip("no chromium binary (apt-get install chromium, or set DDPM_CHROMIUM): the studio is not tested in a real browser")
	}
	if testing.Short() {
		t.Skip("-short: the browser test takes ~30 s")
	}
	start := time.Now()
	ts := newTestServer(t, Options{Models: []string{"mnist"}})
	b := newBrowser(t, 1000, 900)
	status := `document.getElementById("status").textContent`

	b.do("loading the page", chromedp.Navigate(ts.url+"/"))
	eval[bool](b, contrastJS)
	b.wait("the model list", `document.getElementById("model").options.length > 0`, `document.getElementById("models-status").textContent`)

	// Generate: DDIM, 10 steps, 4 digits.
	eval[bool](b, `(() => { const s = (id, v) => document.getElementById(id).value = v; s("steps", 10); s("n", 4); s("seed", 1); return true })()`)
	b.do("generate", chromedp.Click("#go"))
	b.wait("the generated grid", `document.getElementById("status").textContent.includes("4 images in")`, status)
	b.wait("the grid image", `contrast(document.getElementById("xt")) >= 0`, status)
	if c := eval[float64](b, `contrast(document.getElementById("xt"))`); c < 100 {
		t.Errorf("the generated grid is blank: contrast %g", c)
	}
	if !eval[bool](b, `document.getElementById("xt-caption").textContent.includes("samples")`) {
		t.Error("the x_t panel is not captioned as the samples")
	}
	b.screenshot("serve-generate.png")

	// Draw: a stroke down the pad with the mouse (the page sees pointer events).
	b.do("the Draw tab", chromedp.Click(`[data-tab="draw"]`))
	eval[bool](b, `(() => { const t = document.getElementById("draw-t"); t.value = 100; t.dispatchEvent(new Event("input")); document.getElementById("draw-n").value = 4; return true })()`)
	var r struct{ X, Y, W, H float64 }
	if err := json.Unmarshal([]byte(eval[string](b, `JSON.stringify((() => { const r = document.getElementById("pad").getBoundingClientRect(); return {x: r.x, y: r.y, w: r.width, h: r.height} })())`)), &r); err != nil || r.W < 50 {
		t.Fatalf("the pad's box %+v: %v", r, err)
	}
	stroke := []chromedp.Action[chromedp.Void]{chromedp.MouseEvent(input.DispatchMouseEventTypeMousePressed, r.X+r.W*0.5, r.Y+r.H*0.2, chromedp.ButtonLeft)}
	for k := 1; k <= 10; k++ {
		f := float64(k) / 10
		stroke = append(stroke, chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, r.X+r.W*(0.5-0.1*f), r.Y+r.H*(0.2+0.6*f), chromedp.ButtonLeft))
	}
	stroke = append(stroke, chromedp.MouseEvent(input.DispatchMouseEventTypeMouseReleased, r.X+r.W*0.4, r.Y+r.H*0.8, chromedp.ButtonLeft))
	b.do("a stroke on the pad", stroke...)
	if c := eval[float64](b, `contrast(document.getElementById("pad"))`); c < 200 {
		t.Fatalf("the stroke left no ink on the pad: contrast %g", c)
	}
	drawStatus := `document.getElementById("draw-status").textContent`
	b.wait("the x_t preview", `document.getElementById("noise-xt").src.startsWith("data:image/png") && document.getElementById("draw-status").textContent.includes("t = 100")`, drawStatus)
	b.do("regenerate", chromedp.Click("#regen"))
	b.wait("the regenerated samples", `document.getElementById("draw-status").textContent.includes("4 samples from x_t at t = 100")`, drawStatus)
	b.do("bits/dim", chromedp.Click("#bpd-go"))
	b.wait("the bound", `!document.getElementById("bpd-table").hidden`, drawStatus)
	bpd := eval[[]float64](b, `["bpd-total", "bpd-prior", "bpd-terms", "bpd-decoder"].map((id) => Number(document.getElementById(id).textContent))`)
	if len(bpd) != 4 || !(bpd[0] > 0.2 && bpd[0] < 20) || bpd[1] < 0 || !(bpd[2] > 0) || bpd[3] < 0 {
		t.Errorf("bits/dim and its parts %v", bpd)
	} else if sum := bpd[1] + bpd[2] + bpd[3]; sum < bpd[0]-0.001 || sum > bpd[0]+0.001 {
		t.Errorf("L_T + Σ L_{t−1} + L_0 = %g, the bound %g", sum, bpd[0])
	}
	t.Logf("the drawing: %.3f bits/dim (L_T %g, terms %g, L_0 %g)", bpd[0], bpd[1], bpd[2], bpd[3])
	b.screenshot("serve-draw.png")

	// Compress: the first test image, streamed to the end of the chain.
	b.do("the Compress tab", chromedp.Click(`[data-tab="compress"]`))
	b.do("compress", chromedp.Click("#compress-go"))
	cStatus := `document.getElementById("compress-status").textContent`
	b.wait("a point of the curve", `rdPoints.length > 0 && rdPoints.length < 1000`, cStatus)
	b.wait("the whole curve", `document.getElementById("compress-status").textContent.startsWith("done in")`, cStatus)
	if n := eval[float64](b, `rdPoints.length`); n != 1000 {
		t.Errorf("%g points on the curve, want T = 1000", n)
	}
	if !eval[bool](b, `rdPoints.every((p, k) => p.step === k + 1 && (k === 0 || p.rate >= rdPoints[k-1].rate))`) {
		t.Error("the streamed rate does not grow step by step")
	}
	if rows := eval[float64](b, `document.querySelectorAll("#rd-table tbody tr").length`); rows != 10 {
		t.Errorf("%g rows in Table 4, want 10", rows)
	}
	if c := eval[float64](b, `contrast(document.getElementById("rd-plot"))`); c < 100 {
		t.Errorf("the rate–distortion plot is blank: contrast %g", c)
	}
	b.screenshot("serve-compress.png")

	// Interpolate: two seeds at t = 100, 5 values of λ.
	b.do("the Interpolate tab", chromedp.Click(`[data-tab="interpolate"]`))
	eval[bool](b, `(() => { document.getElementById("interp-t").value = 100; document.getElementById("interp-n").value = 5; return true })()`)
	b.do("interpolate", chromedp.Click("#interp-go"))
	iStatus := `document.getElementById("interp-status").textContent`
	b.wait("the interpolation", `document.getElementById("interp-status").textContent.includes("5 mixes in")`, iStatus)
	b.wait("the row image", `contrast(document.getElementById("interp-grid")) >= 0 && contrast(document.getElementById("interp-latent")) >= 0`, iStatus)
	if c := eval[float64](b, `contrast(document.getElementById("interp-grid"))`); c < 100 {
		t.Errorf("the interpolation row is blank: contrast %g", c)
	}
	eval[bool](b, `(() => { const l = document.getElementById("interp-lambda"); l.value = 4; l.dispatchEvent(new Event("input")); return true })()`)
	if v := eval[string](b, `document.getElementById("interp-lambda-value").textContent`); v != "λ = 1.000" {
		t.Errorf("the λ slider at its end shows %q", v)
	}
	b.screenshot("serve-interpolate.png")

	// Nothing was fetched from elsewhere, nothing threw.
	if bad := eval[[]string](b, `performance.getEntriesByType("resource").map((e) => e.name).filter((u) => !u.startsWith(location.origin) && !u.startsWith("data:") && !u.startsWith("blob:"))`); len(bad) > 0 {
		t.Errorf("requests to other origins: %v", bad)
	}
	// At a phone's width the page does not scroll sideways.
	b.do("a phone's viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)), chromedp.Click(`[data-tab="draw"]`))
	if w := eval[float64](b, `document.documentElement.scrollWidth`); w > 390 {
		t.Errorf("at 390 px the page is %g px wide", w)
	}
	b.screenshot("serve-draw-phone.png")
	b.mu.Lock()
	if len(b.exceptions) > 0 {
		t.Errorf("the page threw: %v", b.exceptions)
	}
	b.mu.Unlock()
	t.Logf("the browser test took %.1fs", time.Since(start).Seconds())
}

// TestPageNoExternalURLs: the embedded page names no other site (the CSP
// would block it anyway); the browser test checks what is fetched.
func TestPageNoExternalURLs(t *testing.T) {
	url := regexp.MustCompile(`(?i)https?://[^\s"'<>)]+`)
	err := fs.WalkDir(web, "web", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := web.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range url.FindAllString(string(b), -1) {
			t.Errorf("%s names %s", path, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
