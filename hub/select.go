package hub

import (
	"errors"
	"path"
	"slices"
	"strings"
)

// A Selector picks the files to fetch from a revision's file list (the
// hub's, or, offline, the files the cached snapshot holds). Its error says
// what is missing, e.g. "no unet/config.json".
type Selector func(files []string) ([]string, error)

// All selects every file.
func All(files []string) ([]string, error) {
	if len(files) == 0 {
		return nil, errors.New("no files")
	}
	return files, nil
}

// Match selects the files want accepts; none is an error.
func Match(want func(path string) bool) Selector {
	return func(files []string) ([]string, error) {
		var out []string
		for _, f := range files {
			if want(f) {
				out = append(out, f)
			}
		}
		if len(out) == 0 {
			return nil, errors.New("no wanted file")
		}
		return out, nil
	}
}

// Files selects exactly the named files; one that is not listed is an
// error naming it.
func Files(names ...string) Selector {
	return func(files []string) ([]string, error) {
		for _, n := range names {
			if !slices.Contains(files, n) {
				return nil, errors.New("no " + n)
			}
		}
		return names, nil
	}
}

// Weight file names of a diffusers model, and the index files of a
// sharded checkpoint (diffusers' utils/constants.py).
const (
	SafetensorsWeights = "diffusion_pytorch_model.safetensors"
	PickleWeights      = "diffusion_pytorch_model.bin"
	SafetensorsIndex   = SafetensorsWeights + ".index.json"
	PickleIndex        = PickleWeights + ".index.json"
)

// Weights is the weights file of the diffusers model in folder dir of a
// repository ("unet", or "" for a bare model at the root), in the order
// diffusers' from_pretrained looks: a sharded safetensors checkpoint's
// index, the .safetensors file, the .bin file, a sharded .bin checkpoint's
// index. An index stands for its shards, which only its contents name:
// [Client.SnapshotWithShards] fetches them after it.
func Weights(files []string, dir string) (string, error) {
	for _, name := range []string{SafetensorsIndex, SafetensorsWeights, PickleWeights, PickleIndex} {
		p := path.Join(dir, name)
		if slices.Contains(files, p) {
			return p, nil
		}
	}
	return "", errors.New("no " + path.Join(dir, SafetensorsWeights) + " or " + path.Join(dir, PickleWeights))
}

// IsShardIndex reports whether a repository file is a sharded checkpoint's
// index (*.index.json).
func IsShardIndex(file string) bool { return strings.HasSuffix(file, ".index.json") }

// Pipeline selects what a DDPM model needs. A pipeline repository
// (model_index.json at the root, as google/ddpm-cifar10-32) gives
// model_index.json, unet/config.json, the unet weights (see Weights) and
// scheduler/scheduler_config.json; a bare UNet2DModel repository gives
// config.json, its weights and scheduler_config.json when there is one.
// For a sharded checkpoint the weights are its index; fetch with
// [Client.SnapshotWithShards] to have the shards too.
func Pipeline(files []string) ([]string, error) {
	has := func(f string) bool { return slices.Contains(files, f) }
	switch {
	case has("model_index.json"):
		out := []string{"model_index.json"}
		for _, f := range []string{"unet/config.json", "scheduler/scheduler_config.json"} {
			if !has(f) {
				return nil, errors.New("no " + f)
			}
		}
		w, err := Weights(files, "unet")
		if err != nil {
			return nil, err
		}
		return append(out, "unet/config.json", w, "scheduler/scheduler_config.json"), nil
	case has("config.json"):
		w, err := Weights(files, "")
		if err != nil {
			return nil, err
		}
		out := []string{"config.json", w}
		if has("scheduler_config.json") {
			out = append(out, "scheduler_config.json")
		}
		return out, nil
	}
	return nil, errors.New("no model_index.json (a diffusers pipeline) or config.json (a bare model)")
}
