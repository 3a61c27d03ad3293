package serve

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ddpm-go/ddpm"
)

// pageRun is what testdata/page_harness.js reports of the page.
type pageRun struct {
	Models       []string
	ModelsStatus string
	Switched     bool
	Status       string
	StatusClass  string
	Frames       int
	Progress     []float64
	XTCaption    string
	XT           string
	Download     struct {
		Hidden     bool
		Name, Href string
	}
	CancelDisabled bool
}

// runPage runs the studio's script in Node against ts with a stand-in DOM
// (no browser here; a chromedp test would drive the real page).
func runPage(t *testing.T, ts *testServer, mode string) pageRun {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the page's script is not exercised")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("testdata", "page_harness.js"), filepath.Join("web", "app.js"), ts.url, mode)
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		if strings.Contains(stderr, "fetch is not defined") {
			t.Skip("node has no fetch (need ≥ 18)")
		}
		t.Fatalf("node: %v\n%s", err, stderr)
	}
	var r pageRun
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return r
}

// TestPageGenerate: the Generate tab lists the models, streams a request
// into the x_t and x̂0 panels with a progress bar, and offers the grid
// for download.
func TestPageGenerate(t *testing.T) {
	ts := tinyServer(t, Options{})
	r := runPage(t, ts, "")
	if len(r.Models) != 1 || r.Models[0] != "tiny" || !r.Switched {
		t.Errorf("models %v, tabs switch %v", r.Models, r.Switched)
	}
	if !strings.Contains(r.Status, "3 images in") || !strings.Contains(r.Status, "seed 11") || r.StatusClass == "error" {
		t.Errorf("status %q (%s)", r.Status, r.StatusClass)
	}
	if r.Frames < 2 || len(r.Progress) != 2 || r.Progress[0] != 6 || r.Progress[1] != 6 {
		t.Errorf("%d x̂0 frames, progress %v; want ≥ 2 and 6/6", r.Frames, r.Progress)
	}
	if !strings.HasPrefix(r.XT, "data:image/png;base64,") || !strings.Contains(r.XTCaption, "samples") {
		t.Errorf("x_t panel %q, caption %q", r.XT, r.XTCaption)
	}
	if r.Download.Hidden || r.Download.Name != "tiny-ddim-seed11.png" || r.Download.Href != "blob:" || !r.CancelDisabled {
		t.Errorf("download %+v, cancel disabled %v", r.Download, r.CancelDisabled)
	}
}

// TestPageCancel: Cancel aborts the stream, and the server lets the
// request go long before its 200 steps.
func TestPageCancel(t *testing.T) {
	var steps atomic.Int64
	ts := tinyServer(t, Options{
		Pipelines: map[string]*ddpm.Pipeline{"tiny": tinyPipeline(t, 400, false)},
		onStep:    func(int) { steps.Add(1); time.Sleep(10 * time.Millisecond) },
	})
	r := runPage(t, ts, "cancel")
	if r.Status != "cancelled" || !r.Download.Hidden || r.Frames < 1 {
		t.Errorf("status %q, download hidden %v, %d frames", r.Status, r.Download.Hidden, r.Frames)
	}
	for last := int64(-1); steps.Load() != last; time.Sleep(100 * time.Millisecond) {
		last = steps.Load()
	}
	if n := steps.Load(); n >= 200 {
		t.Errorf("the cancelled request ran all its %d steps", n)
	} else {
		t.Logf("the request left the batch after %d of its 200 steps", n)
	}
}
