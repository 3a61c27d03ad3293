package interop

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ddpm-go/ddpm/weights"
)

// Index files of a sharded checkpoint (diffusers' SAFE_WEIGHTS_INDEX_NAME
// and WEIGHTS_INDEX_NAME, utils/constants.py): big models are saved as
// diffusion_pytorch_model-00001-of-0000N.safetensors (or .bin) shards and
// an index naming the shard of every tensor.
const (
	SafetensorsIndex = SafetensorsWeights + ".index.json"
	PickleIndex      = PickleWeights + ".index.json"
)

// IsShardIndex reports whether path names a sharded checkpoint's index
// (*.index.json).
func IsShardIndex(path string) bool { return strings.HasSuffix(path, ".index.json") }

// ShardIndex is a sharded checkpoint's index: {"metadata": {"total_size":
// bytes}, "weight_map": {tensor name: shard file}}, as diffusers'
// save_pretrained (models/modeling_utils.py 835-848) and transformers
// write it.
type ShardIndex struct {
	Metadata  map[string]any    `json:"metadata"`
	WeightMap map[string]string `json:"weight_map"`
}

// ReadShardIndex reads a sharded checkpoint's index and returns it with its
// shard files, sorted and each once. A shard named with a path separator or
// a parent reference is refused, as diffusers' _get_checkpoint_shard_files
// refuses it (utils/hub_utils.py 388-395): shards lie beside the index.
func ReadShardIndex(path string) (*ShardIndex, []string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	var idx ShardIndex
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, nil, fmt.Errorf("%s: not a sharded checkpoint index: %v", path, oneLine(err.Error()))
	}
	if len(idx.WeightMap) == 0 {
		return nil, nil, fmt.Errorf("%s: the index's weight_map names no tensor", path)
	}
	var shards []string
	for name, f := range idx.WeightMap {
		if f == "" || f != filepath.Base(f) || strings.ContainsAny(f, `/\`) || f == "." || f == ".." {
			return nil, nil, fmt.Errorf("%s: tensor %s is in shard %q, not a plain file name beside the index", path, name, f)
		}
		if !slices.Contains(shards, f) {
			shards = append(shards, f)
		}
	}
	slices.Sort(shards)
	return &idx, shards, nil
}

// readSharded reads the tensors of a sharded checkpoint through its index:
// every shard (safetensors or, through ReadPickle, a pickle), each tensor
// from the shard the index names. A shard that is missing, a tensor absent
// from its shard, and a tensor the index does not list are refused in one
// line.
func readSharded(index string) (map[string]weights.Tensor, error) {
	idx, shards, err := ReadShardIndex(index)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(index)
	out := make(map[string]weights.Tensor, len(idx.WeightMap))
	for _, f := range shards {
		p := filepath.Join(dir, f)
		if !isFile(p) {
			return nil, fmt.Errorf("%s names shard %s, which is missing", index, f)
		}
		ts, err := ReadTensors(p)
		if err != nil {
			return nil, err
		}
		for name, t := range ts {
			want, listed := idx.WeightMap[name]
			if !listed {
				return nil, fmt.Errorf("%s holds tensor %s, which %s does not list", p, name, filepath.Base(index))
			}
			if want != f {
				return nil, fmt.Errorf("%s holds tensor %s, which %s puts in %s", p, name, filepath.Base(index), want)
			}
			out[name] = t
		}
	}
	for _, name := range slices.Sorted(maps.Keys(idx.WeightMap)) {
		if _, ok := out[name]; !ok {
			return nil, fmt.Errorf("%s puts tensor %s in %s, which does not hold it", index, name, idx.WeightMap[name])
		}
	}
	return out, nil
}

// openSharded is readSharded with tensors read on demand (openTensors):
// every shard is opened and checked against the index, and stays open
// until close.
func openSharded(index string) (map[string]weights.Lazy, func(), error) {
	idx, shards, err := ReadShardIndex(index)
	if err != nil {
		return nil, nil, err
	}
	dir := filepath.Dir(index)
	out := make(map[string]weights.Lazy, len(idx.WeightMap))
	var closers []func()
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	for _, f := range shards {
		p := filepath.Join(dir, f)
		if !isFile(p) {
			closeAll()
			return nil, nil, fmt.Errorf("%s names shard %s, which is missing", index, f)
		}
		ts, c, err := openTensors(p)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		closers = append(closers, c)
		for _, name := range slices.Sorted(maps.Keys(ts)) {
			want, listed := idx.WeightMap[name]
			if !listed {
				closeAll()
				return nil, nil, fmt.Errorf("%s holds tensor %s, which %s does not list", p, name, filepath.Base(index))
			}
			if want != f {
				closeAll()
				return nil, nil, fmt.Errorf("%s holds tensor %s, which %s puts in %s", p, name, filepath.Base(index), want)
			}
			out[name] = ts[name]
		}
	}
	for _, name := range slices.Sorted(maps.Keys(idx.WeightMap)) {
		if _, ok := out[name]; !ok {
			closeAll()
			return nil, nil, fmt.Errorf("%s puts tensor %s in %s, which does not hold it", index, name, idx.WeightMap[name])
		}
	}
	return out, closeAll, nil
}

// ShardName is the file name of shard i (0-based) of n of a checkpoint
// whose single file would be name, diffusers' and huggingface_hub's
// pattern: diffusion_pytorch_model-00001-of-00002.safetensors.
func ShardName(name string, i, n int) string {
	ext := filepath.Ext(name)
	return fmt.Sprintf("%s-%05d-of-%05d%s", strings.TrimSuffix(name, ext), i+1, n, ext)
}

// SaveSharded writes the safetensors checkpoint sd into dir as name (e.g.
// diffusion_pytorch_model.safetensors) when its tensors' data fit in
// maxShard bytes (maxShard ≤ 0: always), and otherwise as shards of at most
// maxShard bytes each (a larger tensor gets a shard of its own) named by
// ShardName, plus the index name+".index.json" — diffusers' save_pretrained
// with max_shard_size (huggingface_hub's split_state_dict_into_shards: a
// shard is closed when the next tensor would overflow it). Tensors go in
// name order. It returns the files written, relative to dir; metadata goes
// into every file's header.
func SaveSharded(dir, name string, sd map[string]weights.Tensor, metadata map[string]string, maxShard int64) ([]string, error) {
	names := slices.Sorted(maps.Keys(sd))
	var groups [][]string
	var total, cur int64
	for _, n := range names {
		size := tensorBytes(sd[n])
		total += size
		if len(groups) == 0 || maxShard > 0 && cur > 0 && cur+size > maxShard {
			groups = append(groups, nil)
			cur = 0
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], n)
		cur += size
	}
	if maxShard <= 0 || len(groups) == 1 {
		if err := weights.Save(filepath.Join(dir, name), sd, metadata); err != nil {
			return nil, err
		}
		return []string{name}, nil
	}
	idx := ShardIndex{Metadata: map[string]any{"total_size": total}, WeightMap: map[string]string{}}
	var files []string
	for i, g := range groups {
		f := ShardName(name, i, len(groups))
		part := make(map[string]weights.Tensor, len(g))
		for _, n := range g {
			part[n] = sd[n]
			idx.WeightMap[n] = f
		}
		if err := weights.Save(filepath.Join(dir, f), part, metadata); err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	if err := writeJSON(filepath.Join(dir, name+".index.json"), idx); err != nil {
		return nil, err
	}
	return append(files, name+".index.json"), nil
}

// tensorBytes is the size of a tensor's data in its file.
func tensorBytes(t weights.Tensor) int64 {
	per := int64(4)
	switch t.DType {
	case "F16", "BF16", "I16", "U16":
		per = 2
	case "F64", "I64", "U64":
		per = 8
	case "I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2":
		per = 1
	}
	return int64(t.NumElements()) * per
}
