package weights

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func sample() map[string]Tensor {
	rng := rand.New(rand.NewPCG(1, 2))
	w := make([]float32, 2*3*3*3)
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	return map[string]Tensor{
		"conv.weight": F32Tensor(w, 2, 3, 3, 3),
		"conv.bias":   F32Tensor([]float32{1.5, -2}, 2),
		"step":        {DType: "I64", Shape: []int{}, I64: []int64{123456789012}},
		"t":           {DType: "I64", Shape: []int{3}, I64: []int64{0, 999, -1}},
		"empty":       F32Tensor([]float32{}, 0, 4),
	}
}

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.safetensors")
	in := sample()
	meta := map[string]string{"config": `{"ch":16}`, "step": "7"}
	if err := Save(path, in, meta); err != nil {
		t.Fatal(err)
	}
	out, gotMeta, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("%d tensors, want %d", len(out), len(in))
	}
	for name, a := range in {
		b, ok := out[name]
		if !ok {
			t.Fatalf("missing %q", name)
		}
		if b.DType != a.DType || !equalInts(a.Shape, b.Shape) || len(a.F32) != len(b.F32) || len(a.I64) != len(b.I64) {
			t.Fatalf("%q: got %v, want %v", name, b, a)
		}
		for i := range a.F32 {
			if a.F32[i] != b.F32[i] {
				t.Fatalf("%q[%d] = %v, want %v", name, i, b.F32[i], a.F32[i])
			}
		}
		for i := range a.I64 {
			if a.I64[i] != b.I64[i] {
				t.Fatalf("%q[%d] = %v, want %v", name, i, b.I64[i], a.I64[i])
			}
		}
	}
	if gotMeta["config"] != meta["config"] || gotMeta["step"] != "7" {
		t.Fatalf("metadata %v", gotMeta)
	}
	// Encode/Decode agree with Save/Load byte for byte.
	b, err := Encode(in, meta)
	if err != nil {
		t.Fatal(err)
	}
	fb, _ := os.ReadFile(path)
	if string(b) != string(fb) {
		t.Fatal("Encode and Save differ")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v", fi.Mode())
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestF16RoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	x := make([]float32, 1000)
	for i := range x {
		x[i] = float32(rng.NormFloat64() * 3)
	}
	x[0], x[1], x[2] = 0, 65504, 1e-6 // zero, max half, a subnormal
	b, err := Encode(map[string]Tensor{"w": {DType: "F16", Shape: []int{10, 100}, F32: x}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts, _, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	y := ts["w"]
	if y.DType != "F16" || len(y.F32) != len(x) {
		t.Fatalf("got %v", y)
	}
	for i := range x {
		// Half has an 11-bit significand: relative error ≤ 2^-11 for normals,
		// absolute ≤ 2^-25 in the subnormal range.
		if d := math.Abs(float64(x[i] - y.F32[i])); d > math.Abs(float64(x[i]))/2048+1.0/(1<<25) {
			t.Fatalf("x[%d] = %v came back %v", i, x[i], y.F32[i])
		}
	}
}

// TestHalfConversion checks every half value survives half→float→half and
// that float→half picks the nearest half (ties to even) for many floats.
func TestHalfConversion(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := HalfToFloat32(uint16(h))
		if f != f {
			if g := Float32ToHalf(f); g&0x7c00 != 0x7c00 || g&0x3ff == 0 {
				t.Fatalf("NaN %#04x -> %#04x", h, g)
			}
			continue
		}
		if g := Float32ToHalf(f); g != uint16(h) {
			t.Fatalf("%#04x -> %v -> %#04x", h, f, g)
		}
	}
	if HalfToFloat32(0x3c00) != 1 || HalfToFloat32(0xc000) != -2 || HalfToFloat32(0x0001) != float32(math.Ldexp(1, -24)) {
		t.Fatal("known half values")
	}
	if Float32ToHalf(1e6) != 0x7c00 || Float32ToHalf(-1e6) != 0xfc00 || Float32ToHalf(1e-9) != 0 {
		t.Fatal("overflow/underflow")
	}
	// 1 + 2^-11 is exactly between 1 and the next half: ties to even (1).
	if Float32ToHalf(1+1.0/2048) != 0x3c00 || Float32ToHalf(1+3.0/2048) != 0x3c02 {
		t.Fatal("ties to even")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 200000 {
		f := math.Float32frombits(rng.Uint32())
		if f != f || math.Abs(float64(f)) > 65504 {
			continue
		}
		h := Float32ToHalf(f)
		d := math.Abs(float64(HalfToFloat32(h)) - float64(f))
		for _, nb := range []uint16{h + 1, h - 1} {
			g := HalfToFloat32(nb)
			if g == g && !math.IsInf(float64(g), 0) && math.Abs(float64(g)-float64(f)) < d {
				t.Fatalf("%v -> %#04x (%v), but %#04x (%v) is nearer", f, h, HalfToFloat32(h), nb, g)
			}
		}
	}
}

// craft builds a safetensors file from a raw header (no validation).
func craft(header map[string]any, body []byte) []byte {
	hj, _ := json.Marshal(header)
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(hj)))
	out = append(out, hj...)
	return append(out, body...)
}

func TestRejectsCorruptFiles(t *testing.T) {
	good, err := Encode(sample(), map[string]string{"a": "b"})
	if err != nil {
		t.Fatal(err)
	}
	hugeHeader := binary.LittleEndian.AppendUint64(nil, 1<<40)
	hugeHeader = append(hugeHeader, good[8:]...)
	justOverCap := binary.LittleEndian.AppendUint64(nil, MaxHeaderSize+1)
	justOverCap = append(justOverCap, make([]byte, MaxHeaderSize+64)...)
	oob := craft(map[string]any{"w": map[string]any{"dtype": "F32", "shape": []int{4}, "data_offsets": []int{0, 16}}}, make([]byte, 8))
	overlap := craft(map[string]any{
		"a": map[string]any{"dtype": "F32", "shape": []int{2}, "data_offsets": []int{0, 8}},
		"b": map[string]any{"dtype": "F32", "shape": []int{2}, "data_offsets": []int{4, 12}},
	}, make([]byte, 12))
	sizeMismatch := craft(map[string]any{"w": map[string]any{"dtype": "F32", "shape": []int{3}, "data_offsets": []int{0, 8}}}, make([]byte, 8))
	overflowShape := craft(map[string]any{"w": map[string]any{"dtype": "F32", "shape": []uint64{1 << 40, 1 << 40}, "data_offsets": []int{0, 8}}}, make([]byte, 8))
	negShape := []byte(`{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`)
	negShape = append(binary.LittleEndian.AppendUint64(nil, uint64(len(negShape))), append(negShape, make([]byte, 8)...)...)
	floatShape := []byte(`{"w":{"dtype":"F32","shape":[1e400],"data_offsets":[0,8]}}`)
	floatShape = append(binary.LittleEndian.AppendUint64(nil, uint64(len(floatShape))), append(floatShape, make([]byte, 8)...)...)
	badJSON := append(binary.LittleEndian.AppendUint64(nil, 5), []byte("{nope")...)
	badDType := craft(map[string]any{"w": map[string]any{"dtype": "Q7", "shape": []int{2}, "data_offsets": []int{0, 8}}}, make([]byte, 8))
	unsupported := craft(map[string]any{"w": map[string]any{"dtype": "U8", "shape": []int{2}, "data_offsets": []int{0, 2}}}, make([]byte, 2))

	cases := map[string][]byte{
		"empty":          nil,
		"short":          good[:5],
		"truncated":      good[:len(good)-3],
		"truncatedHdr":   good[:20],
		"extra":          append(append([]byte{}, good...), 0),
		"hugeHeader":     hugeHeader,
		"headerOverCap":  justOverCap,
		"outOfBounds":    oob,
		"overlap":        overlap,
		"sizeMismatch":   sizeMismatch,
		"overflowShape":  overflowShape,
		"negativeShape":  negShape,
		"nonFiniteShape": floatShape,
		"badJSON":        badJSON,
		"badDType":       badDType,
		"unsupported":    unsupported,
	}
	dir := t.TempDir()
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			if _, _, err := Decode(data); err == nil {
				t.Fatal("Decode accepted a corrupt buffer")
			} else if !strings.HasPrefix(err.Error(), "weights: decode: ") {
				t.Fatalf("error lacks context: %v", err)
			}
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, _, err := Load(p); err == nil {
				t.Fatal("Load accepted a corrupt file")
			} else if !strings.HasPrefix(err.Error(), "weights: read "+p+": ") {
				t.Fatalf("error lacks context: %v", err)
			}
		})
	}
	if _, _, err := Load(filepath.Join(dir, "missing")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

// failAfter fails every write once n bytes have gone through.
type failAfter struct {
	w io.Writer
	n int
}

var errInjected = errors.New("injected write failure")

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		k, _ := f.w.Write(p[:f.n])
		f.n = 0
		return k, errInjected
	}
	f.n -= len(p)
	return f.w.Write(p)
}

func TestSaveAtomicOnWriteFailure(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ckpt.safetensors")
	old := map[string]Tensor{"w": F32Tensor([]float32{1, 2, 3}, 3)}
	if err := Save(path, old, nil); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)

	big := make([]float32, 1<<20) // 4 MiB: fails mid-body, past the buffer
	wrapWriter = func(w io.Writer) io.Writer { return &failAfter{w: w, n: 3 << 20} }
	err := Save(path, map[string]Tensor{"w": F32Tensor(big, len(big))}, nil)
	wrapWriter = nil
	if !errors.Is(err, errInjected) {
		t.Fatalf("Save returned %v, want the injected failure", err)
	}
	if !strings.HasPrefix(err.Error(), "weights: save "+path+": ") {
		t.Fatalf("error lacks context: %v", err)
	}
	after, _ := os.ReadFile(path)
	if string(before) != string(after) {
		t.Fatal("the previous file was modified by a failed save")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("temporary files left behind: %v", ents)
	}
	if ts, _, err := Load(path); err != nil || ts["w"].F32[2] != 3 {
		t.Fatalf("old file unreadable: %v", err)
	}
}

func TestSaveReadOnlyDir(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ckpt.safetensors")
	if err := Save(path, map[string]Tensor{"w": F32Tensor([]float32{1}, 1)}, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o755)
	if f, err := os.CreateTemp(dir, "probe"); err == nil {
		f.Close()
		os.Remove(f.Name())
		t.Skip("running with privileges that ignore directory permissions")
	}
	if err := Save(path, map[string]Tensor{"w": F32Tensor([]float32{2}, 1)}, nil); err == nil {
		t.Fatal("Save into a read-only directory succeeded")
	}
	if ts, _, err := Load(path); err != nil || ts["w"].F32[0] != 1 {
		t.Fatalf("old file damaged: %v", err)
	}
}

func TestSaveRejectsBadTensors(t *testing.T) {
	dir := t.TempDir()
	for name, ts := range map[string]map[string]Tensor{
		"shape":    {"w": F32Tensor([]float32{1, 2}, 3)},
		"negative": {"w": F32Tensor([]float32{}, -1)},
		"dtype":    {"w": {DType: "U8", Shape: []int{1}}},
		"reserved": {"__metadata__": F32Tensor([]float32{1}, 1)},
	} {
		p := filepath.Join(dir, name)
		if err := Save(p, ts, nil); err == nil {
			t.Errorf("%s: Save accepted bad input", name)
		}
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s: file created", name)
		}
	}
}

func TestLoadGolden(t *testing.T) {
	// The PyTorch reference's writer (sorted names, I64 timesteps, metadata).
	p := "../model/unet/testdata/golden_tiny.safetensors"
	if _, err := os.Stat(p); err != nil {
		t.Skip("golden file not present")
	}
	ts, meta, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if meta["config"] != "tiny" || ts["input/t"].DType != "I64" || len(ts["input/t"].I64) != 2 {
		t.Fatalf("unexpected golden content: %v %v", meta, ts["input/t"])
	}
}
