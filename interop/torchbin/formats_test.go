package torchbin

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/weights"
)

func mustRead(t *testing.T, data []byte) *Checkpoint {
	t.Helper()
	c, err := ReadCheckpoint(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func checkF32(t *testing.T, ts map[string]weights.Tensor, name, dtype string, shape []int, want ...float32) {
	t.Helper()
	w, ok := ts[name]
	if !ok {
		t.Errorf("%s: missing", name)
		return
	}
	if w.DType != dtype || !slices.Equal(w.Shape, shape) || !slices.Equal(w.F32, want) || w.I64 != nil {
		t.Errorf("%s: %s%v %v, want %s%v %v", name, w.DType, w.Shape, w.F32, dtype, shape, want)
	}
}

func checkI64(t *testing.T, ts map[string]weights.Tensor, name, dtype string, shape []int, want ...int64) {
	t.Helper()
	w, ok := ts[name]
	if !ok {
		t.Errorf("%s: missing", name)
		return
	}
	if w.DType != dtype || !slices.Equal(w.Shape, shape) || !slices.Equal(w.I64, want) || w.F32 != nil {
		t.Errorf("%s: %s%v %v, want %s%v %v", name, w.DType, w.Shape, w.I64, dtype, shape, want)
	}
}

// TestZipStateDict: every supported dtype, tensors sharing a storage at
// offsets, a transposed (non-contiguous) view, a scalar buffer, an empty
// tensor, an OrderedDict with _metadata, and non-tensor entries.
func TestZipStateDict(t *testing.T) {
	ts := []st{
		{name: "f32", class: "FloatStorage", key: "0", numel: 10, offset: 0, shape: []int{2, 3}, stride: contig(2, 3)},
		{name: "f32.tail", class: "FloatStorage", key: "0", numel: 10, offset: 6, shape: []int{4}, stride: contig(4)},
		{name: "f32.T", class: "FloatStorage", key: "0", numel: 10, offset: 0, shape: []int{3, 2}, stride: []int{1, 3}},
		{name: "f32.col", class: "FloatStorage", key: "0", numel: 10, offset: 1, shape: []int{2, 1}, stride: []int{3, 7}},
		{name: "f16", class: "HalfStorage", key: "1", numel: 3, shape: []int{3}, stride: contig(3)},
		{name: "bf16", class: "BFloat16Storage", key: "2", numel: 2, shape: []int{1, 2}, stride: contig(1, 2)},
		{name: "f64", class: "DoubleStorage", key: "3", numel: 2, shape: []int{2}, stride: contig(2)},
		{name: "steps", class: "LongStorage", key: "4", numel: 1, shape: []int{}, stride: []int{}},
		{name: "i32", class: "IntStorage", key: "5", numel: 3, shape: []int{3}, stride: contig(3)},
		{name: "empty", class: "FloatStorage", key: "6", numel: 0, shape: []int{0, 4}, stride: contig(0, 4)},
	}
	p := newPickle().global("collections", "OrderedDict").emptyTuple().reduce().mark()
	for _, x := range ts {
		p.str(x.name).tensor(x, false)
	}
	p.str("note").str("not a tensor").str("epoch").int(7).str("ema").emptyDict()
	p.setItems()
	p.emptyDict().str("_metadata").global("collections", "OrderedDict").emptyTuple().reduce().setItem().build()
	data := torchZip(t, p.stop(), map[string][]byte{
		"0": f32Bytes(0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
		"1": f16Bytes(0.5, -2, 1024),
		"2": bf16Bytes(1.5, -0.25),
		"3": f64Bytes(0.1, 1e300),
		"4": i64Bytes(1 << 40),
		"5": i32Bytes(-1, 2, -3),
		"6": nil,
	})
	c := mustRead(t, data)
	checkF32(t, c.Tensors, "f32", "F32", []int{2, 3}, 0, 1, 2, 3, 4, 5)
	checkF32(t, c.Tensors, "f32.tail", "F32", []int{4}, 6, 7, 8, 9)
	checkF32(t, c.Tensors, "f32.T", "F32", []int{3, 2}, 0, 3, 1, 4, 2, 5)
	checkF32(t, c.Tensors, "f32.col", "F32", []int{2, 1}, 1, 4)
	checkF32(t, c.Tensors, "f16", "F16", []int{3}, 0.5, -2, 1024)
	checkF32(t, c.Tensors, "bf16", "BF16", []int{1, 2}, 1.5, -0.25)
	huge := 1e300 // beyond float32: becomes +Inf
	checkF32(t, c.Tensors, "f64", "F64", []int{2}, float32(0.1), float32(huge))
	checkI64(t, c.Tensors, "steps", "I64", []int{}, 1<<40)
	checkI64(t, c.Tensors, "i32", "I32", []int{3}, -1, 2, -3)
	checkF32(t, c.Tensors, "empty", "F32", []int{0, 4})
	if len(c.Tensors) != len(ts) {
		t.Errorf("%d tensors, want %d", len(c.Tensors), len(ts))
	}
	if want := []string{"note (str)", "epoch (int)", "ema (dict)"}; !slices.Equal(c.Skipped, want) {
		t.Errorf("skipped %q, want %q", c.Skipped, want)
	}
	if c.Format != "zip" {
		t.Errorf("format %q", c.Format)
	}
}

// TestProtocol4 writes the globals as protocol 4 does (STACK_GLOBAL over
// memoized strings; names that repeat read back from the memo) inside a
// FRAME, so that the scan's tracking of STACK_GLOBAL's names is exercised.
func TestProtocol4(t *testing.T) {
	body := &pb{}
	body.op(0x8c, 0).memoize()    // memo 0: "" (left on the stack; shifts the indices)
	body.op('}').memoize().mark() // memo 1: the state dict
	body.shortStr("w").memoize()  // memo 2
	// memo 3, 4: "torch._utils", "_rebuild_tensor_v2"; memo 5: the global
	body.stackGlobal("torch._utils", "_rebuild_tensor_v2").memoize()
	body.mark().mark().shortStr("storage").memoize() // memo 6
	// memo 7, 8: "torch", "FloatStorage"; memo 9: the global
	body.shortStr("torch").memoize().shortStr("FloatStorage").memoize().op(0x93).memoize()
	body.shortStr("0").memoize().shortStr("cpu").memoize().op('K', 4).tuple().op('Q') // memo 10, 11
	body.op('K', 0).op('K', 4, 0x85).op('K', 1, 0x85).op(0x89)
	body.shortStr("collections").memoize().shortStr("OrderedDict").memoize() // memo 12, 13
	body.op(0x93).memoize().emptyTuple().reduce().tuple().reduce()
	// The second tensor names every global through the memo.
	body.shortStr("b").memoize()
	body.op('h', 5)                                              // _rebuild_tensor_v2
	body.mark().mark().op('h', 6).op('h', 7).op('h', 8).op(0x93) // "storage", torch.FloatStorage
	body.shortStr("1").shortStr("cpu").op('K', 1).tuple().op('Q')
	body.op('K', 0).op('K', 1, 0x85).op('K', 1, 0x85).op(0x89)
	body.op('h', 12).op('h', 13).op(0x93).emptyTuple().reduce().tuple().reduce() // collections.OrderedDict
	body.setItems().op('.')
	p := []byte{0x80, 4, 0x95}
	p = append(p, make([]byte, 8)...)
	binary.LittleEndian.PutUint64(p[3:], uint64(body.Len()))
	p = append(p, body.Bytes()...)
	data := torchZip(t, p, map[string][]byte{"0": f32Bytes(1, 2, 3, 4), "1": f32Bytes(5)})
	c := mustRead(t, data)
	checkF32(t, c.Tensors, "w", "F32", []int{4}, 1, 2, 3, 4)
	checkF32(t, c.Tensors, "b", "F32", []int{1}, 5)
}

// TestParameters: _rebuild_parameter, _rebuild_parameter_with_state and
// _rebuild_from_type_v2 (a tensor with Python state, or a Parameter).
func TestParameters(t *testing.T) {
	s := st{class: "FloatStorage", key: "0", numel: 2, shape: []int{2}, stride: contig(2)}
	p := newPickle().emptyDict().mark()
	p.str("param").global("torch._utils", "_rebuild_parameter").mark().tensor(s, false).op(0x88)
	p.global("collections", "OrderedDict").emptyTuple().reduce().tuple().reduce()
	p.str("param_state").global("torch._utils", "_rebuild_parameter_with_state").mark().tensor(s, false).op(0x89)
	p.global("collections", "OrderedDict").emptyTuple().reduce().emptyDict().tuple().reduce()
	p.str("typed").global("torch._tensor", "_rebuild_from_type_v2").mark()
	p.global("torch._utils", "_rebuild_tensor_v2").global("torch.nn.parameter", "Parameter")
	p.mark().mark().str("storage").global("torch", "FloatStorage").str("0").str("cpu").int(2).tuple().op('Q')
	p.int(0).ints(2).ints(1).op(0x89).global("collections", "OrderedDict").emptyTuple().reduce().tuple()
	p.emptyDict().tuple().reduce()
	p.setItems()
	c := mustRead(t, torchZip(t, p.stop(), map[string][]byte{"0": f32Bytes(3, 4)}))
	for _, name := range []string{"param", "param_state", "typed"} {
		checkF32(t, c.Tensors, name, "F32", []int{2}, 3, 4)
	}
}

// TestWrappers: a state dict under state_dict / model(_state_dict) keys, as
// training loops and Lightning save it, is found; a dict without one is an
// error that lists its keys.
func TestWrappers(t *testing.T) {
	s := st{name: "conv.weight", class: "FloatStorage", key: "0", numel: 1, shape: []int{1}, stride: []int{1}}
	storages := map[string][]byte{"0": f32Bytes(42)}
	for _, tc := range []struct {
		keys []string // wrapper path, outermost first
		want []string // c.Unwrapped
	}{
		{[]string{"state_dict"}, []string{"state_dict"}},
		{[]string{"model"}, []string{"model"}},
		{[]string{"model_state_dict"}, []string{"model_state_dict"}},
		{[]string{"model", "state_dict"}, []string{"model", "state_dict"}},
	} {
		p := newPickle()
		for _, k := range tc.keys {
			// {"epoch": 3, "optimizer": {}, k: ...}
			p.emptyDict().mark().str("epoch").int(3).str("optimizer").emptyDict().str(k)
		}
		p.emptyDict().mark().str(s.name).tensor(s, false).setItems()
		for range tc.keys {
			p.setItems()
		}
		c := mustRead(t, torchZip(t, p.stop(), storages))
		if !slices.Equal(c.Unwrapped, tc.want) || len(c.Tensors) != 1 || c.Tensors["conv.weight"].F32[0] != 42 {
			t.Errorf("%v: unwrapped %v, tensors %v", tc.keys, c.Unwrapped, c.Tensors)
		}
	}

	p := newPickle().emptyDict().mark().str("epoch").int(3).str("ema").emptyDict().mark().str(s.name).tensor(s, false).setItems().setItems()
	_, err := DecodeBytes(torchZip(t, p.stop(), storages))
	if err == nil || !strings.Contains(err.Error(), `no tensors at the top level and no state_dict/model_state_dict/model entry holding a dict (keys: "epoch", "ema")`) {
		t.Errorf("dict without a known wrapper: %v", err)
	}
}

func TestLegacyStateDict(t *testing.T) {
	ts := []st{
		{name: "w", class: "FloatStorage", key: "140", numel: 6, shape: []int{2, 3}, stride: contig(2, 3)},
		{name: "w.T", class: "FloatStorage", key: "140", numel: 6, shape: []int{3, 2}, stride: []int{1, 3}},
		{name: "b", class: "HalfStorage", key: "141", numel: 2, shape: []int{2}, stride: contig(2)},
		{name: "n", class: "LongStorage", key: "142", numel: 1, shape: []int{}, stride: []int{}},
	}
	keys := []string{"140", "141", "142"}
	storages := map[string][]byte{"140": f32Bytes(1, 2, 3, 4, 5, 6), "141": f16Bytes(-1, 0.5), "142": i64Bytes(-9)}
	sizes := map[string]int{"140": 4, "141": 2, "142": 8}
	data := legacyFile(stateDict(ts, true, true), keys, storages, sizes)
	c := mustRead(t, data)
	if c.Format != "legacy" {
		t.Errorf("format %q", c.Format)
	}
	checkF32(t, c.Tensors, "w", "F32", []int{2, 3}, 1, 2, 3, 4, 5, 6)
	checkF32(t, c.Tensors, "w.T", "F32", []int{3, 2}, 1, 4, 2, 5, 3, 6)
	checkF32(t, c.Tensors, "b", "F16", []int{2}, -1, 0.5)
	checkI64(t, c.Tensors, "n", "I64", []int{}, -9)

	// Through a file, as Load reads it.
	path := filepath.Join(t.TempDir(), "model.ckpt")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := Load(path); err != nil || len(got) != 4 {
		t.Errorf("Load: %d tensors, %v", len(got), err)
	}

	// Broken layouts.
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"truncated storage", data[:len(data)-3], `storage "142": 8 bytes at byte`},
		{"truncated pickle", data[:200], "truncated"},
		{"storage missing from the key list", legacyFile(stateDict(ts, true, true), keys[:2], storages, sizes), `storage "142" is used but missing from the storage key list`},
		{"unused storage listed", legacyFile(stateDict(ts[:3], true, true), keys, storages, sizes), `storage "142" is listed but no tensor uses it`},
		{"element count mismatch", legacyFile(stateDict(ts, true, true), keys, map[string][]byte{"140": f32Bytes(1, 2, 3, 4, 5, 6, 7), "141": storages["141"], "142": storages["142"]}, sizes), `storage "140": the file holds 7 elements, the pickle says 6`},
	} {
		if _, err := DecodeBytes(tc.data); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

// TestTorchMadeFiles reads single tensors saved by torch 1.13 itself, in the
// legacy format (protocols 1, 2, 5) and the zip format (gopickle's fixtures,
// see testdata/gopickle/README.md).
func TestTorchMadeFiles(t *testing.T) {
	floats := []float32{1.2, -3.4, 5.6, -7.8}
	for _, tc := range []struct {
		file, dtype string
		format      string
	}{
		{"float32_proto1", "F32", "legacy"},
		{"float32_proto2", "F32", "legacy"},
		{"float16_proto2", "F16", "legacy"},
		{"bfloat16_proto2", "BF16", "legacy"},
		{"float64_proto2", "F64", "legacy"},
		{"int64_proto2", "I64", "legacy"},
		{"int32_proto2", "I32", "legacy"},
		{"float16_proto5", "F16", "legacy"},
		{"float32_proto2_zip", "F32", "zip"},
		{"bfloat16_proto5_zip", "BF16", "zip"},
	} {
		path := filepath.Join("testdata", "gopickle", "tensor_"+tc.file+".pt")
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		obj, format, err := readObject(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Errorf("%s: %v", tc.file, err)
			continue
		}
		ref, ok := obj.(*tensorRef)
		if !ok || format != tc.format {
			t.Errorf("%s: a %s in the %s format", tc.file, kindOf(obj), format)
			continue
		}
		w, err := materialize(ref)
		if err != nil {
			t.Errorf("%s: %v", tc.file, err)
			continue
		}
		ts := map[string]weights.Tensor{tc.file: w}
		switch tc.dtype {
		case "I64", "I32":
			checkI64(t, ts, tc.file, tc.dtype, []int{4}, 1, -2, 3, -4)
		case "F32", "F64":
			checkF32(t, ts, tc.file, tc.dtype, []int{4}, floats...)
		default: // the values as rounded to 16 bits
			want := make([]float32, 4)
			for i, x := range floats {
				if tc.dtype == "F16" {
					want[i] = weights.HalfToFloat32(weights.Float32ToHalf(x))
				} else {
					want[i] = bf16Round(x)
				}
			}
			checkF32(t, ts, tc.file, tc.dtype, []int{4}, want...)
		}
		// A bare tensor is not a state dict.
		if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "holds a single tensor (torch.save(tensor)), not a state dict") {
			t.Errorf("%s: Load: %v", tc.file, err)
		}
	}
}

// bf16Round rounds to bfloat16 as torch does (to nearest, ties to even).
func bf16Round(x float32) float32 {
	b := f32Bytes(x)
	u := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
	u += 0x7fff + (u>>16)&1
	return math.Float32frombits(u &^ 0xffff)
}

func TestOneLineErrors(t *testing.T) {
	// Names from the file are quoted, so an error stays on one line.
	s := st{name: "bad\nname", class: "FloatStorage", key: "k\n", numel: 1, shape: []int{2}, stride: []int{1}}
	_, err := DecodeBytes(torchZip(t, stateDict([]st{s}, false, false), map[string][]byte{"k\n": f32Bytes(1)}))
	if err == nil || strings.Contains(err.Error(), "\n") {
		t.Errorf("error %q: want one line", err)
	}
}
