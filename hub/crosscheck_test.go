package hub

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestHuggingfaceHubCompat runs huggingface_hub itself against the fake
// hub, when HUB_CROSSCHECK_PYTHON names a Python that imports it
// (HUB_CROSSCHECK_PYTHONPATH is added to its path): both must lay out
// the cache alike, read each other's cache offline and resume each
// other's partial downloads. Checked with huggingface_hub 0.36.2.
func TestHuggingfaceHubCompat(t *testing.T) {
	python := os.Getenv("HUB_CROSSCHECK_PYTHON")
	if python == "" {
		t.Skip("HUB_CROSSCHECK_PYTHON not set")
	}
	run := func(h *fakeHub, cache, script string, env ...string) string {
		t.Helper()
		cmd := exec.Command(python, "-c", "from huggingface_hub import snapshot_download, hf_hub_download\n"+script)
		cmd.Env = append([]string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH"), "PYTHONPATH=" + os.Getenv("HUB_CROSSCHECK_PYTHONPATH"),
			"HF_ENDPOINT=" + h.srv.URL, "HF_HUB_CACHE=" + cache, "HF_HUB_DISABLE_TELEMETRY=1", "HF_HUB_DISABLE_IMPLICIT_TOKEN=1",
			"HF_HUB_DISABLE_PROGRESS_BARS=1", "NO_PROXY=*"}, env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("huggingface_hub: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	download := `print(snapshot_download("google/ddpm-cifar10-32", allow_patterns=["model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "scheduler/scheduler_config.json"]))`

	h := newFakeHub(t)
	pyCache, goCache := t.TempDir(), t.TempDir()
	pyDir := run(h, pyCache, download)
	pyRequests := h.requests()
	h.reset()
	dir, err := h.client(t, goCache).Snapshot(context.Background(), testRepo, "main", Pipeline)
	if err != nil {
		t.Fatal(err)
	}
	if rel, _ := filepath.Rel(goCache, dir); pyDir != filepath.Join(pyCache, rel) {
		t.Errorf("snapshot folder: huggingface_hub %s, ours %s", pyDir, dir)
	}
	if py, ours := layout(t, pyCache), layout(t, goCache); !slices.Equal(py, ours) {
		t.Errorf("cache layouts differ:\nhuggingface_hub:\n%s\nours:\n%s", strings.Join(py, "\n"), strings.Join(ours, "\n"))
	}
	ours := h.requests()
	slices.Sort(pyRequests)
	slices.Sort(ours)
	if !slices.Equal(pyRequests, ours) {
		t.Errorf("requests differ:\nhuggingface_hub: %q\nours: %q", pyRequests, ours)
	}

	// Each reads the other's cache offline.
	c := &Client{Endpoint: deadEndpoint(t), CacheDir: pyCache, Offline: true}
	if _, err := c.Snapshot(context.Background(), testRepo, "main", Pipeline); err != nil {
		t.Errorf("ours over huggingface_hub's cache: %v", err)
	}
	h.reset()
	run(h, goCache, download+"\n"+`print(hf_hub_download("google/ddpm-cifar10-32", "unet/config.json"))`, "HF_HUB_OFFLINE=1")
	if got := h.requests(); len(got) != 0 {
		t.Errorf("huggingface_hub offline over our cache made requests %q", got)
	}

	// huggingface_hub resumes what we left.
	h = newFakeHub(t)
	cache := t.TempDir()
	cg := h.client(t, cache)
	cg.Retries = 0
	h.cuts, h.cutAt = 1, 400_000
	if _, err := cg.Snapshot(context.Background(), testRepo, "main", Pipeline); err == nil {
		t.Fatal("no interruption")
	}
	h.reset()
	run(h, cache, download)
	if got := rangeRequests(h); !slices.Equal(got, []string{" bytes=400000-"}) {
		t.Errorf("huggingface_hub over our partial download: CDN requests %q", got)
	}
}
