package interop

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/model/unet"
)

// ExportDiffusers writes the network and its diffusion process as a
// diffusers DDPMPipeline folder in dir (created if needed), which
// DDPMPipeline.from_pretrained(dir) loads and Load reads back:
//
//	dir/model_index.json
//	dir/unet/config.json                         (every UNet2DModel key)
//	dir/unet/diffusion_pytorch_model.safetensors (diffusers' names, float32)
//	dir/scheduler/scheduler_config.json          (every DDPMScheduler key)
//
// It refuses, in one line and before writing anything, what diffusers
// cannot express: per-level block counts (level_blocks), a learned or
// fitted variance, the μ̃ parameterisation. The project's own networks
// export with downsample_padding 1 (their symmetric padding), imported
// google/ddpm-* ones with 0.
func ExportDiffusers(net *unet.UNet, dc diffusion.Config, dir string) error {
	return ExportDiffusersSharded(net, dc, dir, 0)
}

// ExportDiffusersSharded is ExportDiffusers with the UNet weights split
// into shards of at most maxShard bytes when they are larger (diffusers'
// save_pretrained with max_shard_size; SaveSharded): unet/diffusion_
// pytorch_model-00001-of-0000N.safetensors … and unet/diffusion_pytorch_
// model.safetensors.index.json. maxShard ≤ 0 writes one file.
func ExportDiffusersSharded(net *unet.UNet, dc diffusion.Config, dir string, maxShard int64) error {
	ucfg, err := DiffusersUNetConfig(net.Config())
	if err != nil {
		return fmt.Errorf("export to diffusers: %w", err)
	}
	scfg, err := DiffusersSchedulerConfig(dc)
	if err != nil {
		return fmt.Errorf("export to diffusers: %w", err)
	}
	index := map[string]any{
		"_class_name":        "DDPMPipeline",
		"_diffusers_version": DiffusersVersion,
		"unet":               []string{"diffusers", "UNet2DModel"},
		"scheduler":          []string{"diffusers", "DDPMScheduler"},
	}
	for _, sub := range []string{"unet", "scheduler"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return fmt.Errorf("export to diffusers: %w", err)
		}
	}
	for _, f := range []struct {
		path string
		v    any
	}{
		{filepath.Join(dir, ModelIndexFile), index},
		{filepath.Join(dir, "unet", ConfigFile), ucfg},
		{filepath.Join(dir, "scheduler", SchedulerConfigFile), scfg},
	} {
		if err := writeJSON(f.path, f.v); err != nil {
			return fmt.Errorf("export to diffusers: %w", err)
		}
	}
	sd := FromProject(net, Diffusers)
	for name, t := range sd {
		t.DType = "F32"
		sd[name] = t
	}
	if _, err := SaveSharded(filepath.Join(dir, "unet"), SafetensorsWeights, sd, map[string]string{"format": "pt"}, maxShard); err != nil {
		return fmt.Errorf("export to diffusers: %w", err)
	}
	return nil
}

// writeJSON writes v as diffusers writes its configs: keys sorted, two
// spaces of indent, a final newline.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
