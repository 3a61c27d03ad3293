// Package checkpoint stores a training run in one safetensors file: the raw
// and EMA weights under PyTorch's state_dict names, Adam's moments, the U-Net
// and diffusion configs, the training options, the step and the random
// generator's state, so that --resume continues bit for bit.
//
// Layout of the file:
//
//	model/<name>   raw weights (F32, PyTorch layout)
//	ema/<name>     exponential moving average of the weights
//	adam/m, adam/v Adam's first and second moments, flat, in Params order
//	__metadata__   format, unet, diffusion, train (JSON), step, adam_step,
//	               rng (base64 PCG state), checksum (CRC-32C of the tensors)
//
// A weights-only file (tensors named as in PyTorch, with or without a "unet"
// config in its metadata) is accepted by LoadModel, so that weights move both
// ways between this project and PyTorch.
//
// Writes go through weights.Save, which is atomic (temp file, fsync, rename):
// a crash leaves the previous checkpoint whole. The checksum catches a file
// that was damaged afterwards (a bit flip, a truncated copy).
package checkpoint

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/engine/nn"
	"github.com/ddpm-go/ddpm/model/unet"
	"github.com/ddpm-go/ddpm/weights"
)

// Format names this file layout in the metadata.
const Format = "ddpm-checkpoint/1"

// FileName is the checkpoint's name inside a run directory.
const FileName = "checkpoint.safetensors"

// Checkpoint is the whole state of a training run.
type Checkpoint struct {
	UNet      unet.Config
	Diffusion diffusion.Config
	Train     json.RawMessage // the training options, opaque to this package
	Step      int             // optimizer steps taken
	AdamStep  int
	RNG       []byte // state of the run's random generator (PCG MarshalBinary)

	// Flat buffers in the order of the U-Net's Params.
	Model, EMA, AdamM, AdamV []float32
}

// Path resolves a run directory to its checkpoint file; a file path is
// returned unchanged.
func Path(p string) string {
	if st, err := os.Stat(p); err == nil && st.IsDir() {
		return filepath.Join(p, FileName)
	}
	return p
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checksum is CRC-32C over the tensors in name order: name, then raw data.
func checksum(tensors map[string]weights.Tensor) uint32 {
	names := make([]string, 0, len(tensors))
	for n := range tensors {
		names = append(names, n)
	}
	slices.Sort(names)
	h := crc32.New(castagnoli)
	var buf [4096]byte
	for _, n := range names {
		h.Write([]byte(n))
		t := tensors[n]
		for i := 0; i < len(t.F32); {
			k := 0
			for ; k+4 <= len(buf) && i < len(t.F32); i++ {
				binary.LittleEndian.PutUint32(buf[k:], math.Float32bits(t.F32[i]))
				k += 4
			}
			h.Write(buf[:k])
		}
		for _, v := range t.I64 {
			binary.LittleEndian.PutUint64(buf[:8], uint64(v))
			h.Write(buf[:8])
		}
	}
	return h.Sum32()
}

// Save writes c to path atomically. params gives names and shapes (the
// U-Net built from c.UNet).
func Save(path string, c *Checkpoint, params []*nn.Param) error {
	tensors := map[string]weights.Tensor{}
	put := func(prefix string, flat []float32) {
		off := 0
		for _, p := range params {
			n := p.Size()
			tensors[prefix+p.Name] = weights.F32Tensor(flat[off:off+n], p.Shape...)
			off += n
		}
	}
	put("model/", c.Model)
	put("ema/", c.EMA)
	tensors["adam/m"] = weights.F32Tensor(c.AdamM, len(c.AdamM))
	tensors["adam/v"] = weights.F32Tensor(c.AdamV, len(c.AdamV))
	meta, err := metadata(c)
	if err != nil {
		return fmt.Errorf("checkpoint: save %s: %w", path, err)
	}
	meta["checksum"] = strconv.FormatUint(uint64(checksum(tensors)), 10)
	return weights.Save(path, tensors, meta)
}

func metadata(c *Checkpoint) (map[string]string, error) {
	u, err := json.Marshal(c.UNet)
	if err != nil {
		return nil, err
	}
	d, err := json.Marshal(c.Diffusion)
	if err != nil {
		return nil, err
	}
	train := c.Train
	if train == nil {
		train = json.RawMessage("{}")
	}
	return map[string]string{
		"format":    Format,
		"unet":      string(u),
		"diffusion": string(d),
		"train":     string(train),
		"step":      strconv.Itoa(c.Step),
		"adam_step": strconv.Itoa(c.AdamStep),
		"rng":       base64.StdEncoding.EncodeToString(c.RNG),
	}, nil
}

// ErrCorrupt marks a checkpoint whose contents fail their checksum or
// whose metadata is unreadable.
var ErrCorrupt = errors.New("checkpoint is corrupt")

// Load reads a full training checkpoint (as written by Save).
func Load(path string) (*Checkpoint, *unet.UNet, error) {
	tensors, meta, err := weights.Load(path)
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoint: %w", err)
	}
	if meta["format"] != Format {
		return nil, nil, fmt.Errorf("checkpoint: %s is not a ddpm training checkpoint (format %q)", path, meta["format"])
	}
	if want, err := strconv.ParseUint(meta["checksum"], 10, 32); err != nil || uint32(want) != checksum(tensors) {
		return nil, nil, fmt.Errorf("checkpoint: %s: %w (checksum mismatch)", path, ErrCorrupt)
	}
	c := &Checkpoint{Train: json.RawMessage(meta["train"])}
	if err := json.Unmarshal([]byte(meta["unet"]), &c.UNet); err != nil {
		return nil, nil, fmt.Errorf("checkpoint: %s: unet config: %v: %w", path, err, ErrCorrupt)
	}
	c.Diffusion = diffusion.DefaultConfig()
	if err := json.Unmarshal([]byte(meta["diffusion"]), &c.Diffusion); err != nil {
		return nil, nil, fmt.Errorf("checkpoint: %s: diffusion config: %v: %w", path, err, ErrCorrupt)
	}
	if c.Step, err = strconv.Atoi(meta["step"]); err != nil {
		return nil, nil, fmt.Errorf("checkpoint: %s: step: %w", path, ErrCorrupt)
	}
	if c.AdamStep, err = strconv.Atoi(meta["adam_step"]); err != nil {
		return nil, nil, fmt.Errorf("checkpoint: %s: adam_step: %w", path, ErrCorrupt)
	}
	if c.RNG, err = base64.StdEncoding.DecodeString(meta["rng"]); err != nil {
		return nil, nil, fmt.Errorf("checkpoint: %s: rng: %w", path, ErrCorrupt)
	}
	m, err := unet.New(c.UNet)
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	np := m.NumParams()
	if c.Model, err = gather(tensors, "model/", m.Params(), np); err != nil {
		return nil, nil, fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	if c.EMA, err = gather(tensors, "ema/", m.Params(), np); err != nil {
		return nil, nil, fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	for _, k := range []struct {
		name string
		dst  *[]float32
	}{{"adam/m", &c.AdamM}, {"adam/v", &c.AdamV}} {
		t, ok := tensors[k.name]
		if !ok || len(t.F32) != np {
			return nil, nil, fmt.Errorf("checkpoint: %s: tensor %s missing or of the wrong size", path, k.name)
		}
		*k.dst = t.F32
	}
	return c, m, nil
}

// gather copies the tensors prefix+name into one flat buffer in params
// order, checking every shape.
func gather(tensors map[string]weights.Tensor, prefix string, params []*nn.Param, n int) ([]float32, error) {
	flat := make([]float32, n)
	off := 0
	for _, p := range params {
		t, ok := tensors[prefix+p.Name]
		if !ok {
			return nil, fmt.Errorf("tensor %s%s is missing (a checkpoint of another architecture?)", prefix, p.Name)
		}
		if !slices.Equal(t.Shape, p.Shape) || t.F32 == nil {
			return nil, fmt.Errorf("tensor %s%s has shape %v, the model needs %v", prefix, p.Name, t.Shape, p.Shape)
		}
		off += copy(flat[off:], t.F32)
	}
	return flat, nil
}

// LoadModel loads a model for inference from a run directory, a training
// checkpoint (EMA weights unless raw is set) or a weights-only safetensors
// file with PyTorch names. cfg is used when the file carries no U-Net
// config (a file exported from PyTorch); it may be nil otherwise.
func LoadModel(path string, raw bool, cfg *unet.Config) (*unet.UNet, diffusion.Config, error) {
	path = Path(path)
	tensors, meta, err := weights.Load(path)
	if err != nil {
		return nil, diffusion.Config{}, fmt.Errorf("checkpoint: %w", err)
	}
	dc := diffusion.DefaultConfig()
	if s, ok := meta["diffusion"]; ok {
		if err := json.Unmarshal([]byte(s), &dc); err != nil {
			return nil, dc, fmt.Errorf("checkpoint: %s: diffusion config: %v: %w", path, err, ErrCorrupt)
		}
	}
	var uc unet.Config
	switch s, ok := meta["unet"]; {
	case ok:
		if err := json.Unmarshal([]byte(s), &uc); err != nil {
			return nil, dc, fmt.Errorf("checkpoint: %s: unet config: %v: %w", path, err, ErrCorrupt)
		}
	case cfg != nil:
		uc = *cfg
	default:
		return nil, dc, fmt.Errorf("checkpoint: %s has no U-Net config in its metadata; name one with --config", path)
	}
	if want, ok := meta["checksum"]; ok {
		if w, err := strconv.ParseUint(want, 10, 32); err != nil || uint32(w) != checksum(tensors) {
			return nil, dc, fmt.Errorf("checkpoint: %s: %w (checksum mismatch)", path, ErrCorrupt)
		}
	}
	m, err := unet.New(uc)
	if err != nil {
		return nil, dc, fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	prefix := ""
	if meta["format"] == Format {
		prefix = "ema/"
		if raw {
			prefix = "model/"
		}
	}
	flat, err := gather(tensors, prefix, m.Params(), m.NumParams())
	if err != nil {
		return nil, dc, fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	copy(m.Weights(), flat)
	return m, dc, nil
}

// SaveWeights writes the model's weights alone, under PyTorch's names, with
// the configs in the metadata: the file to hand to PyTorch or to share.
// half stores them as float16.
func SaveWeights(path string, m *unet.UNet, dc diffusion.Config, half bool) error {
	tensors := map[string]weights.Tensor{}
	w := m.Weights()
	off := 0
	for _, p := range m.Params() {
		n := p.Size()
		t := weights.F32Tensor(w[off:off+n], p.Shape...)
		if half {
			t.DType = "F16"
		}
		tensors[p.Name] = t
		off += n
	}
	u, err := json.Marshal(m.Config())
	if err != nil {
		return err
	}
	d, err := json.Marshal(dc)
	if err != nil {
		return err
	}
	return weights.Save(path, tensors, map[string]string{"unet": string(u), "diffusion": string(d)})
}
