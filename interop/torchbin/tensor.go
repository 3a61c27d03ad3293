package torchbin

import (
	"encoding/binary"
	"fmt"
	"io"
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

// storage is one torch storage: numel elements of dtype, read from the
// file each time a tensor needs them (never kept: a state dict's tensors
// are decoded one at a time, straight from the file).
type storage struct {
	key   string
	dtype dtype
	numel int
	// open returns a reader of exactly numel·dtype.size() bytes and a
	// finish function that checks the record once read (the zip CRC) and
	// closes it.
	open func() (io.Reader, func() error, error)
}

// pieces reads n bytes of the storage from byte from, in pieces of whole
// elements, handing each to use with the index of its first element
// (counted from from).
func (s *storage) pieces(from, n int64, use func(b []byte, at int)) error {
	if s.open == nil {
		return fmt.Errorf("storage %q has no data in the file", s.key)
	}
	r, finish, err := s.open()
	if err != nil {
		return err
	}
	err = func() error {
		if _, err := io.CopyN(io.Discard, r, from); err != nil {
			return err
		}
		return weights.ReadPieces(r, n, int64(s.dtype.size()), use)
	}()
	ferr := finish()
	if err == nil {
		err = ferr
	}
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		err = fmt.Errorf("storage %q: %v (truncated file?)", s.key, io.ErrUnexpectedEOF)
	case err != nil && err != ferr:
		err = fmt.Errorf("storage %q: %v", s.key, err)
	}
	return err
}

// bytes reads the whole storage.
func (s *storage) bytes() ([]byte, error) {
	es := s.dtype.size()
	raw := make([]byte, s.numel*es)
	err := s.pieces(0, int64(len(raw)), func(b []byte, at int) { copy(raw[at*es:], b) })
	return raw, err
}

// check validates a tensor's view of its storage and returns its element
// count. Any stride is accepted as long as every element it reaches lies
// inside the storage and the tensor has no more elements than the storage
// (an expanded view could otherwise make a huge tensor out of a tiny file).
func (t *tensorRef) check() (int, error) {
	st := t.st
	if len(t.shape) != len(t.stride) {
		return 0, fmt.Errorf("size %v and stride %v differ in length", t.shape, t.stride)
	}
	empty := false
	for i, d := range t.shape {
		if d < 0 || t.stride[i] < 0 {
			return 0, fmt.Errorf("size %v, stride %v: negative entries", t.shape, t.stride)
		}
		empty = empty || d == 0
	}
	if empty {
		return 0, nil
	}
	n := 1
	for _, d := range t.shape {
		if n > st.numel/d {
			return 0, fmt.Errorf("size %v has more elements than its %d-element storage %q", t.shape, st.numel, st.key)
		}
		n *= d
	}
	// The last element reached: offset + Σ (size_i − 1)·stride_i, accumulated
	// against the storage's length so that nothing overflows.
	last := t.offset
	if last >= st.numel {
		return 0, fmt.Errorf("storage offset %d is outside its %d-element storage %q", t.offset, st.numel, st.key)
	}
	for i, d := range t.shape {
		s := t.stride[i]
		if d == 1 || s == 0 {
			continue
		}
		if s > (st.numel-1-last)/(d-1) {
			return 0, fmt.Errorf("size %v, stride %v at offset %d reach past the end of its %d-element storage %q (the storage is too short)", t.shape, t.stride, t.offset, st.numel, st.key)
		}
		last += (d - 1) * s
	}
	return n, nil
}

// isInt reports whether the tensor decodes to int64 (weights.Tensor.I64).
func (t *tensorRef) isInt() bool { return t.st.dtype == i64 || t.st.dtype == i32 }

// materialize copies a tensor's elements out of its storage, in row-major
// order, converting them to what weights.Tensor holds (float32 for floating
// point, int64 for integers).
func materialize(t *tensorRef) (weights.Tensor, error) {
	n, err := t.check()
	if err != nil {
		return weights.Tensor{}, err
	}
	out := weights.Tensor{DType: t.st.dtype.name(), Shape: append([]int{}, t.shape...)}
	if t.isInt() {
		out.I64 = make([]int64, n)
	} else {
		out.F32 = make([]float32, n)
	}
	if err := t.decode(n, out.F32, out.I64); err != nil {
		return weights.Tensor{}, err
	}
	return out, nil
}

// decode reads the tensor's n elements (check's count) into dstF (floating
// point) or dstI (integers), in row-major order. A contiguous tensor is
// decoded from the file piece by piece; a strided one reads its storage
// whole first.
func (t *tensorRef) decode(n int, dstF []float32, dstI []int64) error {
	if n == 0 {
		return nil
	}
	es := t.st.dtype.size()
	if contiguous(t.shape, t.stride) {
		return t.st.pieces(int64(t.offset*es), int64(n*es), func(b []byte, at int) {
			k := len(b) / es
			if dstF != nil {
				convert(t.st.dtype, b, dstF[at:at+k], nil)
			} else {
				convert(t.st.dtype, b, nil, dstI[at:at+k])
			}
		})
	}
	raw, err := t.st.bytes()
	if err != nil {
		return err
	}
	elems := make([]byte, 0, n*es)
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
	convert(t.st.dtype, elems, dstF, dstI)
	return nil
}

// convert decodes the little-endian elements in b into dstF (floating
// point dtypes) or dstI (integer ones), which hold len(b)/size elements.
func convert(d dtype, b []byte, dstF []float32, dstI []int64) {
	switch d {
	case f32:
		for i := range dstF {
			dstF[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	case f16:
		for i := range dstF {
			dstF[i] = weights.HalfToFloat32(binary.LittleEndian.Uint16(b[2*i:]))
		}
	case bf16:
		for i := range dstF {
			dstF[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16)
		}
	case f64:
		for i := range dstF {
			dstF[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:])))
		}
	case i64:
		for i := range dstI {
			dstI[i] = int64(binary.LittleEndian.Uint64(b[8*i:]))
		}
	case i32:
		for i := range dstI {
			dstI[i] = int64(int32(binary.LittleEndian.Uint32(b[4*i:])))
		}
	}
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
