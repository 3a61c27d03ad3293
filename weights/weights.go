// Package weights reads and writes safetensors files, the format the project
// uses for checkpoints, golden test vectors and exported weights (the
// PyTorch reference writes the same format, so tensors move between the two
// by name).
//
// Parsing is built on github.com/nlpodyssey/safetensors, which validates the
// header (JSON, dtypes, contiguous non-overlapping offsets, byte sizes against
// shapes, total length). We add the checks it lacks, because a checkpoint file
// is untrusted input and a bad one must produce an error, never a panic or a
// multi-gigabyte allocation: a much smaller header cap, offsets bounded by the
// data actually present (the library's end-of-buffer check can wrap around in
// uint64), and dimensions that fit in an int.
package weights

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	st "github.com/nlpodyssey/safetensors"
)

// MaxHeaderSize caps the JSON header. A U-Net state dict with optimiser state
// needs a few tens of KiB; the library's own cap is 100 MB, which a corrupt
// length field could make us allocate and parse.
const MaxHeaderSize = 16 << 20

// Tensor is one decoded tensor. Floating-point data (F32, F16, BF16, F64) is
// decoded into F32; integer data (I64, I32) into I64. DType records what the
// file stored, and on Save selects the stored precision: "F32" or "F16" from
// F32, "I64" from I64.
type Tensor struct {
	DType string
	Shape []int
	F32   []float32
	I64   []int64
}

// NumElements is the product of Shape (1 for a scalar).
func (t Tensor) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// F32Tensor wraps float32 data of the given shape for saving as F32.
func F32Tensor(data []float32, shape ...int) Tensor {
	return Tensor{DType: "F32", Shape: shape, F32: data}
}

// Load reads a safetensors file and returns its tensors and its
// __metadata__ strings (nil when absent). The file is read tensor by tensor
// (Open), never whole: what it costs in memory is the decoded tensors.
func Load(path string) (map[string]Tensor, map[string]string, error) {
	f, err := Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	names := f.Names() // report the first bad tensor deterministically
	out := make(map[string]Tensor, len(names))
	for _, name := range names {
		t, err := f.Read(name)
		if err != nil {
			return nil, nil, err
		}
		out[name] = t
	}
	return out, f.Metadata(), nil
}

func checkHeaderLen(n, fileLen uint64) error {
	if n > MaxHeaderSize {
		return fmt.Errorf("header length %d exceeds the %d-byte cap", n, MaxHeaderSize)
	}
	if fileLen < 8 || n > fileLen-8 {
		return fmt.Errorf("header length %d exceeds the %d bytes present (truncated file?)", n, fileLen)
	}
	return nil
}

// Decode parses a whole safetensors file held in memory. The returned tensors
// own their data (they do not alias data).
func Decode(data []byte) (map[string]Tensor, map[string]string, error) {
	ts, meta, err := decode(data)
	if err != nil {
		return nil, nil, fmt.Errorf("weights: decode: %w", err)
	}
	return ts, meta, nil
}

func decode(data []byte) (map[string]Tensor, map[string]string, error) {
	if len(data) < 8 {
		return nil, nil, fmt.Errorf("%d bytes, too short for a safetensors header", len(data))
	}
	if err := checkHeaderLen(binary.LittleEndian.Uint64(data), uint64(len(data))); err != nil {
		return nil, nil, err
	}
	n, md, err := st.ReadMetadata(data)
	if err != nil {
		return nil, nil, err
	}
	body := data[8+n:]
	infos := md.Tensors()
	names := make([]string, 0, len(infos))
	for name := range infos {
		names = append(names, name)
	}
	slices.Sort(names) // report the first bad tensor deterministically
	out := make(map[string]Tensor, len(infos))
	for _, name := range names {
		t, err := decodeTensor(infos[name], body)
		if err != nil {
			return nil, nil, fmt.Errorf("tensor %q: %w", name, err)
		}
		out[name] = t
	}
	return out, md.Metadata(), nil
}

func decodeTensor(info *st.TensorInfo, body []byte) (Tensor, error) {
	s, e := info.DataOffsets[0], info.DataOffsets[1]
	if s > e || e > uint64(len(body)) {
		return Tensor{}, fmt.Errorf("data offsets [%d, %d) outside the %d data bytes", s, e, len(body))
	}
	shape := make([]int, len(info.Shape))
	elems := uint64(1)
	for i, d := range info.Shape {
		if d > math.MaxInt32 {
			return Tensor{}, fmt.Errorf("dimension %d of shape %v is too large", i, info.Shape)
		}
		shape[i] = int(d)
		// No overflow: the library rejected shapes whose running product
		// overflows, and elems·size == e−s ≤ len(body) is checked below.
		elems *= d
	}
	raw := body[s:e]
	size := info.DType.Size()
	if uint64(len(raw)) != elems*size {
		return Tensor{}, fmt.Errorf("%d bytes for shape %v of %s", len(raw), info.Shape, info.DType)
	}
	t := Tensor{DType: info.DType.String(), Shape: shape}
	ne := int(elems)
	switch info.DType {
	case st.F32:
		t.F32 = make([]float32, ne)
		for i := range t.F32 {
			t.F32[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case st.F16:
		t.F32 = make([]float32, ne)
		for i := range t.F32 {
			t.F32[i] = HalfToFloat32(binary.LittleEndian.Uint16(raw[2*i:]))
		}
	case st.BF16:
		t.F32 = make([]float32, ne)
		for i := range t.F32 {
			t.F32[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(raw[2*i:])) << 16)
		}
	case st.F64:
		t.F32 = make([]float32, ne)
		for i := range t.F32 {
			t.F32[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:])))
		}
	case st.I64:
		t.I64 = make([]int64, ne)
		for i := range t.I64 {
			t.I64[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
		}
	case st.I32:
		t.I64 = make([]int64, ne)
		for i := range t.I64 {
			t.I64[i] = int64(int32(binary.LittleEndian.Uint32(raw[4*i:])))
		}
	default:
		return Tensor{}, fmt.Errorf("unsupported dtype %s", info.DType)
	}
	return t, nil
}

// view adapts a Tensor to the library's View interface, converting to the
// stored dtype once.
type view struct {
	dtype st.DType
	shape []uint64
	data  []byte
}

func (v view) DType() st.DType  { return v.dtype }
func (v view) Shape() []uint64  { return v.shape }
func (v view) Data() []byte     { return v.data }
func (v view) DataLen() uint64  { return uint64(len(v.data)) }
func (t Tensor) String() string { return fmt.Sprintf("%s%v", t.DType, t.Shape) }

func toView(name string, t Tensor) (view, error) {
	shape := make([]uint64, len(t.Shape))
	for i, d := range t.Shape {
		if d < 0 {
			return view{}, fmt.Errorf("tensor %q: negative dimension in shape %v", name, t.Shape)
		}
		shape[i] = uint64(d)
	}
	n := t.NumElements()
	var v view
	v.shape = shape
	switch t.DType {
	case "F32", "F16", "":
		if len(t.F32) != n {
			return view{}, fmt.Errorf("tensor %q: shape %v needs %d elements, F32 has %d", name, t.Shape, n, len(t.F32))
		}
		if t.DType == "F16" {
			v.dtype = st.F16
			v.data = make([]byte, 2*n)
			for i, x := range t.F32 {
				binary.LittleEndian.PutUint16(v.data[2*i:], Float32ToHalf(x))
			}
		} else {
			v.dtype = st.F32
			v.data = make([]byte, 4*n)
			for i, x := range t.F32 {
				binary.LittleEndian.PutUint32(v.data[4*i:], math.Float32bits(x))
			}
		}
	case "I64":
		if len(t.I64) != n {
			return view{}, fmt.Errorf("tensor %q: shape %v needs %d elements, I64 has %d", name, t.Shape, n, len(t.I64))
		}
		v.dtype = st.I64
		v.data = make([]byte, 8*n)
		for i, x := range t.I64 {
			binary.LittleEndian.PutUint64(v.data[8*i:], uint64(x))
		}
	default:
		return view{}, fmt.Errorf("tensor %q: cannot save dtype %q (F32, F16 or I64)", name, t.DType)
	}
	return v, nil
}

// Encode serialises tensors and metadata to safetensors bytes. Tensors are
// laid out as the library orders them (by dtype alignment, then name), so the
// output is deterministic.
func Encode(tensors map[string]Tensor, metadata map[string]string) ([]byte, error) {
	views, err := toViews(tensors)
	if err != nil {
		return nil, fmt.Errorf("weights: encode: %w", err)
	}
	b, err := st.Serialize(views, metadata)
	if err != nil {
		return nil, fmt.Errorf("weights: encode: %w", err)
	}
	return b, nil
}

func toViews(tensors map[string]Tensor) (map[string]view, error) {
	views := make(map[string]view, len(tensors))
	names := make([]string, 0, len(tensors))
	for name := range tensors {
		names = append(names, name)
	}
	slices.Sort(names) // report the first bad tensor deterministically
	for _, name := range names {
		if name == "__metadata__" {
			return nil, errors.New(`"__metadata__" is reserved and cannot name a tensor`)
		}
		v, err := toView(name, tensors[name])
		if err != nil {
			return nil, err
		}
		views[name] = v
	}
	return views, nil
}
