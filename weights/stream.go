package weights

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sync"

	st "github.com/nlpodyssey/safetensors"
)

// Lazy is a tensor whose data is read on demand: its dtype and shape, and
// Read, which decodes its elements into dst (len(dst) must be the element
// count) as Tensor.F32 holds them. Loading a network through Lazy tensors
// decodes every tensor straight into the network's parameters, so that
// neither the file's bytes nor a second float32 copy of the weights are
// ever held.
type Lazy struct {
	DType string
	Shape []int
	// Read decodes a floating-point tensor (F32, F16, BF16, F64) into dst;
	// it refuses an integer one.
	Read func(dst []float32) error
}

// NumElements is the product of Shape (1 for a scalar).
func (t Lazy) NumElements() int { return Tensor{Shape: t.Shape}.NumElements() }

// IsFloat reports whether the tensor is stored as floating point (Read
// decodes it).
func (t Lazy) IsFloat() bool { return IsFloatDType(t.DType) }

// IsFloatDType reports whether a safetensors dtype name is a floating-point
// one, which is decoded into Tensor.F32.
func IsFloatDType(d string) bool {
	switch d {
	case "F32", "F16", "BF16", "F64":
		return true
	}
	return false
}

// File is a safetensors file opened for reading tensor by tensor: Open
// reads and checks its header (everything Load checks, the data's length
// included), and each tensor's bytes are read, in pieces, only when it is
// decoded. Close it when done.
type File struct {
	f        *os.File
	path     string
	body     int64 // file offset of the data
	infos    map[string]*st.TensorInfo
	metadata map[string]string
}

// chunk is how many bytes of a tensor are read at a time.
const chunk = 1 << 20

// chunks holds the buffers tensors are read through, one per reader at a
// time, so that reading a file's tensors one after the other makes no
// garbage.
var chunks = sync.Pool{New: func() any { b := make([]byte, chunk); return &b }}

// Open opens a safetensors file and checks its header against the file.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("weights: read %s: %w", path, err)
	}
	file, err := openFile(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("weights: read %s: %w", path, err)
	}
	file.path = path
	return file, nil
}

func openFile(f *os.File) (*File, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	var lenBuf [8]byte
	if _, err := io.ReadFull(f, lenBuf[:]); err != nil {
		return nil, fmt.Errorf("file too short for a safetensors header: %w", err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if err := checkHeaderLen(n, uint64(fi.Size())); err != nil {
		return nil, err
	}
	head := make([]byte, n)
	if _, err := io.ReadFull(f, head); err != nil {
		return nil, err
	}
	var md st.Metadata
	if err := json.Unmarshal(head, &md); err != nil {
		return nil, fmt.Errorf("invalid header deserialization: %w", err)
	}
	infos := md.Tensors()
	// The library's checks (ReadMetadata), against the file's length: the
	// tensors' data, in offset order, tile the data exactly.
	byOffset := make([]string, 0, len(infos))
	for name := range infos {
		byOffset = append(byOffset, name)
	}
	slices.SortFunc(byOffset, func(a, b string) int {
		x, y := infos[a].DataOffsets, infos[b].DataOffsets
		if x[0] != y[0] {
			return cmpU64(x[0], y[0])
		}
		if x[1] != y[1] {
			return cmpU64(x[1], y[1])
		}
		return 0
	})
	dataLen := uint64(fi.Size()) - 8 - n
	end := uint64(0)
	for _, name := range byOffset {
		info := infos[name]
		s, e := info.DataOffsets[0], info.DataOffsets[1]
		if s != end || e < s {
			return nil, fmt.Errorf("invalid metadata offset for tensor %q", name)
		}
		end = e
		elems := uint64(1)
		for i, d := range info.Shape {
			if d > math.MaxInt32 {
				return nil, fmt.Errorf("tensor %q: dimension %d of shape %v is too large", name, i, info.Shape)
			}
			if d != 0 && elems > math.MaxUint64/d {
				return nil, fmt.Errorf("tensor %q: shape %v overflows", name, info.Shape)
			}
			elems *= d
		}
		size := info.DType.Size()
		if size == 0 || elems > math.MaxUint64/size || elems*size != e-s {
			return nil, fmt.Errorf("tensor %q: %d bytes for shape %v of %s", name, e-s, info.Shape, info.DType)
		}
		switch info.DType {
		case st.F32, st.F16, st.BF16, st.F64, st.I64, st.I32:
		default:
			return nil, fmt.Errorf("tensor %q: unsupported dtype %s", name, info.DType)
		}
	}
	if end != dataLen {
		return nil, fmt.Errorf("the header's tensors hold %d data bytes, the file %d (truncated or padded file?)", end, dataLen)
	}
	return &File{f: f, body: int64(8 + n), infos: infos, metadata: md.Metadata()}, nil
}

func cmpU64(a, b uint64) int {
	if a < b {
		return -1
	}
	return 1
}

// Close closes the file.
func (f *File) Close() error { return f.f.Close() }

// Metadata is the header's __metadata__ strings (nil when absent).
func (f *File) Metadata() map[string]string { return f.metadata }

// Names lists the tensors' names, sorted.
func (f *File) Names() []string {
	names := make([]string, 0, len(f.infos))
	for name := range f.infos {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Lazy returns the file's tensors, read on demand while the file is open.
func (f *File) Lazy() map[string]Lazy {
	out := make(map[string]Lazy, len(f.infos))
	for name, info := range f.infos {
		shape := make([]int, len(info.Shape))
		for i, d := range info.Shape {
			shape[i] = int(d)
		}
		out[name] = Lazy{DType: info.DType.String(), Shape: shape, Read: func(dst []float32) error {
			if err := f.readF32(info, dst); err != nil {
				return fmt.Errorf("weights: read %s: tensor %q: %w", f.path, name, err)
			}
			return nil
		}}
	}
	return out
}

// Read decodes the tensor name.
func (f *File) Read(name string) (Tensor, error) {
	info, ok := f.infos[name]
	if !ok {
		return Tensor{}, fmt.Errorf("weights: read %s: no tensor %q", f.path, name)
	}
	shape := make([]int, len(info.Shape))
	n := 1
	for i, d := range info.Shape {
		shape[i] = int(d)
		n *= int(d)
	}
	t := Tensor{DType: info.DType.String(), Shape: shape}
	var err error
	if IsFloatDType(t.DType) {
		t.F32 = make([]float32, n)
		err = f.readF32(info, t.F32)
	} else {
		t.I64 = make([]int64, n)
		err = f.readI64(info, t.I64)
	}
	if err != nil {
		return Tensor{}, fmt.Errorf("weights: read %s: tensor %q: %w", f.path, name, err)
	}
	return t, nil
}

// pieces reads the tensor's bytes in pieces of whole elements, handing
// each to use with the index of its first element.
func (f *File) pieces(info *st.TensorInfo, use func(b []byte, at int)) error {
	n := int64(info.DataOffsets[1] - info.DataOffsets[0])
	r := io.NewSectionReader(f.f, f.body+int64(info.DataOffsets[0]), n)
	if err := ReadPieces(r, n, int64(info.DType.Size()), use); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("%v (the file changed or was truncated while read?)", err)
	}
	return nil
}

// ReadPieces reads n bytes from r through a pooled buffer, in pieces of
// whole elements of es bytes, handing each to use with the index of its
// first element: a tensor decoded without holding its bytes whole.
func ReadPieces(r io.Reader, n, es int64, use func(b []byte, at int)) error {
	bp := chunks.Get().(*[]byte)
	defer chunks.Put(bp)
	buf := (*bp)[:min(n, chunk/es*es)]
	at := 0
	for n > 0 {
		b := buf[:min(n, int64(len(buf)))]
		if _, err := io.ReadFull(r, b); err != nil {
			return err
		}
		use(b, at)
		at += len(b) / int(es)
		n -= int64(len(b))
	}
	return nil
}

func (f *File) readF32(info *st.TensorInfo, dst []float32) error {
	size := info.DType.Size()
	if n := (info.DataOffsets[1] - info.DataOffsets[0]) / size; uint64(len(dst)) != n {
		return fmt.Errorf("%d elements, the destination holds %d", n, len(dst))
	}
	var dec func(b []byte, d []float32)
	switch info.DType {
	case st.F32:
		dec = func(b []byte, d []float32) {
			for i := range d {
				d[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
			}
		}
	case st.F16:
		dec = func(b []byte, d []float32) {
			for i := range d {
				d[i] = HalfToFloat32(binary.LittleEndian.Uint16(b[2*i:]))
			}
		}
	case st.BF16:
		dec = func(b []byte, d []float32) {
			for i := range d {
				d[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16)
			}
		}
	case st.F64:
		dec = func(b []byte, d []float32) {
			for i := range d {
				d[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:])))
			}
		}
	default:
		return fmt.Errorf("is %s, not floating point", info.DType)
	}
	return f.pieces(info, func(b []byte, at int) { dec(b, dst[at:at+len(b)/int(size)]) })
}

func (f *File) readI64(info *st.TensorInfo, dst []int64) error {
	size := info.DType.Size()
	if n := (info.DataOffsets[1] - info.DataOffsets[0]) / size; uint64(len(dst)) != n {
		return fmt.Errorf("%d elements, the destination holds %d", n, len(dst))
	}
	return f.pieces(info, func(b []byte, at int) {
		d := dst[at : at+len(b)/int(size)]
		for i := range d {
			if info.DType == st.I64 {
				d[i] = int64(binary.LittleEndian.Uint64(b[8*i:]))
			} else {
				d[i] = int64(int32(binary.LittleEndian.Uint32(b[4*i:])))
			}
		}
	})
}
