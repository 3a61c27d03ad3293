package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// SnapshotWithShards is Snapshot for selections that may name a sharded
// checkpoint's index (Pipeline does for a sharded model): after the
// selected files, the index among them, it fetches at the same commit
// every shard the index's weight_map names (in the index's folder), as
// diffusers' _get_checkpoint_shard_files does. Shards already in the
// cache cost no request, and offline they must be there.
func (c *Client) SnapshotWithShards(ctx context.Context, repo, revision string, sel Selector) (string, error) {
	if sel == nil {
		sel = All
	}
	var picked []string
	record := func(files []string) ([]string, error) {
		p, err := sel(files)
		picked = p
		return p, err
	}
	dir, err := c.Snapshot(ctx, repo, revision, record)
	if err != nil {
		return "", err
	}
	var shards []string
	for _, f := range picked {
		if !IsShardIndex(f) {
			continue
		}
		names, err := ShardFiles(filepath.Join(dir, filepath.FromSlash(f)))
		if err != nil {
			return "", fmt.Errorf("%s: %w", label(repo, revision), err)
		}
		for _, n := range names {
			shards = append(shards, path.Join(path.Dir(f), n))
		}
	}
	if len(shards) == 0 {
		return dir, nil
	}
	// The snapshot folder is named by the commit the selection came from.
	return c.Snapshot(ctx, repo, filepath.Base(dir), Files(shards...))
}

// ShardFiles lists the shard files a sharded checkpoint's index (a local
// file) names in its weight_map, sorted and each once; a name that is not
// a plain file name beside the index is refused.
func ShardFiles(index string) ([]string, error) {
	data, err := os.ReadFile(index)
	if err != nil {
		return nil, err
	}
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, fmt.Errorf("%s: not a sharded checkpoint index: %v", filepath.Base(index), oneLine(err.Error()))
	}
	var out []string
	for name, f := range idx.WeightMap {
		if f == "" || f == "." || f == ".." || strings.ContainsAny(f, "/\\\x00") {
			return nil, fmt.Errorf("%s: tensor %s is in shard %q, not a plain file name beside the index", filepath.Base(index), name, f)
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: the index's weight_map names no shard", filepath.Base(index))
	}
	slices.Sort(out)
	return out, nil
}
