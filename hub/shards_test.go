package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// shardedFakeHub is the fake hub serving the fixture pipeline with its
// UNet weights as a sharded checkpoint: the index and two shards (LFS),
// the shards' bytes cut from the fixture's file (the hub does not read
// them). The single safetensors file is not in the repository.
func shardedFakeHub(t *testing.T) (*fakeHub, []string) {
	h := newFakeHub(t)
	w := h.files["unet/diffusion_pytorch_model.safetensors"]
	delete(h.files, "unet/diffusion_pytorch_model.safetensors")
	shards := []string{"unet/diffusion_pytorch_model-00001-of-00002.safetensors", "unet/diffusion_pytorch_model-00002-of-00002.safetensors"}
	h.files[shards[0]], h.files[shards[1]] = w[:len(w)/2], w[len(w)/2:]
	h.lfs = map[string]bool{shards[0]: true, shards[1]: true}
	idx, _ := json.Marshal(map[string]any{"metadata": map[string]any{"total_size": len(w)},
		"weight_map": map[string]string{"conv_in.weight": "diffusion_pytorch_model-00001-of-00002.safetensors",
			"conv_in.bias": "diffusion_pytorch_model-00001-of-00002.safetensors", "conv_out.weight": "diffusion_pytorch_model-00002-of-00002.safetensors"}})
	h.files["unet/"+SafetensorsIndex] = idx
	h.listed = []string{"model_index.json", "scheduler/scheduler_config.json", "unet/config.json", "unet/" + SafetensorsIndex, shards[0], shards[1]}
	return h, shards
}

// TestSnapshotWithShards: a sharded checkpoint is fetched as diffusers
// does — the index with the other selected files, then each shard it
// names at the same commit — and a second call, or an offline one, asks
// nothing more than a complete cache needs.
func TestSnapshotWithShards(t *testing.T) {
	h, shards := shardedFakeHub(t)
	cache := t.TempDir()
	c := h.client(t, cache)
	dir, err := c.SnapshotWithShards(context.Background(), testRepo, "main", Pipeline)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(cache, "models--google--ddpm-cifar10-32", "snapshots", testCommit); dir != want {
		t.Errorf("dir %s, want %s", dir, want)
	}
	for _, f := range append([]string{"model_index.json", "unet/config.json", "unet/" + SafetensorsIndex, "scheduler/scheduler_config.json"}, shards...) {
		if b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f))); err != nil || !bytes.Equal(b, h.files[f]) {
			t.Errorf("%s: %d bytes, %v; want the hub's %d", f, len(b), err, len(h.files[f]))
		}
	}
	const api, res = "GET /api/models/google/ddpm-cifar10-32/revision/", "/google/ddpm-cifar10-32/resolve/" + testCommit + "/"
	want := []string{api + "main"}
	for _, f := range []string{"model_index.json", "unet/config.json", "unet/" + SafetensorsIndex, "scheduler/scheduler_config.json"} {
		want = append(want, "HEAD "+res+f, "GET "+res+f)
	}
	want = append(want, api+testCommit)
	for _, f := range shards {
		want = append(want, "HEAD "+res+f, "GET /cdn/"+h.etag(f))
	}
	if got := h.requests(); !slices.Equal(got, want) {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	cases := []struct {
		name    string
		rev     string
		offline bool
		want    []string
	}{
		{"main again asks for the revision only", "main", false, []string{api + "main"}},
		{"the commit asks nothing", testCommit, false, nil},
		{"offline asks nothing", "main", true, nil},
	}
	for _, tc := range cases {
		h.reset()
		c.Offline = tc.offline
		again, err := c.SnapshotWithShards(context.Background(), testRepo, tc.rev, Pipeline)
		if err != nil || again != dir {
			t.Errorf("%s: %s, %v", tc.name, again, err)
		}
		if got := h.requests(); !slices.Equal(got, tc.want) {
			t.Errorf("%s: requests %q, want %q", tc.name, got, tc.want)
		}
	}

	// Offline with a shard gone from the cache: the cache cannot stand in.
	c.Offline = true
	must(t, os.Remove(filepath.Join(dir, filepath.FromSlash(shards[1]))))
	if _, err := c.SnapshotWithShards(context.Background(), testRepo, "main", Pipeline); !errors.Is(err, ErrOffline) || !strings.Contains(err.Error(), shards[1]) {
		t.Errorf("offline without a shard: %v", err)
	}
}

// TestShardFiles: the shards an index names, and the indexes refused.
func TestShardFiles(t *testing.T) {
	cases := []struct {
		name, index string
		want        []string
		err         string
	}{
		{"two shards", `{"metadata": {}, "weight_map": {"a": "m-00002-of-00002.bin", "b": "m-00001-of-00002.bin", "c": "m-00001-of-00002.bin"}}`,
			[]string{"m-00001-of-00002.bin", "m-00002-of-00002.bin"}, ""},
		{"path in a name", `{"weight_map": {"a": "../m.bin"}}`, nil, "not a plain file name"},
		{"empty", `{"weight_map": {}}`, nil, "names no shard"},
		{"not JSON", `weights`, nil, "not a sharded checkpoint index"},
	}
	for _, tc := range cases {
		p := filepath.Join(t.TempDir(), "m.bin.index.json")
		must(t, os.WriteFile(p, []byte(tc.index), 0o644))
		got, err := ShardFiles(p)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}
