package torchbin

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/ddpm-go/ddpm/weights"
)

// dtype is a storage's element type.
type dtype int

const (
	f32 dtype = iota
	f16
	bf16
	f64
	i64
	i32
)

// size is the element size in bytes.
func (d dtype) size() int {
	switch d {
	case f16, bf16:
		return 2
	case f32, i32:
		return 4
	}
	return 8
}

// name is the dtype as weights.Tensor.DType records it (safetensors' names).
func (d dtype) name() string {
	return [...]string{"F32", "F16", "BF16", "F64", "I64", "I32"}[d]
}

// storage is one torch storage: numel elements of dtype, read on first use.
type storage struct {
	key   string
	dtype dtype
	numel int
	// read returns exactly numel·dtype.size() bytes.
	read func() ([]byte, error)
	data []byte
	done bool
	err  error
}

func (s *storage) bytes() ([]byte, error) {
	if !s.done {
		s.done = true
		if s.read == nil {
			s.err = fmt.Errorf("storage %q has no data in the file", s.key)
		} else {
			s.data, s.err = s.read()
		}
	}
	return s.data, s.err
}

// materialize copies a tensor's elements out of its storage, in row-major
// order, converting them to what weights.Tensor holds (float32 for floating
// point, int64 for integers). Any stride is accepted as long as every element
// it reaches lies inside the storage and the tensor has no more elements than
// the storage (an expanded view could otherwise make a huge tensor out of a
// tiny file).
func materialize(t *tensorRef) (weights.Tensor, error) {
	st := t.st
	if len(t.shape) != len(t.stride) {
		return weights.Tensor{}, fmt.Errorf("size %v and stride %v differ in length", t.shape, t.stride)
	}
	empty := false
	for i, d := range t.shape {
		if d < 0 || t.stride[i] < 0 {
			return weights.Tensor{}, fmt.Errorf("size %v, stride %v: negative entries", t.shape, t.stride)
		}
		empty = empty || d == 0
	}
	n := 0
	if !empty {
		n = 1
		for _, d := range t.shape {
			if n > st.numel/d {
				return weights.Tensor{}, fmt.Errorf("size %v has more elements than its %d-element storage %q", t.shape, st.numel, st.key)
			}
			n *= d
		}
	}
	shape := append([]int{}, t.shape...)
	out := weights.Tensor{DType: st.dtype.name(), Shape: shape}
	if n == 0 {
		if st.dtype == i64 || st.dtype == i32 {
			out.I64 = []int64{}
		} else {
			out.F32 = []float32{}
		}
		return out, nil
	}
	// The last element reached: offset + Σ (size_i − 1)·stride_i, accumulated
	// against the storage's length so that nothing overflows.
	last := t.offset
	if last >= st.numel {
		return weights.Tensor{}, fmt.Errorf("storage offset %d is outside its %d-element storage %q", t.offset, st.numel, st.key)
	}
	for i, d := range t.shape {
		s := t.stride[i]
		if d == 1 || s == 0 {
			continue
		}
		if s > (st.numel-1-last)/(d-1) {
			return weights.Tensor{}, fmt.Errorf("size %v, stride %v at offset %d reach past the end of its %d-element storage %q (the storage is too short)", t.shape, t.stride, t.offset, st.numel, st.key)
		}
		last += (d - 1) * s
	}
	raw, err := st.bytes()
	if err != nil {
		return weights.Tensor{}, err
	}
	es := st.dtype.size()
	var elems []byte // the tensor's elements, row-major
	if contiguous(t.shape, t.stride) {
		elems = raw[t.offset*es : (t.offset+n)*es]
	} else {
		elems = make([]byte, 0, n*es)
		pos := make([]int, len(t.shape))
		at := t.offset
		for range n {
			elems = append(elems, raw[at*es:(at+1)*es]...)
			for k := len(pos) - 1; k >= 0; k-- {
				pos[k]++
				at += t.stride[k]
				if pos[k] < t.shape[k] {
					break
				}
				at -= pos[k] * t.stride[k]
				pos[k] = 0
			}
		}
	}
	switch st.dtype {
	case f32:
		out.F32 = make([]float32, n)
		for i := range n {
			out.F32[i] = math.Float32frombits(binary.LittleEndian.Uint32(elems[i*es:]))
		}
	case f16:
		out.F32 = make([]float32, n)
		for i := range n {
			out.F32[i] = weights.HalfToFloat32(binary.LittleEndian.Uint16(elems[i*es:]))
		}
	case bf16:
		out.F32 = make([]float32, n)
		for i := range n {
			out.F32[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(elems[i*es:])) << 16)
		}
	case f64:
		out.F32 = make([]float32, n)
		for i := range n {
			out.F32[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(elems[i*es:])))
		}
	case i64:
		out.I64 = make([]int64, n)
		for i := range n {
			out.I64[i] = int64(binary.LittleEndian.Uint64(elems[i*es:]))
		}
	case i32:
		out.I64 = make([]int64, n)
		for i := range n {
			out.I64[i] = int64(int32(binary.LittleEndian.Uint32(elems[i*es:])))
		}
	}
	return out, nil
}

// contiguous reports whether stride is the row-major stride of shape
// (dimensions of size 1 may have any stride, as in torch).
func contiguous(shape, stride []int) bool {
	want := 1
	for i := len(shape) - 1; i >= 0; i-- {
		if shape[i] != 1 && stride[i] != want {
			return false
		}
		want *= shape[i]
	}
	return true
}
