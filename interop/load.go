package interop

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/interop/torchbin"
	"github.com/ddpm-go/ddpm/model/unet"
	"github.com/ddpm-go/ddpm/weights"
)

// File names of a diffusers model folder.
const (
	ModelIndexFile      = "model_index.json"
	ConfigFile          = "config.json"
	SchedulerConfigFile = "scheduler_config.json"
	SafetensorsWeights  = "diffusion_pytorch_model.safetensors"
	PickleWeights       = "diffusion_pytorch_model.bin"
)

// A TensorReader reads the tensors of a weights file.
type TensorReader func(path string) (map[string]weights.Tensor, error)

// ReadPickle reads the PyTorch pickles torch.save writes (.bin, .ckpt,
// .pt, .pth: diffusers' diffusion_pytorch_model.bin, pesser's model.ckpt)
// into tensors, as weights.Load reads safetensors: torchbin.Load, which
// runs none of the pickle. Set to nil, such files are refused with
// ErrPickle and a line saying how to convert them.
var ReadPickle TensorReader = torchbin.Load

// ErrPickle marks weights in PyTorch's pickle format when ReadPickle is
// nil.
var ErrPickle = errors.New("no reader for PyTorch pickle weights is built in")

// isPickle reports whether path names a torch.save file, by extension or
// by its first bytes (a zip archive, or a pickle's PROTO opcode).
func isPickle(path string) bool {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".bin", ".ckpt", ".pt", ".pth":
		return true
	case ".safetensors":
		return false
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var head [4]byte
	n, _ := io.ReadFull(f, head[:])
	return n == 4 && (string(head[:]) == "PK\x03\x04" || head[0] == 0x80 && head[1] >= 2 && head[1] <= 5)
}

// ReadTensors reads a weights file: safetensors (weights.Load), through
// ReadPickle a PyTorch pickle, or a sharded checkpoint's index
// (*.index.json), whose shards it reads and joins.
func ReadTensors(path string) (map[string]weights.Tensor, error) {
	if IsShardIndex(path) {
		return readSharded(path)
	}
	if !isPickle(path) {
		ts, _, err := weights.Load(path)
		return ts, err
	}
	kind := pickleKind(path)
	if ReadPickle == nil {
		return nil, noPickleReader(path, kind)
	}
	ts, err := ReadPickle(path)
	if err != nil {
		return nil, pickleError(path, kind, err)
	}
	return ts, nil
}

// pickleKind says which of torch.save's formats the file at path is in.
func pickleKind(path string) string {
	kind := "a PyTorch pickle (torch.save)"
	if f, err := os.Open(path); err == nil {
		var head [4]byte
		if n, _ := io.ReadFull(f, head[:]); n == 4 && string(head[:]) == "PK\x03\x04" {
			kind = "a zip archive (PyTorch's torch.save)"
		}
		f.Close()
	}
	return kind
}

// noPickleReader is the refusal of a pickle while ReadPickle is nil.
func noPickleReader(path, kind string) error {
	return fmt.Errorf("%s is %s: %w; convert it to safetensors: python -c \"import torch, safetensors.torch as s; s.save_file(torch.load('%s', map_location='cpu'), '%s')\"",
		path, kind, ErrPickle, filepath.Base(path), strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))+".safetensors")
}

// pickleError is a pickle reader's error in one line naming the file once.
func pickleError(path, kind string, err error) error {
	// The reader's errors name the file already (torchbin: "torchbin: PATH: …").
	msg := strings.TrimPrefix(strings.TrimPrefix(err.Error(), "torchbin: "), path+": ")
	return fmt.Errorf("%s is %s, unreadable: %s", path, kind, msg)
}

// openTensors opens a weights file as ReadTensors reads it, but with
// tensors that are read on demand (weights.Lazy), decoded straight into
// where they go: safetensors through weights.Open, pickles through
// torchbin.Open while ReadPickle is torchbin's reader (another ReadPickle
// reads the file whole), a sharded checkpoint shard by shard. close closes
// the files; the tensors are readable until then.
func openTensors(path string) (ts map[string]weights.Lazy, close func(), err error) {
	if IsShardIndex(path) {
		return openSharded(path)
	}
	if !isPickle(path) {
		f, err := weights.Open(path)
		if err != nil {
			return nil, nil, err
		}
		return f.Lazy(), func() { f.Close() }, nil
	}
	kind := pickleKind(path)
	if ReadPickle == nil {
		return nil, nil, noPickleReader(path, kind)
	}
	if reflect.ValueOf(ReadPickle).Pointer() != reflect.ValueOf(torchbin.Load).Pointer() {
		sd, err := ReadTensors(path)
		if err != nil {
			return nil, nil, err
		}
		return inMemory(sd), func() {}, nil
	}
	f, err := torchbin.Open(path)
	if err != nil {
		return nil, nil, pickleError(path, kind, err)
	}
	for name, t := range f.Tensors {
		read := t.Read
		t.Read = func(dst []float32) error {
			if err := read(dst); err != nil {
				return pickleError(path, kind, err)
			}
			return nil
		}
		f.Tensors[name] = t
	}
	return f.Tensors, func() { f.Close() }, nil
}

// inMemory wraps decoded tensors as weights.Lazy ones.
func inMemory(sd map[string]weights.Tensor) map[string]weights.Lazy {
	out := make(map[string]weights.Lazy, len(sd))
	for name, t := range sd {
		out[name] = weights.Lazy{DType: t.DType, Shape: t.Shape, Read: func(dst []float32) error {
			if t.F32 == nil || len(t.F32) != len(dst) {
				return fmt.Errorf("tensor %s: %s%v does not fit %d floats", name, t.DType, t.Shape, len(dst))
			}
			copy(dst, t.F32)
			return nil
		}}
	}
	return out
}

// TensorNames lists the tensor names of a safetensors file from its header
// alone, without reading the data.
func TensorNames(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lenBuf [8]byte
	if _, err := io.ReadFull(f, lenBuf[:]); err != nil {
		return nil, fmt.Errorf("%s: too short for safetensors", path)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > weights.MaxHeaderSize {
		return nil, fmt.Errorf("%s: safetensors header of %d bytes, over the %d-byte cap", path, n, weights.MaxHeaderSize)
	}
	head := make([]byte, n)
	if _, err := io.ReadFull(f, head); err != nil {
		return nil, fmt.Errorf("%s: truncated safetensors header", path)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(head, &m); err != nil {
		return nil, fmt.Errorf("%s: safetensors header is not JSON", path)
	}
	names := make([]string, 0, len(m))
	for k := range m {
		if k != "__metadata__" {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	return names, nil
}

// Layout is the kind of thing Load read.
type Layout int

const (
	// PipelineFolder: model_index.json, unet/ and scheduler/ (DDPMPipeline's
	// save_pretrained, the google/ddpm-* repositories).
	PipelineFolder Layout = iota
	// ModelFolder: a bare UNet2DModel's config.json and weights, with a
	// scheduler_config.json beside them when there is one.
	ModelFolder
	// WeightsFile: a weights file named by path, its config.json beside it.
	WeightsFile
)

func (l Layout) String() string {
	return [...]string{"diffusers pipeline", "diffusers model", "diffusers weights"}[l]
}

// Model is what Load read: the network, its diffusion process and where
// they came from.
type Model struct {
	Net     *unet.UNet
	Process diffusion.Config
	Layout  Layout
	// Config, Scheduler and Weights are the files read; Scheduler is ""
	// when there was none and Process is DefaultSchedulerConfig.
	Config, Scheduler, Weights string
	// Naming is the weights' tensor naming.
	Naming Naming
	// Spacing and StepsOffset are the timestep spacing of the scheduler
	// config (SchedulerSpacing; DDPMScheduler's default "leading" without
	// one), the default of the fast samplers; SpacingAuto for a pesser
	// checkpoint, which has no scheduler.
	Spacing     diffusion.Spacing
	StepsOffset int
}

// IsDiffusers reports whether path is something Load reads: a folder
// holding model_index.json or config.json, a safetensors file whose tensor
// names are a UNet2DModel's, or a PyTorch pickle (.bin, .ckpt, .pt, .pth).
func IsDiffusers(path string) bool {
	st, err := os.Stat(path)
	if err != nil {
		return false
	}
	if st.IsDir() {
		return isFile(filepath.Join(path, ModelIndexFile)) || isFile(filepath.Join(path, ConfigFile))
	}
	if isPickle(path) || IsShardIndex(path) {
		return true
	}
	names, err := TensorNames(path)
	return err == nil && IsDiffusersNames(names)
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// Load reads a diffusers DDPM from path:
//
//   - a pipeline folder (model_index.json naming a UNet2DModel "unet" and a
//     "scheduler"; unet/config.json, unet/diffusion_pytorch_model.
//     safetensors or .bin, scheduler/scheduler_config.json);
//   - a bare UNet2DModel folder (config.json and its weights), whose
//     process is the scheduler_config.json beside them or, without one,
//     DDPMScheduler's defaults (DefaultSchedulerConfig);
//   - a weights file (diffusers', old diffusers' or pesser's names) with
//     the UNet2DModel config.json beside it; the scheduler config is looked
//     for beside it and in ../scheduler/. A pesser checkpoint without a
//     config.json is matched against pesser's own configs (PesserConfigs).
//
// .safetensors weights are preferred to .bin ones, as diffusers does; .bin
// and .ckpt are read through ReadPickle. A sharded checkpoint (an
// *.index.json and its shards) is read whole, in a folder or named by its
// index. Every refusal is one line naming
// the file and key.
func Load(path string) (*Model, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return loadWeightsFile(path)
	}
	if isFile(filepath.Join(path, ModelIndexFile)) {
		return loadPipeline(path)
	}
	if isFile(filepath.Join(path, ConfigFile)) {
		w, err := weightsIn(path)
		if err != nil {
			return nil, err
		}
		m := &Model{Layout: ModelFolder, Config: filepath.Join(path, ConfigFile), Weights: w}
		if s := filepath.Join(path, SchedulerConfigFile); isFile(s) {
			m.Scheduler = s
		}
		return m.load()
	}
	return nil, fmt.Errorf("%s: neither %s (a diffusers pipeline) nor %s (a diffusers model)", path, ModelIndexFile, ConfigFile)
}

// weightsIn is the weights file of a diffusers model folder, in the order
// diffusers' from_pretrained looks (models/modeling_utils.py 1207-1300):
// a sharded safetensors checkpoint's index, the .safetensors, the .bin,
// then a sharded .bin checkpoint's index (which diffusers reads only with
// use_safetensors=False).
func weightsIn(dir string) (string, error) {
	for _, name := range []string{SafetensorsIndex, SafetensorsWeights, PickleWeights, PickleIndex} {
		if p := filepath.Join(dir, name); isFile(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: no %s or %s (nor a sharded checkpoint's %s)", dir, SafetensorsWeights, PickleWeights, SafetensorsIndex)
}

// loadPipeline reads a pipeline folder.
func loadPipeline(dir string) (*Model, error) {
	index := filepath.Join(dir, ModelIndexFile)
	data, err := os.ReadFile(index)
	if err != nil {
		return nil, err
	}
	c, err := parseConf(index, data)
	if err != nil {
		return nil, err
	}
	c.get("_class_name")
	comp := func(key string) (lib, class string, ok bool, err error) {
		raw, present, null := c.get(key)
		if !present || null {
			return "", "", false, nil
		}
		var pair []*string
		if json.Unmarshal(raw, &pair) != nil || len(pair) != 2 {
			return "", "", false, c.errf(key, "not a [library, class] pair")
		}
		if pair[0] != nil {
			lib = *pair[0]
		}
		if pair[1] != nil {
			class = *pair[1]
		}
		return lib, class, class != "", nil
	}
	_, cls, ok, err := comp("unet")
	if err != nil {
		return nil, err
	}
	if !ok || cls != "UNet2DModel" {
		return nil, c.errf("unet", "a UNet2DModel is needed (the DDPM U-Net)")
	}
	_, sched, hasSched, err := comp("scheduler")
	if err != nil {
		return nil, err
	}
	if err := c.unknown(); err != nil {
		return nil, fmt.Errorf("%s (a pipeline of more than a U-Net and a scheduler, e.g. a latent one, cannot be expressed)", err)
	}
	m := &Model{Layout: PipelineFolder, Config: filepath.Join(dir, "unet", ConfigFile)}
	if m.Weights, err = weightsIn(filepath.Join(dir, "unet")); err != nil {
		return nil, err
	}
	if hasSched {
		m.Scheduler = filepath.Join(dir, "scheduler", SchedulerConfigFile)
		if !isFile(m.Scheduler) {
			return nil, fmt.Errorf("%s names a %s scheduler, but there is no scheduler/%s", index, sched, SchedulerConfigFile)
		}
	}
	return m.load()
}

// loadWeightsFile reads a weights file with its config.json beside it.
func loadWeightsFile(path string) (*Model, error) {
	dir := filepath.Dir(path)
	m := &Model{Layout: WeightsFile, Weights: path}
	if c := filepath.Join(dir, ConfigFile); isFile(c) {
		m.Config = c
	}
	for _, s := range []string{filepath.Join(dir, SchedulerConfigFile), filepath.Join(dir, "..", "scheduler", SchedulerConfigFile)} {
		if isFile(s) {
			m.Scheduler = s
			break
		}
	}
	return m.load()
}

// load builds m's network and process from its files. The weights are
// decoded tensor by tensor straight into the network's parameters
// (openTensors), so that loading holds little beyond the network itself.
func (m *Model) load() (*Model, error) {
	sd, closeWeights, err := openTensors(m.Weights)
	if err != nil {
		return nil, err
	}
	defer closeWeights()
	meta := lazyMeta(sd)
	naming, err := detectNaming(func(name string) bool { _, ok := meta[name]; return ok })
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.Weights, err)
	}
	var cfg unet.Config
	switch {
	case m.Config != "":
		if cfg, err = ReadUNetConfig(m.Config); err != nil {
			return nil, err
		}
	case naming == Pesser:
		var name string
		if cfg, name, err = pesserConfigFor(meta); err != nil {
			return nil, fmt.Errorf("%s: %w", m.Weights, err)
		}
		if m.Scheduler == "" {
			m.Process = PesserConfigs()[name].Process
		}
	default:
		return nil, fmt.Errorf("%s: no %s beside the weights (the UNet2DModel config they need)", m.Weights, ConfigFile)
	}
	switch {
	case m.Scheduler != "":
		if m.Process, err = ReadSchedulerConfig(m.Scheduler); err != nil {
			return nil, err
		}
		if m.Spacing, m.StepsOffset, err = ReadSchedulerSpacing(m.Scheduler); err != nil {
			return nil, err
		}
	case m.Process.T == 0:
		m.Process = DefaultSchedulerConfig()
		m.Spacing = diffusion.SpacingLeading
	}
	pairs, _, err := plan(cfg, meta)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.Weights, err)
	}
	net, err := unet.New(cfg)
	if err != nil {
		return nil, err
	}
	params := net.StateDict() // aliases the network's weights
	if len(params) != len(pairs) {
		return nil, fmt.Errorf("%s: the network of the config has %d tensors, the names map %d", m.Weights, len(params), len(pairs))
	}
	for _, p := range pairs {
		dst, ok := params[p.project]
		if !ok || !slices.Equal(dst.Shape, p.shape) {
			return nil, fmt.Errorf("%s: tensor %s: the network has no %s%v", m.Weights, p.foreign, p.project, p.shape)
		}
		if err := sd[p.foreign].Read(dst.F32); err != nil {
			if strings.Contains(err.Error(), m.Weights) {
				return nil, err
			}
			return nil, fmt.Errorf("%s: %w", m.Weights, err)
		}
	}
	m.Net, m.Naming = net, naming
	return m, nil
}

// PesserConfig is one of pesser/pytorch_diffusion's models: the network
// and process of the original TF checkpoints it converted (diffusion.py's
// configs; every one asymmetric downsampling, GroupNorm(32, 1e-6), one
// attention head at 16×16).
type PesserConfig struct {
	UNet    unet.Config
	Process diffusion.Config
}

// PesserConfigs are pesser's named models: cifar10 (fixedlarge) and the
// 256×256 LSUN models lsun_bedroom, lsun_cat and lsun_church (fixedsmall).
func PesserConfigs() map[string]PesserConfig {
	process := func(v diffusion.ModelVar) diffusion.Config {
		c := diffusion.DefaultConfig()
		c.Var = v
		return c
	}
	cifar := unet.Config{InCh: 3, Res: 32, Ch: 128, ChMult: []int{1, 2, 2, 2}, NumResBlocks: 2,
		AttnRes: []int{16}, Groups: 32, Dropout: 0.1, AsymmetricDownsample: true}
	lsun := unet.Config{InCh: 3, Res: 256, Ch: 128, ChMult: []int{1, 1, 2, 2, 4, 4}, NumResBlocks: 2,
		AttnRes: []int{16}, Groups: 32, AsymmetricDownsample: true}
	m := map[string]PesserConfig{"cifar10": {cifar, process(diffusion.FixedLarge)}}
	for _, name := range []string{"lsun_bedroom", "lsun_cat", "lsun_church"} {
		m[name] = PesserConfig{lsun, process(diffusion.FixedSmall)}
	}
	return m
}

// pesserConfigFor finds the pesser config whose tensors sd holds.
func pesserConfigFor(sd map[string]tensorMeta) (unet.Config, string, error) {
	cs := PesserConfigs()
	for _, name := range []string{"cifar10", "lsun_church"} {
		if _, _, err := plan(cs[name].UNet, sd); err == nil {
			return cs[name].UNet, name, nil
		}
	}
	return unet.Config{}, "", fmt.Errorf("pesser/pytorch_diffusion names, but not one of its models (cifar10, lsun_*), and no %s beside it", ConfigFile)
}
