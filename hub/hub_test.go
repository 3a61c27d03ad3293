package hub

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func init() { retryWait = time.Millisecond }

// clearEnv points every variable NewClient reads at nothing, and HOME at
// a temporary folder, so that no test sees the machine's own.
func clearEnv(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	for _, k := range []string{"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME", "HF_ENDPOINT",
		"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
		"HF_HUB_ETAG_TIMEOUT", "HF_HUB_DOWNLOAD_TIMEOUT", "HF_HUB_DISABLE_PROGRESS_BARS"} {
		t.Setenv(k, "")
	}
	return home
}

func TestParseRef(t *testing.T) {
	tests := []struct {
		in, repo, rev string
		bad           bool
	}{
		{in: "google/ddpm-cifar10-32", repo: "google/ddpm-cifar10-32", rev: "main"},
		{in: "hf:google/ddpm-cifar10-32", repo: "google/ddpm-cifar10-32", rev: "main"},
		{in: "hf:google/ddpm-cifar10-32@main", repo: "google/ddpm-cifar10-32", rev: "main"},
		{in: "google/ddpm-cifar10-32@v1.0", repo: "google/ddpm-cifar10-32", rev: "v1.0"},
		{in: "google/ddpm-cifar10-32@" + testCommit, repo: "google/ddpm-cifar10-32", rev: testCommit},
		{in: "google/ddpm-cifar10-32@refs/pr/1", repo: "google/ddpm-cifar10-32", rev: "refs/pr/1"},
		{in: "gpt2", repo: "gpt2", rev: "main"},
		{in: "a.b_c/d-e.f", repo: "a.b_c/d-e.f", rev: "main"},
		{in: "", bad: true},
		{in: "hf:", bad: true},
		{in: "google/ddpm@", bad: true},
		{in: "a/b/c", bad: true},
		{in: "a--b/c", bad: true},
		{in: "a/..", bad: true},
		{in: "a/b.", bad: true},
		{in: "/b", bad: true},
		{in: "a b/c", bad: true},
		{in: "a/b@../../x", bad: true},
		{in: "a/b@/x", bad: true},
		{in: "a/b@x y", bad: true},
	}
	for _, tt := range tests {
		repo, rev, err := ParseRef(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("ParseRef(%q) = %q, %q; want an error", tt.in, repo, rev)
			}
			continue
		}
		if err != nil || repo != tt.repo || rev != tt.rev {
			t.Errorf("ParseRef(%q) = %q, %q, %v; want %q, %q", tt.in, repo, rev, err, tt.repo, tt.rev)
		}
	}
}

func TestCacheDir(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string // relative to HOME when it starts with ~
	}{
		{"default", nil, "~/.cache/huggingface/hub"},
		{"XDG_CACHE_HOME", map[string]string{"XDG_CACHE_HOME": "/xdg"}, "/xdg/huggingface/hub"},
		{"HF_HOME over XDG", map[string]string{"XDG_CACHE_HOME": "/xdg", "HF_HOME": "/hfhome"}, "/hfhome/hub"},
		{"HUGGINGFACE_HUB_CACHE over HF_HOME", map[string]string{"HF_HOME": "/hfhome", "HUGGINGFACE_HUB_CACHE": "/legacy"}, "/legacy"},
		{"HF_HUB_CACHE over all", map[string]string{"HF_HOME": "/hfhome", "HUGGINGFACE_HUB_CACHE": "/legacy", "HF_HUB_CACHE": "/hubcache"}, "/hubcache"},
		{"tilde expanded", map[string]string{"HF_HOME": "~/hf"}, "~/hf/hub"},
		{"variables expanded", map[string]string{"HF_HUB_CACHE": "$XDG_CACHE_HOME/c", "XDG_CACHE_HOME": "/x"}, "/x/c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := clearEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			want := filepath.FromSlash(tt.want)
			if rest, ok := strings.CutPrefix(tt.want, "~/"); ok {
				want = filepath.Join(home, filepath.FromSlash(rest))
			}
			if got := CacheDir(); got != want {
				t.Errorf("CacheDir() = %q, want %q", got, want)
			}
			if got := NewClient().CacheDir; got != want {
				t.Errorf("NewClient().CacheDir = %q, want %q", got, want)
			}
		})
	}
}

func TestNewClientEnv(t *testing.T) {
	for _, tt := range []struct {
		v    string
		want bool
	}{{"1", true}, {"true", true}, {"TRUE", true}, {"yes", true}, {"on", true}, {"0", false}, {"false", false}, {"", false}, {"no", false}} {
		clearEnv(t)
		t.Setenv("HF_HUB_OFFLINE", tt.v)
		if got := NewClient().Offline; got != tt.want {
			t.Errorf("HF_HUB_OFFLINE=%q: Offline = %v, want %v", tt.v, got, tt.want)
		}
	}
	clearEnv(t)
	t.Setenv("TRANSFORMERS_OFFLINE", "1")
	if !NewClient().Offline {
		t.Errorf("TRANSFORMERS_OFFLINE=1 without HF_HUB_OFFLINE: not offline")
	}

	home := clearEnv(t)
	c := NewClient()
	if c.Endpoint != DefaultEndpoint || c.Token != "" || c.Offline || c.MetadataTimeout != 10*time.Second {
		t.Errorf("defaults: %+v", c)
	}
	t.Setenv("HF_ENDPOINT", "http://mirror.example/")
	t.Setenv("HF_HUB_ETAG_TIMEOUT", "2.5")
	if c := NewClient(); c.Endpoint != "http://mirror.example" || c.MetadataTimeout != 2500*time.Millisecond {
		t.Errorf("HF_ENDPOINT with a slash, HF_HUB_ETAG_TIMEOUT=2.5: %q, %v", c.Endpoint, c.MetadataTimeout)
	}

	// The token: HF_TOKEN, else the file `hf auth login` writes in HF_HOME.
	if err := os.MkdirAll(filepath.Join(home, ".cache", "huggingface"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".cache", "huggingface", "token"), []byte("hf_file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := NewClient().Token; got != "hf_file" {
		t.Errorf("token from ~/.cache/huggingface/token = %q", got)
	}
	t.Setenv("HF_TOKEN", "hf_env")
	if got := NewClient().Token; got != "hf_env" {
		t.Errorf("token with HF_TOKEN set = %q", got)
	}
}

// layout lists a cache folder as `tree` would: "path" for files,
// "path -> target" for links.
func layout(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if info.Mode()&os.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			rel += " -> " + target
		}
		out = append(out, rel)
		return nil
	})
	slices.Sort(out)
	return out
}

// wantLayout is the repository folder huggingface_hub's snapshot_download
// leaves for the fixture files at revision main.
func wantLayout(h *fakeHub) []string {
	out := []string{"refs/main"}
	for _, f := range fixtureFiles {
		e := h.etag(f)
		out = append(out, "blobs/"+e, "snapshots/"+testCommit+"/"+f+" -> "+strings.Repeat("../", strings.Count(f, "/")+2)+"blobs/"+e)
	}
	slices.Sort(out)
	return out
}

func TestSnapshotFreshLayout(t *testing.T) {
	h := newFakeHub(t)
	cache := t.TempDir()
	c := h.client(t, cache)
	var mu sync.Mutex
	progressed := map[string]int64{}
	c.Progress = func(file string, done, total int64) {
		mu.Lock()
		progressed[file] = done
		mu.Unlock()
		if done > total {
			t.Errorf("progress %s: %d of %d", file, done, total)
		}
	}
	dir, err := c.Snapshot(context.Background(), testRepo, "main", Pipeline)
	if err != nil {
		t.Fatal(err)
	}
	repoDir := filepath.Join(cache, "models--google--ddpm-cifar10-32")
	if want := filepath.Join(repoDir, "snapshots", testCommit); dir != want {
		t.Errorf("dir = %s, want %s", dir, want)
	}
	if got, want := layout(t, repoDir), wantLayout(h); !slices.Equal(got, want) {
		t.Errorf("cache layout:\n%s\nwant (huggingface_hub's):\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if ref, _ := os.ReadFile(filepath.Join(repoDir, "refs", "main")); string(ref) != testCommit {
		t.Errorf("refs/main = %q, want the commit and no newline", ref)
	}
	for _, f := range fixtureFiles {
		got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f)))
		if err != nil || !bytes.Equal(got, h.files[f]) {
			t.Errorf("%s: read %d bytes, %v; want the fixture's %d", f, len(got), err, len(h.files[f]))
		}
		if progressed[f] != int64(len(h.files[f])) {
			t.Errorf("progress of %s ended at %d, want %d", f, progressed[f], len(h.files[f]))
		}
		lock := filepath.Join(cache, ".locks", "models--google--ddpm-cifar10-32", h.etag(f)+".lock")
		if _, err := os.Stat(lock); err != nil {
			t.Errorf("lock file where huggingface_hub takes it: %v", err)
		}
	}
	weights := h.etag("unet/diffusion_pytorch_model.safetensors")
	want := []string{"GET /api/models/google/ddpm-cifar10-32/revision/main"}
	for _, f := range []string{"model_index.json", "unet/config.json"} {
		want = append(want, "HEAD /google/ddpm-cifar10-32/resolve/"+testCommit+"/"+f, "GET /google/ddpm-cifar10-32/resolve/"+testCommit+"/"+f)
	}
	want = append(want, "HEAD /google/ddpm-cifar10-32/resolve/"+testCommit+"/unet/diffusion_pytorch_model.safetensors", "GET /cdn/"+weights)
	f := "scheduler/scheduler_config.json"
	want = append(want, "HEAD /google/ddpm-cifar10-32/resolve/"+testCommit+"/"+f, "GET /google/ddpm-cifar10-32/resolve/"+testCommit+"/"+f)
	if got := h.requests(); !slices.Equal(got, want) {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestSecondCall(t *testing.T) {
	tests := []struct {
		name    string
		rev     string
		offline bool
		want    []string
	}{
		{"main asks for the revision only", "main", false, []string{"GET /api/models/google/ddpm-cifar10-32/revision/main"}},
		{"a tag asks for the revision only", "v1.0", false, []string{"GET /api/models/google/ddpm-cifar10-32/revision/v1.0"}},
		{"a commit asks nothing", testCommit, false, nil},
		{"offline main asks nothing", "main", true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHub(t)
			c := h.client(t, t.TempDir())
			first, err := c.Snapshot(context.Background(), testRepo, "main", Pipeline)
			if err != nil {
				t.Fatal(err)
			}
			h.reset()
			c.Offline = tt.offline
			dir, err := c.Snapshot(context.Background(), testRepo, tt.rev, Pipeline)
			if err != nil {
				t.Fatal(err)
			}
			if dir != first {
				t.Errorf("dir %s, first call's %s", dir, first)
			}
			if got := h.requests(); !slices.Equal(got, tt.want) {
				t.Errorf("requests %q, want %q", got, tt.want)
			}
		})
	}
}

// populate lays the fixture out in cache as diffusers (huggingface_hub)
// leaves it, written here without the package: blobs named by etag,
// relative links in snapshots/<commit> (copies when links is false, as on
// Windows without developer mode) and refs/main.
func populate(t *testing.T, h *fakeHub, cache string, links bool, files ...string) {
	t.Helper()
	repoDir := filepath.Join(cache, "models--google--ddpm-cifar10-32")
	for _, f := range files {
		blob := filepath.Join(repoDir, "blobs", h.etag(f))
		snap := filepath.Join(repoDir, "snapshots", testCommit, filepath.FromSlash(f))
		must(t, os.MkdirAll(filepath.Dir(blob), 0o755))
		must(t, os.MkdirAll(filepath.Dir(snap), 0o755))
		must(t, os.WriteFile(blob, h.files[f], 0o644))
		if links {
			rel, _ := filepath.Rel(filepath.Dir(snap), blob)
			must(t, os.Symlink(rel, snap))
		} else {
			must(t, os.WriteFile(snap, h.files[f], 0o644))
		}
	}
	must(t, os.MkdirAll(filepath.Join(repoDir, "refs"), 0o755))
	must(t, os.WriteFile(filepath.Join(repoDir, "refs", "main"), []byte(testCommit), 0o644))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// deadEndpoint is the URL of a server that no longer listens.
func deadEndpoint(t *testing.T) string {
	s := httptest.NewServer(nil)
	u := s.URL
	s.Close()
	return u
}

func TestPrepopulatedCacheOffline(t *testing.T) {
	for _, links := range []bool{true, false} {
		h := newFakeHub(t)
		cache := t.TempDir()
		populate(t, h, cache, links, fixtureFiles...)
		for _, rev := range []string{"main", testCommit} {
			c := &Client{Endpoint: deadEndpoint(t), CacheDir: cache, Offline: true, Quiet: true}
			dir, err := c.Snapshot(context.Background(), testRepo, rev, Pipeline)
			if err != nil {
				t.Fatalf("links %v, %s: %v", links, rev, err)
			}
			if want := filepath.Join(cache, "models--google--ddpm-cifar10-32", "snapshots", testCommit); dir != want {
				t.Errorf("dir %s, want %s", dir, want)
			}
			p, err := c.File(context.Background(), testRepo, rev, "unet/config.json")
			if b, _ := os.ReadFile(p); err != nil || !bytes.Equal(b, h.files["unet/config.json"]) {
				t.Errorf("links %v, %s: File: %v", links, rev, err)
			}
		}
		// Online, the cached commit needs no file request either.
		c := h.client(t, cache)
		if _, err := c.Snapshot(context.Background(), testRepo, "main", Pipeline); err != nil {
			t.Fatal(err)
		}
		if got := h.requests(); len(got) != 1 {
			t.Errorf("online over a full cache: requests %q, want the revision only", got)
		}
	}
}

func TestOfflineMissing(t *testing.T) {
	h := newFakeHub(t)
	tests := []struct {
		name   string
		cached []string
		rev    string
		file   string // File instead of Snapshot
		want   string
	}{
		{name: "empty cache", rev: "main", want: "no refs/main in "},
		{name: "commit not cached", rev: testCommit, want: "no snapshot of " + testCommit},
		{name: "weights missing", cached: []string{"model_index.json", "unet/config.json", "scheduler/scheduler_config.json"}, rev: "main",
			want: "no unet/diffusion_pytorch_model.safetensors or unet/diffusion_pytorch_model.bin in "},
		{name: "scheduler missing", cached: []string{"model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors"}, rev: "main",
			want: "no scheduler/scheduler_config.json in "},
		{name: "file missing", cached: []string{"model_index.json"}, rev: "main", file: "unet/config.json", want: "no unet/config.json in "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cache := t.TempDir()
			if tt.cached != nil {
				populate(t, h, cache, true, tt.cached...)
			}
			c := &Client{Endpoint: h.srv.URL, CacheDir: cache, Offline: true, Quiet: true}
			h.reset()
			var err error
			if tt.file != "" {
				_, err = c.File(context.Background(), testRepo, tt.rev, tt.file)
			} else {
				_, err = c.Snapshot(context.Background(), testRepo, tt.rev, Pipeline)
			}
			if !errors.Is(err, ErrOffline) {
				t.Fatalf("err = %v, want ErrOffline", err)
			}
			msg := err.Error()
			for _, s := range []string{"hf:google/ddpm-cifar10-32", tt.want, "HF_HUB_OFFLINE", cache} {
				if !strings.Contains(msg, s) {
					t.Errorf("%q does not say %q", msg, s)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("%q: more than one line", msg)
			}
			if got := h.requests(); len(got) != 0 {
				t.Errorf("offline requests: %q", got)
			}
		})
	}
}

func weightsBlob(h *fakeHub, cache string) string {
	return filepath.Join(cache, "models--google--ddpm-cifar10-32", "blobs", h.etag("unet/diffusion_pytorch_model.safetensors"))
}

func rangeRequests(h *fakeHub) []string {
	var out []string
	for _, r := range h.requests() {
		if strings.HasPrefix(r, "GET /cdn/") {
			out = append(out, strings.TrimPrefix(r, "GET /cdn/"+h.etag("unet/diffusion_pytorch_model.safetensors")))
		}
	}
	return out
}

func TestInterruptedThenResumed(t *testing.T) {
	h := newFakeHub(t)
	cache := t.TempDir()
	c := h.client(t, cache)
	c.Retries = 1
	h.cuts, h.cutAt = 100, 100_000
	_, err := c.Snapshot(context.Background(), testRepo, "main", Pipeline)
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("err = %v, want ErrInterrupted", err)
	}
	inc := weightsBlob(h, cache) + ".incomplete"
	for _, s := range []string{"unet/diffusion_pytorch_model.safetensors", "at 200000 of 1141212 bytes", inc, "resume"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%q does not say %q", err, s)
		}
	}
	if st, err := os.Stat(inc); err != nil || st.Size() != 200_000 {
		t.Fatalf(".incomplete kept: %v, %v", st, err)
	}
	if _, err := os.Stat(filepath.Join(cache, "models--google--ddpm-cifar10-32", "refs", "main")); err == nil {
		t.Errorf("refs/main written though the snapshot is not complete")
	}
	if got, want := rangeRequests(h), []string{"", " bytes=100000-"}; !slices.Equal(got, want) {
		t.Errorf("CDN requests %q, want %q", got, want)
	}

	h.reset()
	h.cuts = 0
	dir, err := c.Snapshot(context.Background(), testRepo, "main", Pipeline)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rangeRequests(h), []string{" bytes=200000-"}; !slices.Equal(got, want) {
		t.Errorf("CDN requests %q, want %q", got, want)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "unet", "diffusion_pytorch_model.safetensors"))
	if !bytes.Equal(got, h.files["unet/diffusion_pytorch_model.safetensors"]) {
		t.Errorf("resumed file differs")
	}
	if _, err := os.Stat(inc); !os.IsNotExist(err) {
		t.Errorf(".incomplete left: %v", err)
	}
}

func TestResumedWithinCall(t *testing.T) {
	h := newFakeHub(t)
	cache := t.TempDir()
	c := h.client(t, cache)
	h.cuts, h.cutAt = 2, 300_000
	dir, err := c.Snapshot(context.Background(), testRepo, "main", Pipeline)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rangeRequests(h), []string{"", " bytes=300000-", " bytes=600000-"}; !slices.Equal(got, want) {
		t.Errorf("CDN requests %q, want %q", got, want)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "unet", "diffusion_pytorch_model.safetensors"))
	if !bytes.Equal(got, h.files["unet/diffusion_pytorch_model.safetensors"]) {
		t.Errorf("file differs")
	}
}

func TestStalledDownload(t *testing.T) {
	h := newFakeHub(t)
	cache := t.TempDir()
	c := h.client(t, cache)
	c.Retries, c.StallTimeout = 0, 100*time.Millisecond
	h.cuts, h.cutAt, h.stall = 1, 1000, true
	start := time.Now()
	_, err := c.Snapshot(context.Background(), testRepo, "main", Pipeline)
	if !errors.Is(err, ErrInterrupted) || !strings.Contains(err.Error(), "nothing received for 100ms") {
		t.Fatalf("err = %v, want an interruption for the stall", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("gave up after %v", d)
	}
	if st, err := os.Stat(weightsBlob(h, cache) + ".incomplete"); err != nil || st.Size() != 1000 {
		t.Errorf(".incomplete: %v, %v", st, err)
	}
}

func TestServerIgnoresRange(t *testing.T) {
	h := newFakeHub(t)
	cache := t.TempDir()
	c := h.client(t, cache)
	h.ignoreRange = true
	// An earlier try left bytes that are not even the file's: the 200
	// answer must replace them, not be appended.
	inc := weightsBlob(h, cache) + ".incomplete"
	must(t, os.MkdirAll(filepath.Dir(inc), 0o755))
	must(t, os.WriteFile(inc, bytes.Repeat([]byte{7}, 5000), 0o644))
	dir, err := c.Snapshot(context.Background(), testRepo, "main", Pipeline)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rangeRequests(h), []string{" bytes=5000-"}; !slices.Equal(got, want) {
		t.Errorf("CDN requests %q, want %q", got, want)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "unet", "diffusion_pytorch_model.safetensors"))
	if !bytes.Equal(got, h.files["unet/diffusion_pytorch_model.safetensors"]) {
		t.Errorf("file differs")
	}
}

func TestCorruptDownload(t *testing.T) {
	h := newFakeHub(t)
	cache := t.TempDir()
	c := h.client(t, cache)
	h.corrupt = true
	_, err := c.Snapshot(context.Background(), testRepo, "main", Pipeline)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v, want ErrCorrupt", err)
	}
	sum := h.etag("unet/diffusion_pytorch_model.safetensors")
	for _, s := range []string{"hf:google/ddpm-cifar10-32: unet/diffusion_pytorch_model.safetensors", "sha256", sum, "deleted"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%q does not say %q", err, s)
		}
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("%q: more than one line", err)
	}
	blob := weightsBlob(h, cache)
	for _, p := range []string{blob, blob + ".incomplete", filepath.Join(cache, "models--google--ddpm-cifar10-32", "snapshots", testCommit, "unet", "diffusion_pytorch_model.safetensors")} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s left after a bad download", p)
		}
	}
	h.corrupt = false
	if _, err := c.Snapshot(context.Background(), testRepo, "main", Pipeline); err != nil {
		t.Errorf("after the hub is fixed: %v", err)
	}
}

func TestToken(t *testing.T) {
	tests := []struct {
		name    string
		token   string
		foreign bool
	}{
		{"no token", "", false},
		{"token, CDN on the endpoint's host", "hf_secret", false},
		{"token, foreign CDN", "hf_secret", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHub(t)
			if tt.foreign {
				h.withForeignCDN()
			}
			c := h.client(t, t.TempDir())
			c.Token = tt.token
			if _, err := c.Snapshot(context.Background(), testRepo, "main", Pipeline); err != nil {
				t.Fatal(err)
			}
			h.mu.Lock()
			defer h.mu.Unlock()
			endpointHost := strings.TrimPrefix(h.srv.URL, "http://")
			seen := 0
			for k, auth := range h.auth {
				want := ""
				if tt.token != "" && strings.HasPrefix(k, endpointHost+" ") {
					want = "Bearer " + tt.token
				}
				if auth != want {
					t.Errorf("%s: Authorization %q, want %q", k, auth, want)
				}
				if strings.Contains(k, " /cdn/") {
					seen++
					if tt.foreign == strings.HasPrefix(k, endpointHost+" ") {
						t.Errorf("CDN request on the wrong host: %s", k)
					}
				}
			}
			if seen != 1 {
				t.Errorf("%d CDN requests, want 1", seen)
			}
		})
	}
}

func TestPrivateRepo(t *testing.T) {
	h := newFakeHub(t)
	h.private, h.token = true, "hf_secret"
	c := h.client(t, t.TempDir())
	_, err := c.Snapshot(context.Background(), testRepo, "main", Pipeline)
	if !errors.Is(err, ErrRepoNotFound) || err.Error() != "hf:google/ddpm-cifar10-32: repository not found (or private: set HF_TOKEN)" {
		t.Fatalf("without the token: %v", err)
	}
	c.Token = "hf_wrong"
	if _, err := c.Snapshot(context.Background(), testRepo, "main", Pipeline); !errors.Is(err, ErrRepoNotFound) || !strings.Contains(err.Error(), "HF_TOKEN gives no access") {
		t.Fatalf("with a wrong token: %v", err)
	}
	c.Token = "hf_secret"
	if _, err := c.Snapshot(context.Background(), testRepo, "main", Pipeline); err != nil {
		t.Fatalf("with the token: %v", err)
	}
}

func TestErrors(t *testing.T) {
	h := newFakeHub(t)
	h.extra = []string{"unet/listed-not-served.json"}
	tests := []struct {
		name      string
		repo, rev string
		file      string
		sel       Selector
		is        error
		msg       string
	}{
		{name: "unknown repo", repo: "nobody/nothing", rev: "main", is: ErrRepoNotFound,
			msg: "hf:nobody/nothing: repository not found (or private: set HF_TOKEN)"},
		{name: "unknown repo, File", repo: "nobody/nothing", rev: "main", file: "config.json", is: ErrRepoNotFound,
			msg: "hf:nobody/nothing: repository not found (or private: set HF_TOKEN)"},
		{name: "unknown revision", repo: testRepo, rev: "nope", is: ErrRevisionNotFound,
			msg: `hf:google/ddpm-cifar10-32: revision not found: "nope"`},
		{name: "unknown revision, File", repo: testRepo, rev: "nope", file: "model_index.json", is: ErrRevisionNotFound,
			msg: `hf:google/ddpm-cifar10-32: revision not found: "nope"`},
		{name: "unknown file", repo: testRepo, rev: "v1.0", file: "unet/nope.json", is: ErrFileNotFound,
			msg: "hf:google/ddpm-cifar10-32@v1.0: unet/nope.json: file not found in the repository"},
		{name: "listed but not served", repo: testRepo, rev: "main", sel: Files("unet/listed-not-served.json"), is: ErrFileNotFound,
			msg: "hf:google/ddpm-cifar10-32: unet/listed-not-served.json: file not found in the repository"},
		{name: "not a diffusers layout", repo: testRepo, rev: "main", sel: Files("weights.ckpt"),
			msg: "hf:google/ddpm-cifar10-32: no weights.ckpt at commit " + testCommit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := h.client(t, t.TempDir())
			var err error
			if tt.file != "" {
				_, err = c.File(context.Background(), tt.repo, tt.rev, tt.file)
			} else {
				_, err = c.Snapshot(context.Background(), tt.repo, tt.rev, tt.sel)
			}
			if err == nil || tt.is != nil && !errors.Is(err, tt.is) || err.Error() != tt.msg {
				t.Errorf("err = %v\nwant   %s", err, tt.msg)
			}
		})
	}
}

func TestUnsafeFilePath(t *testing.T) {
	h := newFakeHub(t)
	h.extra = []string{"../../../outside"}
	c := h.client(t, t.TempDir())
	if _, err := c.Snapshot(context.Background(), testRepo, "main", nil); !errors.Is(err, ErrProtocol) {
		t.Errorf("a listed ../ path: %v, want ErrProtocol", err)
	}
	if _, err := c.File(context.Background(), testRepo, "main", "../x"); !errors.Is(err, ErrProtocol) {
		t.Errorf("File ../x: %v, want ErrProtocol", err)
	}
}

func TestCommitRevision(t *testing.T) {
	h := newFakeHub(t)
	cache := t.TempDir()
	c := h.client(t, cache)
	dir, err := c.Snapshot(context.Background(), testRepo, testCommit, Pipeline)
	if err != nil {
		t.Fatal(err)
	}
	repoDir := filepath.Join(cache, "models--google--ddpm-cifar10-32")
	if dir != filepath.Join(repoDir, "snapshots", testCommit) {
		t.Errorf("dir %s", dir)
	}
	if _, err := os.Stat(filepath.Join(repoDir, "refs")); !os.IsNotExist(err) {
		t.Errorf("refs/ written for a commit revision")
	}
	if got := h.requests(); got[0] != "GET /api/models/google/ddpm-cifar10-32/revision/"+testCommit {
		t.Errorf("first request %q", got[0])
	}
	// The files of another, older commit are not taken for it.
	if _, err := (&Client{Endpoint: h.srv.URL, CacheDir: cache, Offline: true}).Snapshot(context.Background(), testRepo, oldCommit, Pipeline); !errors.Is(err, ErrOffline) {
		t.Errorf("uncached commit offline: %v", err)
	}
}

func TestUnreachable(t *testing.T) {
	h := newFakeHub(t)
	cache := t.TempDir()
	c := &Client{Endpoint: deadEndpoint(t), CacheDir: cache, Quiet: true}
	_, err := c.Snapshot(context.Background(), testRepo, "main", Pipeline)
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
	for _, s := range []string{"hf:google/ddpm-cifar10-32", "cannot reach " + c.Endpoint, filepath.Join(cache, "models--google--ddpm-cifar10-32"), "HF_HUB_OFFLINE=1"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%q does not say %q", err, s)
		}
	}
	if _, err := c.File(context.Background(), testRepo, "main", "unet/config.json"); !errors.Is(err, ErrUnreachable) {
		t.Errorf("File: %v, want ErrUnreachable", err)
	}
	// With the files cached, the cache stands in, as in huggingface_hub.
	populate(t, h, cache, true, fixtureFiles...)
	if _, err := c.Snapshot(context.Background(), testRepo, "main", Pipeline); err != nil {
		t.Errorf("unreachable over a full cache: %v", err)
	}
	if _, err := c.File(context.Background(), testRepo, "main", "unet/config.json"); err != nil {
		t.Errorf("File, unreachable over a full cache: %v", err)
	}
}

func TestFile(t *testing.T) {
	h := newFakeHub(t)
	cache := t.TempDir()
	c := h.client(t, cache)
	p, err := c.File(context.Background(), testRepo, "main", "unet/diffusion_pytorch_model.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	repoDir := filepath.Join(cache, "models--google--ddpm-cifar10-32")
	if want := filepath.Join(repoDir, "snapshots", testCommit, "unet", "diffusion_pytorch_model.safetensors"); p != want {
		t.Errorf("path %s, want %s", p, want)
	}
	if ref, _ := os.ReadFile(filepath.Join(repoDir, "refs", "main")); string(ref) != testCommit {
		t.Errorf("refs/main = %q", ref)
	}
	tests := []struct {
		rev  string
		want int
	}{{"main", 1}, {testCommit, 0}}
	for _, tt := range tests {
		h.reset()
		if _, err := c.File(context.Background(), testRepo, tt.rev, "unet/diffusion_pytorch_model.safetensors"); err != nil {
			t.Fatal(err)
		}
		if got := h.requests(); len(got) != tt.want {
			t.Errorf("again at %s: requests %q, want %d", tt.rev, got, tt.want)
		}
	}
}

func TestNoSymlinks(t *testing.T) {
	defer func(f func(string, string) error) { symlink = f }(symlink)
	symlink = func(string, string) error { return &os.LinkError{Op: "symlink", Err: errors.New("not supported")} }
	h := newFakeHub(t)
	c := h.client(t, t.TempDir())
	dir, err := c.Snapshot(context.Background(), testRepo, "main", Pipeline)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fixtureFiles {
		p := filepath.Join(dir, filepath.FromSlash(f))
		st, err := os.Lstat(p)
		if err != nil || !st.Mode().IsRegular() {
			t.Errorf("%s: %v, want a copy", f, err)
		}
		if b, _ := os.ReadFile(p); !bytes.Equal(b, h.files[f]) {
			t.Errorf("%s differs", f)
		}
	}
}

func TestConcurrentSnapshots(t *testing.T) {
	h := newFakeHub(t)
	cache := t.TempDir()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = h.client(t, cache).Snapshot(context.Background(), testRepo, "main", Pipeline)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := rangeRequests(h); len(got) != 1 {
		t.Errorf("the weights were downloaded %d times", len(got))
	}
	if got, want := layout(t, filepath.Join(cache, "models--google--ddpm-cifar10-32")), wantLayout(h); !slices.Equal(got, want) {
		t.Errorf("layout %q", got)
	}
}

func TestPipelineSelector(t *testing.T) {
	st, bin := "unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.bin"
	base := []string{"model_index.json", "unet/config.json", "scheduler/scheduler_config.json", "README.md"}
	tests := []struct {
		name  string
		files []string
		want  []string
		err   string
	}{
		{"safetensors preferred", append(slices.Clone(base), bin, st), []string{"model_index.json", "unet/config.json", st, "scheduler/scheduler_config.json"}, ""},
		{"bin when no safetensors", append(slices.Clone(base), bin), []string{"model_index.json", "unet/config.json", bin, "scheduler/scheduler_config.json"}, ""},
		{"no weights", base, nil, "no " + st + " or " + bin},
		{"sharded: the index", append(slices.Clone(base), st+".index.json", "unet/diffusion_pytorch_model-00001-of-00001.safetensors"), []string{"model_index.json", "unet/config.json", st + ".index.json", "scheduler/scheduler_config.json"}, ""},
		{"sharded index before the single file", append(slices.Clone(base), st, st+".index.json"), []string{"model_index.json", "unet/config.json", st + ".index.json", "scheduler/scheduler_config.json"}, ""},
		{"bin before its index", append(slices.Clone(base), bin, bin+".index.json"), []string{"model_index.json", "unet/config.json", bin, "scheduler/scheduler_config.json"}, ""},
		{"sharded bin", append(slices.Clone(base), bin+".index.json"), []string{"model_index.json", "unet/config.json", bin + ".index.json", "scheduler/scheduler_config.json"}, ""},
		{"no unet config", []string{"model_index.json", st, "scheduler/scheduler_config.json"}, nil, "no unet/config.json"},
		{"bare UNet", []string{"config.json", "diffusion_pytorch_model.bin"}, []string{"config.json", "diffusion_pytorch_model.bin"}, ""},
		{"bare UNet with scheduler", []string{"config.json", "diffusion_pytorch_model.safetensors", "scheduler_config.json"}, []string{"config.json", "diffusion_pytorch_model.safetensors", "scheduler_config.json"}, ""},
		{"not diffusers", []string{"pytorch_model.bin"}, nil, "no model_index.json"},
	}
	for _, tt := range tests {
		got, err := Pipeline(tt.files)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: %v, want error %q", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("%s: %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}

func TestRedirectDropsToken(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]string{}
	foreign := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen["foreign "+r.URL.Path] = r.Header.Get("Authorization")
		mu.Unlock()
	}))
	defer foreign.Close()
	var endpoint *httptest.Server
	endpoint = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen["endpoint "+r.URL.Path] = r.Header.Get("Authorization")
		mu.Unlock()
		switch r.URL.Path {
		case "/renamed":
			http.Redirect(w, r, "/same-host", http.StatusMovedPermanently)
		case "/same-host":
			http.Redirect(w, r, foreign.URL+"/cdn", http.StatusFound)
		}
	}))
	defer endpoint.Close()
	c := &Client{Endpoint: endpoint.URL, Token: "hf_secret"}
	req, _ := http.NewRequest(http.MethodGet, endpoint.URL+"/renamed", nil)
	c.setHeaders(req)
	resp, err := c.guarded().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := map[string]string{"endpoint /renamed": "Bearer hf_secret", "endpoint /same-host": "Bearer hf_secret", "foreign /cdn": ""}
	mu.Lock()
	defer mu.Unlock()
	for k, v := range want {
		if got, ok := seen[k]; !ok || got != v {
			t.Errorf("%s: Authorization %q (seen %v), want %q", k, got, ok, v)
		}
	}
}

func TestDiskError(t *testing.T) {
	h := newFakeHub(t)
	cache := t.TempDir()
	repoDir := filepath.Join(cache, "models--google--ddpm-cifar10-32")
	must(t, os.MkdirAll(repoDir, 0o755))
	must(t, os.WriteFile(filepath.Join(repoDir, "blobs"), nil, 0o644)) // a file where the folder goes
	_, err := h.client(t, cache).Snapshot(context.Background(), testRepo, "main", Pipeline)
	if err == nil || !strings.HasPrefix(err.Error(), "hf:google/ddpm-cifar10-32: model_index.json: ") || !strings.Contains(err.Error(), filepath.Join(repoDir, "blobs")) {
		t.Errorf("err = %v, want the path that could not be made", err)
	}
}

func TestRenamedRepo(t *testing.T) {
	h := newFakeHub(t)
	h.renamed = map[string]string{"google/ddpm-old-name": testRepo}
	cache := t.TempDir()
	dir, err := h.client(t, cache).Snapshot(context.Background(), "google/ddpm-old-name", "main", Pipeline)
	if err != nil {
		t.Fatal(err)
	}
	// Cached under the name asked for, as huggingface_hub does.
	if want := filepath.Join(cache, "models--google--ddpm-old-name", "snapshots", testCommit); dir != want {
		t.Errorf("dir %s, want %s", dir, want)
	}
	log := h.requests()
	for _, want := range []string{
		"HEAD /google/ddpm-old-name/resolve/" + testCommit + "/unet/config.json",
		"HEAD /google/ddpm-cifar10-32/resolve/" + testCommit + "/unet/config.json",
	} {
		if !slices.Contains(log, want) {
			t.Errorf("no %q in %q", want, log)
		}
	}
}

func TestCompleteIncomplete(t *testing.T) {
	// An earlier try got every byte but stopped before the rename: no GET.
	h := newFakeHub(t)
	cache := t.TempDir()
	inc := weightsBlob(h, cache) + ".incomplete"
	must(t, os.MkdirAll(filepath.Dir(inc), 0o755))
	must(t, os.WriteFile(inc, h.files["unet/diffusion_pytorch_model.safetensors"], 0o644))
	if _, err := h.client(t, cache).Snapshot(context.Background(), testRepo, "main", Pipeline); err != nil {
		t.Fatal(err)
	}
	if got := rangeRequests(h); len(got) != 0 {
		t.Errorf("CDN requests %q, want none", got)
	}
}
