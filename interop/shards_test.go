package interop

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/weights"
)

// copyFile copies src to dst, making dst's folder.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// shardedTiny writes the tiny fixture pipeline into a temporary folder
// with its UNet weights split by hand across two safetensors shards and
// the index diffusers writes beside them; edit, when set, changes the
// index before it is written. It returns the folder.
func shardedTiny(t *testing.T, edit func(idx *ShardIndex)) string {
	t.Helper()
	src := fixtures(t, "tiny")
	dir := t.TempDir()
	for _, f := range []string{ModelIndexFile, "unet/" + ConfigFile, "scheduler/" + SchedulerConfigFile} {
		copyFile(t, filepath.Join(src, filepath.FromSlash(f)), filepath.Join(dir, filepath.FromSlash(f)))
	}
	sd, meta, err := weights.Load(filepath.Join(src, "unet", SafetensorsWeights))
	if err != nil {
		t.Fatal(err)
	}
	names := slices.Sorted(maps.Keys(sd))
	idx := ShardIndex{Metadata: map[string]any{"total_size": 0}, WeightMap: map[string]string{}}
	var total int
	for k, half := range [][]string{names[:len(names)/2], names[len(names)/2:]} {
		f := ShardName(SafetensorsWeights, k, 2)
		part := map[string]weights.Tensor{}
		for _, n := range half {
			part[n] = sd[n]
			idx.WeightMap[n] = f
			total += 4 * sd[n].NumElements()
		}
		if err := weights.Save(filepath.Join(dir, "unet", f), part, meta); err != nil {
			t.Fatal(err)
		}
	}
	idx.Metadata["total_size"] = total
	if edit != nil {
		edit(&idx)
	}
	b, _ := json.MarshalIndent(idx, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "unet", SafetensorsIndex), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestShardedTiny: the tiny pipeline with its weights in two shards loads
// as the unsharded one, bit for bit (weights, config, process, spacing, ε
// on both cases of timesteps), whether the folder, the unet folder or the
// index file is named.
func TestShardedTiny(t *testing.T) {
	src := fixtures(t, "tiny")
	ref, err := Load(src)
	if err != nil {
		t.Fatal(err)
	}
	refEps := forwardEps(t, ref, filepath.Join(src, "expected.safetensors"))
	dir := shardedTiny(t, nil)
	for _, path := range []string{dir, filepath.Join(dir, "unet"), filepath.Join(dir, "unet", SafetensorsIndex)} {
		if !IsDiffusers(path) {
			t.Errorf("%s: not recognised as diffusers", path)
		}
		m, err := Load(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if m.Weights != filepath.Join(dir, "unet", SafetensorsIndex) {
			t.Errorf("%s: read weights %s, want the index", path, m.Weights)
		}
		if !slices.Equal(m.Net.Weights(), ref.Net.Weights()) || !sameConfig(m.Net.Config(), ref.Net.Config()) {
			t.Errorf("%s: the sharded network differs from the unsharded one", path)
		}
		if path == filepath.Join(dir, "unet") {
			continue // a bare model folder: no scheduler beside it, so DDPMScheduler's defaults
		}
		if m.Process != ref.Process || m.Spacing != ref.Spacing {
			t.Errorf("%s: process %+v spacing %v, unsharded %+v %v", path, m.Process, m.Spacing, ref.Process, ref.Spacing)
		}
		if eps := forwardEps(t, m, filepath.Join(src, "expected.safetensors")); !slices.Equal(eps, refEps) {
			t.Errorf("%s: ε differs from the unsharded model's", path)
		}
	}
}

// forwardEps is the network's output on every case of expected.safetensors.
func forwardEps(t *testing.T, m *Model, expected string) []float32 {
	t.Helper()
	ts, _, err := weights.Load(expected)
	if err != nil {
		t.Fatal(err)
	}
	x, tt := ts["x"], ts["t"]
	k, b := tt.Shape[0], tt.Shape[1]
	var all []float32
	for c := range k {
		steps := make([]int, b)
		for i := range steps {
			steps[i] = int(tt.I64[c*b+i])
		}
		out := make([]float32, len(x.F32))
		m.Net.Forward(out, x.F32, steps, b, false, nil)
		all = append(all, out...)
	}
	return all
}

// TestShardedRefused: a broken index or shard is refused in one line that
// says what is wrong.
func TestShardedRefused(t *testing.T) {
	first, second := ShardName(SafetensorsWeights, 0, 2), ShardName(SafetensorsWeights, 1, 2)
	cases := []struct {
		name string
		edit func(idx *ShardIndex)
		prep func(dir string)
		want string
	}{
		{"shard missing", nil, func(dir string) { os.Remove(filepath.Join(dir, "unet", second)) }, "which is missing"},
		{"path in shard name", func(idx *ShardIndex) {
			for n := range idx.WeightMap {
				idx.WeightMap[n] = "../" + idx.WeightMap[n]
			}
		}, nil, "not a plain file name"},
		{"tensor in the other shard", func(idx *ShardIndex) {
			for n, f := range idx.WeightMap {
				if f == first {
					idx.WeightMap[n] = second
					return
				}
			}
		}, nil, "puts in"},
		{"tensor not listed", func(idx *ShardIndex) {
			for n := range idx.WeightMap {
				delete(idx.WeightMap, n)
				return
			}
		}, nil, "does not list"},
		{"listed tensor absent", func(idx *ShardIndex) { idx.WeightMap["conv_out.extra"] = first }, nil, "does not hold it"},
		{"empty weight map", func(idx *ShardIndex) { idx.WeightMap = nil }, nil, "names no tensor"},
	}
	for _, c := range cases {
		dir := shardedTiny(t, c.edit)
		if c.prep != nil {
			c.prep(dir)
		}
		_, err := Load(dir)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want one line with %q", c.name, err, c.want)
		}
	}
}

// TestShardedPickleIndex: a .bin checkpoint's index (a sharded pickle
// checkpoint; here the tiny-old-bin fixture's .bin as its one shard) is
// read through ReadPickle, as the .bin itself.
func TestShardedPickleIndex(t *testing.T) {
	src := fixtures(t, "tiny-old-bin")
	ref, err := Load(src)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, f := range []string{ModelIndexFile, "unet/" + ConfigFile, "scheduler/" + SchedulerConfigFile} {
		copyFile(t, filepath.Join(src, filepath.FromSlash(f)), filepath.Join(dir, filepath.FromSlash(f)))
	}
	shard := ShardName(PickleWeights, 0, 1)
	copyFile(t, filepath.Join(src, "unet", PickleWeights), filepath.Join(dir, "unet", shard))
	sd, err := ReadTensors(filepath.Join(src, "unet", PickleWeights))
	if err != nil {
		t.Fatal(err)
	}
	idx := ShardIndex{Metadata: map[string]any{"total_size": 0}, WeightMap: map[string]string{}}
	for n := range sd {
		idx.WeightMap[n] = shard
	}
	if err := writeJSON(filepath.Join(dir, "unet", PickleIndex), idx); err != nil {
		t.Fatal(err)
	}
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.Weights != filepath.Join(dir, "unet", PickleIndex) || !slices.Equal(m.Net.Weights(), ref.Net.Weights()) {
		t.Errorf("read %s: the network differs from the unsharded .bin's", m.Weights)
	}
}

// TestSaveSharded: SaveSharded splits at maxShard as diffusers'
// max_shard_size does, writes diffusers' names and index, and what it
// writes loads back bit for bit; unsharded below the size.
func TestSaveSharded(t *testing.T) {
	src := fixtures(t, "tiny")
	sd, _, err := weights.Load(filepath.Join(src, "unet", SafetensorsWeights))
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, v := range sd {
		total += 4 * int64(v.NumElements())
	}
	cases := []struct {
		max    int64
		shards int // 1: unsharded; 0: some shards, each within max unless one tensor is larger
	}{{0, 1}, {total, 1}, {total/2 + 1, 0}, {total / 3, 0}, {1, len(sd)}}
	for _, c := range cases {
		dir := t.TempDir()
		files, err := SaveSharded(dir, SafetensorsWeights, sd, map[string]string{"format": "pt"}, c.max)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, SafetensorsWeights)
		if c.shards != 1 {
			path += ".index.json"
		}
		if c.shards == 1 && !slices.Equal(files, []string{SafetensorsWeights}) {
			t.Errorf("max %d: wrote %v, want one file", c.max, files)
		}
		if c.shards != 1 {
			if len(files) < 3 || files[0] != ShardName(SafetensorsWeights, 0, len(files)-1) || files[len(files)-1] != SafetensorsIndex {
				t.Errorf("max %d: wrote %v", c.max, files)
			}
			idx, shards, err := ReadShardIndex(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := idx.Metadata["total_size"]; got != float64(total) {
				t.Errorf("max %d: total_size %v, want %d", c.max, got, total)
			}
			if c.shards > 1 && len(shards) != c.shards {
				t.Errorf("max %d: %d shards, want %d", c.max, len(shards), c.shards)
			}
			for _, f := range shards {
				part, _, _ := weights.Load(filepath.Join(dir, f))
				var size int64
				for _, v := range part {
					size += 4 * int64(v.NumElements())
				}
				if size > c.max && len(part) > 1 {
					t.Errorf("max %d: shard %s holds %d bytes in %d tensors", c.max, f, size, len(part))
				}
			}
		}
		back, err := ReadTensors(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(back) != len(sd) {
			t.Fatalf("max %d: %d tensors back, want %d", c.max, len(back), len(sd))
		}
		for n, v := range sd {
			if !slices.Equal(back[n].F32, v.F32) || !slices.Equal(back[n].Shape, v.Shape) {
				t.Errorf("max %d: tensor %s differs", c.max, n)
			}
		}
	}
}

// TestExportSharded: the tiny fixture exported with a shard size below its
// weights' writes shards and an index, and reads back as the same network.
func TestExportSharded(t *testing.T) {
	m, err := Load(fixtures(t, "tiny"))
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := ExportDiffusersSharded(m.Net, m.Process, out, 300_000); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "unet", SafetensorsWeights)); err == nil {
		t.Error("a single weights file was written beside the shards")
	}
	back, err := Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if back.Weights != filepath.Join(out, "unet", SafetensorsIndex) || !slices.Equal(back.Net.Weights(), m.Net.Weights()) || back.Process != m.Process {
		t.Errorf("the sharded export (%s) reads back differently", back.Weights)
	}
}
