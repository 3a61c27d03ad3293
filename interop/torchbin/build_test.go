package torchbin

// Writers for test inputs: pickles opcode by opcode, torch.save's zip and
// legacy containers. They write what torch writes (protocol 2, GLOBAL,
// BINPERSID, the storage persistent ids), plus the protocol 4 forms
// (STACK_GLOBAL, MEMOIZE, FRAME) where a test asks for them.

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"maps"
	"math"
	"slices"
	"testing"

	"github.com/ddpm-go/ddpm/weights"
)

type pb struct {
	bytes.Buffer
	memo int // next MEMOIZE index
}

func newPickle() *pb { p := &pb{}; p.Write([]byte{0x80, 2}); return p }

func (p *pb) op(b ...byte) *pb { p.Write(b); return p }

func (p *pb) global(mod, name string) *pb {
	p.WriteString("c" + mod + "\n" + name + "\n")
	return p
}

// stackGlobal is protocol 4's form: the names pushed and memoized, then
// STACK_GLOBAL.
func (p *pb) stackGlobal(mod, name string) *pb {
	p.shortStr(mod).memoize().shortStr(name).memoize()
	return p.op(0x93)
}

func (p *pb) shortStr(s string) *pb {
	p.op(0x8c, byte(len(s)))
	p.WriteString(s)
	return p
}

func (p *pb) memoize() *pb { p.memo++; return p.op(0x94) }

func (p *pb) str(s string) *pb {
	p.op('X')
	binary.Write(p, binary.LittleEndian, uint32(len(s)))
	p.WriteString(s)
	return p
}

func (p *pb) int(n int) *pb {
	p.op('J')
	binary.Write(p, binary.LittleEndian, int32(n))
	return p
}

func (p *pb) mark() *pb       { return p.op('(') }
func (p *pb) tuple() *pb      { return p.op('t') }
func (p *pb) reduce() *pb     { return p.op('R') }
func (p *pb) stop() []byte    { p.op('.'); return p.Bytes() }
func (p *pb) emptyDict() *pb  { return p.op('}') }
func (p *pb) emptyTuple() *pb { return p.op(')') }
func (p *pb) setItems() *pb   { return p.op('u') }
func (p *pb) setItem() *pb    { return p.op('s') }
func (p *pb) build() *pb      { return p.op('b') }
func (p *pb) none() *pb       { return p.op('N') }

func (p *pb) ints(xs ...int) *pb {
	p.mark()
	for _, x := range xs {
		p.int(x)
	}
	return p.tuple()
}

// st describes one tensor of a synthetic state dict.
type st struct {
	name   string
	class  string // e.g. "FloatStorage"
	key    string
	numel  int
	offset int
	shape  []int
	stride []int
}

// contig returns the row-major stride of shape.
func contig(shape ...int) []int {
	s := make([]int, len(shape))
	n := 1
	for i := len(shape) - 1; i >= 0; i-- {
		s[i] = n
		n *= shape[i]
	}
	return s
}

// tensor writes _rebuild_tensor_v2(storage, offset, size, stride, False,
// OrderedDict()) as torch does; legacy adds the sixth persistent-id field.
func (p *pb) tensor(t st, legacy bool) *pb {
	p.global("torch._utils", "_rebuild_tensor_v2").mark()
	p.mark().str("storage").global("torch", t.class).str(t.key).str("cpu").int(t.numel)
	if legacy {
		p.none()
	}
	p.tuple().op('Q')
	p.int(t.offset).ints(t.shape...).ints(t.stride...).op(0x89)
	p.global("collections", "OrderedDict").emptyTuple().reduce()
	return p.tuple().reduce()
}

// stateDict writes {name: tensor, ...} as a plain dict, or as an
// OrderedDict with _metadata when ordered.
func stateDict(ts []st, legacy, ordered bool) []byte {
	p := newPickle()
	if ordered {
		p.global("collections", "OrderedDict").emptyTuple().reduce()
	} else {
		p.emptyDict()
	}
	p.mark()
	for _, t := range ts {
		p.str(t.name).tensor(t, legacy)
	}
	p.setItems()
	if ordered {
		// BUILD {'_metadata': OrderedDict([('', {'version': 1})])}
		p.emptyDict().str("_metadata").global("collections", "OrderedDict").emptyTuple().reduce()
		p.str("").emptyDict().str("version").int(1).setItem().setItem().setItem().build()
	}
	return p.stop()
}

type rec struct {
	name string
	data []byte
}

// zipArchive writes records uncompressed, in order, as torch does.
func zipArchive(t testing.TB, recs ...rec) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, r := range recs {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: r.name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(r.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// torchZip is torch.save's zip layout for a pickle and its storages.
func torchZip(t testing.TB, pkl []byte, storages map[string][]byte) []byte {
	recs := []rec{{"archive/data.pkl", pkl}}
	for _, k := range sortedKeys(storages) {
		recs = append(recs, rec{"archive/data/" + k, storages[k]})
	}
	recs = append(recs, rec{"archive/version", []byte("3\n")})
	return zipArchive(t, recs...)
}

// legacyFile is torch's legacy layout: magic, protocol, sys_info, the
// pickle, the storage keys, then each storage as count + bytes.
func legacyFile(pkl []byte, keys []string, storages map[string][]byte, elemSize map[string]int) []byte {
	var b bytes.Buffer
	// MAGIC_NUMBER = 0x1950a86a20f9469cfc6c as LONG1, little-endian.
	b.Write([]byte{0x80, 2, 0x8a, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, '.'})
	b.Write([]byte{0x80, 2, 'M', 0xe9, 0x03, '.'}) // 1001
	si := newPickle().emptyDict().mark().str("protocol_version").int(1001).str("little_endian").op(0x88)
	si.str("type_sizes").emptyDict().mark().str("short").int(2).str("int").int(4).str("long").int(4).setItems()
	b.Write(si.setItems().stop())
	b.Write(pkl)
	kp := newPickle().op(']').mark()
	for _, k := range keys {
		kp.str(k)
	}
	b.Write(kp.op('e').stop())
	for _, k := range keys {
		binary.Write(&b, binary.LittleEndian, uint64(len(storages[k])/elemSize[k]))
		b.Write(storages[k])
	}
	return b.Bytes()
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

func f32Bytes(xs ...float32) []byte {
	b := make([]byte, 4*len(xs))
	for i, x := range xs {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func f16Bytes(xs ...float32) []byte {
	b := make([]byte, 2*len(xs))
	for i, x := range xs {
		binary.LittleEndian.PutUint16(b[2*i:], weights.Float32ToHalf(x))
	}
	return b
}

func bf16Bytes(xs ...float32) []byte {
	b := make([]byte, 2*len(xs))
	for i, x := range xs {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(math.Float32bits(x)>>16))
	}
	return b
}

func f64Bytes(xs ...float64) []byte {
	b := make([]byte, 8*len(xs))
	for i, x := range xs {
		binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(x))
	}
	return b
}

func i64Bytes(xs ...int64) []byte {
	b := make([]byte, 8*len(xs))
	for i, x := range xs {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(x))
	}
	return b
}

func i32Bytes(xs ...int32) []byte {
	b := make([]byte, 4*len(xs))
	for i, x := range xs {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(x))
	}
	return b
}

// smallZip is a two-tensor zip checkpoint, the fuzz seed and a base that
// hostile tests corrupt.
func smallZip(t testing.TB) []byte {
	ts := []st{
		{name: "w", class: "FloatStorage", key: "0", numel: 6, shape: []int{2, 3}, stride: contig(2, 3)},
		{name: "b", class: "FloatStorage", key: "1", numel: 2, shape: []int{2}, stride: contig(2)},
	}
	return torchZip(t, stateDict(ts, false, true), map[string][]byte{
		"0": f32Bytes(1, 2, 3, 4, 5, 6),
		"1": f32Bytes(-1, -2),
	})
}

// smallLegacy is smallZip's state dict in the legacy format.
func smallLegacy() []byte {
	ts := []st{
		{name: "w", class: "FloatStorage", key: "10", numel: 6, shape: []int{2, 3}, stride: contig(2, 3)},
		{name: "b", class: "HalfStorage", key: "11", numel: 2, shape: []int{2}, stride: contig(2)},
	}
	return legacyFile(stateDict(ts, true, true), []string{"10", "11"},
		map[string][]byte{"10": f32Bytes(1, 2, 3, 4, 5, 6), "11": f16Bytes(-1, -2)},
		map[string]int{"10": 4, "11": 2})
}
