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
//	               rng (base64 PCG state), checksum
//
// The checksum is CRC-32C over every metadata entry but itself and over
// every tensor's name, dtype, shape and values, so a flipped bit anywhere
// that the safetensors parser does not already reject — a weight, a digit
// of the learning rate in the training options — is reported as ErrCorrupt
// instead of silently changing the run. (Files of the older format
// ddpm-checkpoint/1 carry a checksum of the tensors alone and are still
// read.)
//
// A weights-only file (tensors named as in PyTorch, with or without a "unet"
// config in its metadata) is accepted by LoadModel, so that weights move both
// ways between this project and PyTorch.
//
// Writes go through weights.SaveKeep, which is atomic (temp file, fsync,
// rename) and keeps the file it replaces as the previous generation
// (PrevPath): a crash leaves the last complete checkpoint whole, and a
// checkpoint damaged afterwards still leaves the one before it.
package checkpoint

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/engine/nn"
	"github.com/ddpm-go/ddpm/model/unet"
	"github.com/ddpm-go/ddpm/weights"
)

// Format names this file layout in the metadata.
const Format = "ddpm-checkpoint/2"

// formatV1 is the earlier layout, whose checksum covers the tensors only.
const formatV1 = "ddpm-checkpoint/1"

// FileName is the checkpoint's name inside a run directory.
const FileName = "checkpoint.safetensors"

// PrevFileName is the previous generation of FileName, kept by Save.
const PrevFileName = "checkpoint.prev.safetensors"

// Limits on what a file's metadata may declare, checked before anything is
// allocated from it: a corrupt or hostile config must be an error, not a
// multi-gigabyte allocation. Real models are far below them.
const (
	// MaxRes bounds the image side of a U-Net config (sampling allocates
	// batch·channels·res² values).
	MaxRes = 1 << 12
	// MaxT bounds the number of diffusion steps (the schedule holds a
	// dozen arrays of T values; the paper uses 1000).
	MaxT = 1 << 20
)

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

// PrevPath is where Save keeps the previous generation of the checkpoint
// at path: checkpoint.safetensors → checkpoint.prev.safetensors (any other
// name gets ".prev" before its extension).
func PrevPath(path string) string {
	dir, base := filepath.Split(path)
	ext := filepath.Ext(base)
	return filepath.Join(dir, strings.TrimSuffix(base, ext)+".prev"+ext)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checksum is CRC-32C over the metadata (every key but "checksum", sorted,
// key then value) and over the tensors in name order (name, dtype, shape,
// values). v1 is the ddpm-checkpoint/1 variant: tensor names and values
// only.
func checksum(tensors map[string]weights.Tensor, meta map[string]string, v1 bool) uint32 {
	h := crc32.New(castagnoli)
	var buf [4096]byte
	str := func(s string) { // length-prefixed, so ("ab","c") ≠ ("a","bc")
		h.Write(binary.LittleEndian.AppendUint64(buf[:0], uint64(len(s))))
		h.Write([]byte(s))
	}
	if !v1 {
		keys := make([]string, 0, len(meta))
		for k := range meta {
			if k != "checksum" {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			str(k)
			str(meta[k])
		}
	}
	names := make([]string, 0, len(tensors))
	for n := range tensors {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		t := tensors[n]
		if v1 {
			h.Write([]byte(n))
		} else {
			str(n)
			str(t.DType)
			b := binary.LittleEndian.AppendUint64(buf[:0], uint64(len(t.Shape)))
			for _, d := range t.Shape {
				b = binary.LittleEndian.AppendUint64(b, uint64(d))
			}
			h.Write(b)
		}
		writeValues(h, t, buf[:])
	}
	return h.Sum32()
}

func writeValues(h hash.Hash32, t weights.Tensor, buf []byte) {
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

// verify checks a file's checksum, if it has one. required makes a missing
// checksum an error (training checkpoints always carry one).
func verify(tensors map[string]weights.Tensor, meta map[string]string, required bool) error {
	s, ok := meta["checksum"]
	if !ok {
		if required {
			return fmt.Errorf("%w (no checksum in the metadata)", ErrCorrupt)
		}
		return nil
	}
	want, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return fmt.Errorf("%w (unreadable checksum %q)", ErrCorrupt, s)
	}
	if got := checksum(tensors, meta, meta["format"] == formatV1); uint32(want) != got {
		return fmt.Errorf("%w (checksum mismatch: the file says %08x, its contents give %08x)", ErrCorrupt, want, got)
	}
	return nil
}

// Save writes c to path atomically, keeping the checkpoint it replaces (if
// any) as PrevPath(path), so that two complete generations exist from the
// second save on. params gives names and shapes (the U-Net built from
// c.UNet).
func Save(path string, c *Checkpoint, params []*nn.Param) error {
	tensors, meta, err := encode(c, params)
	if err != nil {
		return fmt.Errorf("checkpoint: save %s: %w", path, err)
	}
	return weights.SaveKeep(path, PrevPath(path), tensors, meta)
}

// Encode serialises c to the bytes Save would write.
func Encode(c *Checkpoint, params []*nn.Param) ([]byte, error) {
	tensors, meta, err := encode(c, params)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: encode: %w", err)
	}
	return weights.Encode(tensors, meta)
}

func encode(c *Checkpoint, params []*nn.Param) (map[string]weights.Tensor, map[string]string, error) {
	n := 0
	for _, p := range params {
		n += p.Size()
	}
	for _, b := range []struct {
		name string
		v    []float32
	}{{"model", c.Model}, {"ema", c.EMA}, {"adam/m", c.AdamM}, {"adam/v", c.AdamV}} {
		if len(b.v) != n {
			return nil, nil, fmt.Errorf("%s has %d values, the parameters need %d", b.name, len(b.v), n)
		}
	}
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
		return nil, nil, err
	}
	meta["checksum"] = strconv.FormatUint(uint64(checksum(tensors, meta, false)), 10)
	return tensors, meta, nil
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

// ErrWeightsOnly is returned by Load for a weights-only file (an export, or
// weights written by PyTorch): it has no optimiser state to resume.
var ErrWeightsOnly = errors.New("not a ddpm training checkpoint")

// Load reads a full training checkpoint (as written by Save).
func Load(path string) (*Checkpoint, *unet.UNet, error) {
	tensors, meta, err := weights.Load(path)
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoint: %w", err)
	}
	c, m, err := fromTensors(tensors, meta)
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	return c, m, nil
}

// Decode parses a full training checkpoint held in memory (the bytes of a
// file written by Save). It runs every check Load does.
func Decode(data []byte) (*Checkpoint, *unet.UNet, error) {
	tensors, meta, err := weights.Decode(data)
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoint: %w", err)
	}
	c, m, err := fromTensors(tensors, meta)
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoint: %w", err)
	}
	return c, m, nil
}

func fromTensors(tensors map[string]weights.Tensor, meta map[string]string) (*Checkpoint, *unet.UNet, error) {
	if f := meta["format"]; f != Format && f != formatV1 {
		if f == "" {
			return nil, nil, fmt.Errorf("%w (no format in its metadata; a weights-only file can be sampled from but not resumed)", ErrWeightsOnly)
		}
		return nil, nil, fmt.Errorf("not a ddpm training checkpoint (format %q, want %q)", f, Format)
	}
	if err := verify(tensors, meta, true); err != nil {
		return nil, nil, err
	}
	c := &Checkpoint{Train: json.RawMessage(meta["train"])}
	if !json.Valid(c.Train) {
		return nil, nil, fmt.Errorf("training options are not JSON: %w", ErrCorrupt)
	}
	if err := json.Unmarshal([]byte(meta["unet"]), &c.UNet); err != nil {
		return nil, nil, fmt.Errorf("unet config: %v: %w", err, ErrCorrupt)
	}
	c.Diffusion = diffusion.DefaultConfig()
	if err := json.Unmarshal([]byte(meta["diffusion"]), &c.Diffusion); err != nil {
		return nil, nil, fmt.Errorf("diffusion config: %v: %w", err, ErrCorrupt)
	}
	var err error
	if c.Step, err = strconv.Atoi(meta["step"]); err != nil || c.Step < 0 {
		return nil, nil, fmt.Errorf("step %q: %w", meta["step"], ErrCorrupt)
	}
	if c.AdamStep, err = strconv.Atoi(meta["adam_step"]); err != nil || c.AdamStep < 0 {
		return nil, nil, fmt.Errorf("adam_step %q: %w", meta["adam_step"], ErrCorrupt)
	}
	if c.RNG, err = base64.StdEncoding.DecodeString(meta["rng"]); err != nil {
		return nil, nil, fmt.Errorf("rng: %w", ErrCorrupt)
	}
	if err := plausible(c.UNet, c.Diffusion, tensors); err != nil {
		return nil, nil, err
	}
	m, err := unet.New(c.UNet)
	if err != nil {
		return nil, nil, err
	}
	np := m.NumParams()
	if c.Model, err = gather(tensors, "model/", m.Params(), np); err != nil {
		return nil, nil, err
	}
	if c.EMA, err = gather(tensors, "ema/", m.Params(), np); err != nil {
		return nil, nil, err
	}
	for _, k := range []struct {
		name string
		dst  *[]float32
	}{{"adam/m", &c.AdamM}, {"adam/v", &c.AdamV}} {
		t, ok := tensors[k.name]
		if !ok || len(t.F32) != np {
			return nil, nil, fmt.Errorf("tensor %s missing or of the wrong size", k.name)
		}
		*k.dst = t.F32
	}
	return c, m, nil
}

// plausible rejects, before unet.New allocates anything, a U-Net config
// that needs more parameters than the file holds values (building it
// could otherwise take any amount of memory, and gather would reject it
// anyway), an image side over MaxRes and a T over MaxT.
func plausible(uc unet.Config, dc diffusion.Config, tensors map[string]weights.Tensor) error {
	if err := uc.Validate(); err != nil {
		return err
	}
	if uc.Res > MaxRes {
		return fmt.Errorf("unet config: %d×%d images, more than the supported %d×%d", uc.Res, uc.Res, MaxRes, MaxRes)
	}
	if dc.T > MaxT {
		return fmt.Errorf("diffusion config: T = %d, more than the supported %d", dc.T, MaxT)
	}
	have := 0.0
	for _, t := range tensors {
		have += float64(len(t.F32))
	}
	if need := minParams(uc); need > have {
		return fmt.Errorf("the U-Net config in the metadata needs at least %.0f parameters, the file holds %.0f values (a file of another architecture?)", need, have)
	}
	return nil
}

// minParams is a lower bound on the U-Net's parameter count, counted in
// float64 so that no config overflows it: conv_in, the timestep MLP's
// second layer, conv_out and each down-path block's second 3×3 conv.
func minParams(uc unet.Config) float64 {
	uc = uc.Normalized()
	ch := float64(uc.Ch)
	n := float64(uc.InCh)*ch*9 + 16*ch*ch + float64(uc.OutCh)*ch*float64(uc.ChMult[0])*9
	for i, m := range uc.ChMult {
		c := ch * float64(m)
		n += float64(uc.Blocks(i)) * c * c * 9
	}
	return n
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
//
// A run directory whose newest checkpoint is unreadable is an error here,
// not a silent fall-back to the previous generation: sampling from an
// older model than the user asked for would mislead. The error names the
// previous file, which can be passed instead.
func LoadModel(path string, raw bool, cfg *unet.Config) (*unet.UNet, diffusion.Config, error) {
	dir := path
	path = Path(path)
	m, dc, err := loadModel(path, raw, cfg)
	if err != nil && path != dir {
		if _, perr := os.Stat(PrevPath(path)); perr == nil {
			err = fmt.Errorf("%w (the previous checkpoint %s may still be good)", err, PrevPath(path))
		}
	}
	return m, dc, err
}

func loadModel(path string, raw bool, cfg *unet.Config) (*unet.UNet, diffusion.Config, error) {
	tensors, meta, err := weights.Load(path)
	if err != nil {
		return nil, diffusion.Config{}, fmt.Errorf("checkpoint: %w", err)
	}
	return modelFrom(tensors, meta, path, raw, cfg)
}

// DecodeModel is LoadModel for the bytes of a checkpoint or weights file
// (a model embedded in the binary); name stands for the path in errors.
func DecodeModel(data []byte, name string, raw bool, cfg *unet.Config) (*unet.UNet, diffusion.Config, error) {
	tensors, meta, err := weights.Decode(data)
	if err != nil {
		return nil, diffusion.Config{}, fmt.Errorf("checkpoint: %s: %w", name, err)
	}
	return modelFrom(tensors, meta, name, raw, cfg)
}

// modelFrom builds the model held by a decoded file; path names it in
// errors.
func modelFrom(tensors map[string]weights.Tensor, meta map[string]string, path string, raw bool, cfg *unet.Config) (*unet.UNet, diffusion.Config, error) {
	dc := diffusion.DefaultConfig()
	isCkpt := meta["format"] == Format || meta["format"] == formatV1
	if err := verify(tensors, meta, isCkpt); err != nil {
		return nil, dc, fmt.Errorf("checkpoint: %s: %w", path, err)
	}
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
	if err := plausible(uc, dc, tensors); err != nil {
		return nil, dc, fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	m, err := unet.New(uc)
	if err != nil {
		return nil, dc, fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	prefix := ""
	if isCkpt {
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

// TrainingData returns the data-set spec recorded in a file's metadata: the
// "data" field of the training options (checkpoints and exported weights
// keep them under "train"), or "" when the file records none.
func TrainingData(meta map[string]string) (string, error) {
	f, err := TrainingDataFit(meta)
	return f.Data, err
}

// DataFit is what a file records of its training data: the data-set spec
// and how folder images were fitted to the network (train.Options'
// StrictFit, Resize and Channels, for data.Strict).
type DataFit struct {
	Data      string `json:"data"`
	StrictFit bool   `json:"strict_fit"`
	Resize    bool   `json:"resize"`
	Channels  int    `json:"channels"`
}

// TrainingDataFit returns the DataFit of a file's training options, zero
// when the file records none.
func TrainingDataFit(meta map[string]string) (DataFit, error) {
	var f DataFit
	if s := meta["train"]; s != "" {
		if err := json.Unmarshal([]byte(s), &f); err != nil {
			return DataFit{}, fmt.Errorf("training options: %w", err)
		}
	}
	return f, nil
}

// SaveWeights writes the model's weights alone, under PyTorch's names, with
// the configs and a checksum in the metadata: the file to hand to PyTorch
// or to share. half stores them as float16. extra adds metadata entries
// (e.g. "train", the training options, so that commands can still find the
// data set the model was trained on); it may be nil.
func SaveWeights(path string, m *unet.UNet, dc diffusion.Config, half bool, extra map[string]string) error {
	tensors := map[string]weights.Tensor{}
	w := m.Weights()
	off := 0
	for _, p := range m.Params() {
		n := p.Size()
		t := weights.F32Tensor(w[off:off+n], p.Shape...)
		if half {
			// Round here so that the checksum covers the values the
			// file will hold and a reader will decode.
			r := make([]float32, n)
			for i, x := range t.F32 {
				r[i] = weights.HalfToFloat32(weights.Float32ToHalf(x))
			}
			t = weights.Tensor{DType: "F16", Shape: t.Shape, F32: r}
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
	meta := map[string]string{}
	maps.Copy(meta, extra)
	meta["unet"], meta["diffusion"] = string(u), string(d)
	meta["checksum"] = strconv.FormatUint(uint64(checksum(tensors, meta, false)), 10)
	return weights.Save(path, tensors, meta)
}
