package hub_test

import (
	"context"
	"crypto/sha1"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ddpm-go/ddpm/hub"
)

// A model fetched from a (here fake, local) hub into a fresh cache.
func Example() {
	commit := strings.Repeat("ab", 20)
	files := map[string]string{"config.json": `{"_class_name": "UNet2DModel"}`, "diffusion_pytorch_model.safetensors": "weights"}
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/models/") { // the revision: its commit and files
			json.NewEncoder(w).Encode(map[string]any{"sha": commit, "siblings": []map[string]string{
				{"rfilename": "config.json"}, {"rfilename": "diffusion_pytorch_model.safetensors"}}})
			return
		}
		body := files[path.Base(r.URL.Path)] // HEAD or GET /org/name/resolve/<rev>/<file>
		w.Header().Set("X-Repo-Commit", commit)
		w.Header().Set("ETag", fmt.Sprintf(`"%x"`, sha1.Sum([]byte(body))))
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		io.WriteString(w, body)
	}))
	defer fake.Close()
	cache, _ := os.MkdirTemp("", "hub")
	defer os.RemoveAll(cache)

	repo, rev, _ := hub.ParseRef("hf:org/tiny-ddpm@main")
	c := &hub.Client{Endpoint: fake.URL, CacheDir: cache, Quiet: true} // hub.NewClient() reads the environment
	dir, err := c.Snapshot(context.Background(), repo, rev, hub.Pipeline)
	if err != nil {
		fmt.Println(err)
		return
	}
	rel, _ := filepath.Rel(cache, dir)
	config, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	fmt.Println(filepath.ToSlash(rel))
	fmt.Println(string(config))
	// Output:
	// models--org--tiny-ddpm/snapshots/abababababababababababababababababababab
	// {"_class_name": "UNet2DModel"}
}
