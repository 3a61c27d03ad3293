package torchbin

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// decodeErr decodes data and returns the error, failing the test when there
// is none or when it is not one line.
func decodeErr(t *testing.T, what string, data []byte) string {
	t.Helper()
	_, err := DecodeBytes(data)
	if err == nil {
		t.Errorf("%s: decoded without error", what)
		return ""
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("%s: error on several lines: %q", what, err)
	}
	return err.Error()
}

func wantErr(t *testing.T, what string, data []byte, want string) {
	t.Helper()
	if msg := decodeErr(t, what, data); msg != "" && !strings.Contains(msg, want) {
		t.Errorf("%s: %q, want it to contain %q", what, msg, want)
	}
}

// inZip puts a hand-written pickle where torch's data.pkl goes.
func inZip(t *testing.T, pkl []byte) []byte {
	return torchZip(t, pkl, map[string][]byte{"0": f32Bytes(1, 2)})
}

// TestRefusesCode: a pickle that names anything but what a state dict
// needs is refused, whichever opcode names it, before anything is built.
func TestRefusesCode(t *testing.T) {
	const code = ": refused (a state dict needs only tensors)"
	osSystem := newPickle().global("os", "system").str("touch /tmp/pwned").op(0x85).reduce().stop()
	wantErr(t, "os.system in data.pkl", inZip(t, osSystem), "torchbin: zip format: archive/data.pkl: pickle asks for os.system"+code)
	legacy := legacyFile(osSystem, nil, nil, nil)
	wantErr(t, "os.system in a legacy file", legacy, "pickle asks for os.system"+code)

	cases := []struct {
		name string
		pkl  []byte
		want string
	}{
		{"builtins.eval by STACK_GLOBAL",
			newPickle().stackGlobal("builtins", "eval").shortStr("1+1").op(0x85).reduce().stop(),
			"pickle asks for builtins.eval" + code},
		{"INST subprocess.Popen",
			newPickle().mark().str("ls").op('i').op([]byte("subprocess\nPopen\n")...).stop(),
			"pickle asks for subprocess.Popen" + code},
		// gopickle resolves these three itself, without FindClass; the scan
		// refuses the last two (the first is allowed).
		{"__builtin__.object", newPickle().global("__builtin__", "object").stop(), "pickle asks for __builtin__.object" + code},
		{"copy_reg._reconstructor", newPickle().global("copy_reg", "_reconstructor").stop(), "pickle asks for copy_reg._reconstructor" + code},
		{"__builtin__.object by STACK_GLOBAL", newPickle().stackGlobal("__builtin__", "object").stop(), "pickle asks for __builtin__.object" + code},
		// Names STACK_GLOBAL takes from computed stack items are not
		// guessed at.
		{"STACK_GLOBAL over computed names",
			newPickle().shortStr("os").shortStr("system").op('2').op(0x93).stop(),
			"pickle asks for a global whose name it computes while loading (STACK_GLOBAL): refused"},
		{"extension registry", newPickle().op(0x82, 1).stop(), "copyreg extension registry: refused"},
		{"a whole model", newPickle().global("__main__", "Net").stop(), "pickle asks for __main__.Net: refused (a whole model was saved, not its state_dict())"},
		{"torch.nn module", newPickle().global("torch.nn.modules.conv", "Conv2d").stop(), "refused (a whole model was saved"},
		{"unsupported storage", newPickle().global("torch", "BoolStorage").stop(), "pickle asks for torch.BoolStorage: refused (tensor storages of float32"},
		{"untyped storage", newPickle().global("torch.storage", "UntypedStorage").stop(), "pickle asks for torch.storage.UntypedStorage" + code},
		{"storage from bytes", newPickle().global("torch.storage", "_load_from_bytes").stop(), "pickle asks for torch.storage._load_from_bytes" + code},
		{"odd name", newPickle().global("os", "sys\x00tem").stop(), `pickle asks for "os.sys\x00tem": refused`},
	}
	for _, tc := range cases {
		wantErr(t, tc.name, inZip(t, tc.pkl), tc.want)
	}

	// The int8 tensor torch saved itself.
	data, err := os.ReadFile(filepath.Join("testdata", "gopickle", "tensor_int8_proto2.pt"))
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, "torch.CharStorage", data, "pickle asks for torch.CharStorage: refused")
}

// TestBrokenArchives: truncations, missing records, storages that do not
// hold what the pickle says.
func TestBrokenArchives(t *testing.T) {
	good := smallZip(t)
	if _, err := DecodeBytes(good); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{2, 4, 30, 100, len(good) / 2, len(good) - 23, len(good) - 1} {
		wantErr(t, "zip truncated", good[:n], "zip format: archive is truncated or corrupt")
	}
	fixture := filepath.Join("..", "..", "..", "shared", "peers", "diffusers", "tiny-old-bin", "diffusion_pytorch_model.bin")
	if bin, err := os.ReadFile(fixture); err == nil {
		for _, n := range []int{len(bin) / 3, len(bin) - 100} {
			wantErr(t, "fixture truncated", bin[:n], "zip format: archive is truncated or corrupt")
		}
	}

	pkl := stateDict([]st{{name: "w", class: "FloatStorage", key: "0", numel: 6, shape: []int{2, 3}, stride: contig(2, 3)}}, false, false)
	wantErr(t, "no data.pkl", zipArchive(t, rec{"archive/data/0", f32Bytes(1, 2, 3, 4, 5, 6)}, rec{"archive/version", []byte("3\n")}),
		"zip format: archive without a <name>/data.pkl record: not a PyTorch checkpoint")
	wantErr(t, "an ordinary zip", zipArchive(t, rec{"readme.txt", []byte("hi")}), "without a <name>/data.pkl record")
	wantErr(t, "two data.pkl", zipArchive(t, rec{"a/data.pkl", pkl}, rec{"b/data.pkl", pkl}), "archive with 2 data.pkl records")
	wantErr(t, "TorchScript", zipArchive(t, rec{"m/data.pkl", pkl}, rec{"m/constants.pkl", pkl}), "TorchScript archive")
	wantErr(t, "missing storage", torchZip(t, pkl, nil), `storage "0": the archive has no record archive/data/0 (truncated or incomplete checkpoint)`)
	wantErr(t, "short storage record", torchZip(t, pkl, map[string][]byte{"0": f32Bytes(1, 2, 3)}), `storage "0": record archive/data/0 holds 12 bytes, but 6 elements of 4 bytes need 24`)
	wantErr(t, "big-endian", zipArchive(t, rec{"archive/data.pkl", pkl}, rec{"archive/byteorder", []byte("big")}, rec{"archive/data/0", make([]byte, 24)}),
		"storages are big-endian (record archive/byteorder): only little-endian")
	if _, err := DecodeBytes(zipArchive(t, rec{"archive/data.pkl", pkl}, rec{"archive/byteorder", []byte("little")}, rec{"archive/data/0", make([]byte, 24)})); err != nil {
		t.Errorf("byteorder little: %v", err)
	}

	// Views that do not fit their storage: an error, not a panic.
	for _, tc := range []struct {
		name string
		s    st
		want string
	}{
		{"more elements than the storage", st{numel: 4, shape: []int{2, 3}, stride: contig(2, 3)}, `tensor "w": size [2 3] has more elements than its 4-element storage "0"`},
		{"offset past the end", st{numel: 6, offset: 6, shape: []int{1}, stride: []int{1}}, `storage offset 6 is outside its 6-element storage`},
		{"offset + extent past the end", st{numel: 6, offset: 1, shape: []int{2, 3}, stride: contig(2, 3)}, `size [2 3], stride [3 1] at offset 1 reach past the end of its 6-element storage "0" (the storage is too short)`},
		{"stride past the end", st{numel: 6, shape: []int{2, 3}, stride: []int{4, 1}}, "reach past the end"},
		{"huge stride", st{numel: 6, shape: []int{2, 1}, stride: []int{1 << 30, 1}}, "reach past the end"},
		{"expanded view", st{numel: 2, shape: []int{100, 2}, stride: []int{0, 1}}, "more elements than its 2-element storage"},
		{"negative size", st{numel: 6, shape: []int{-2, 3}, stride: contig(2, 3)}, "negative entries"},
		{"negative stride", st{numel: 6, shape: []int{2, 3}, stride: []int{-3, 1}}, "negative entries"},
		{"rank mismatch", st{numel: 6, shape: []int{2, 3}, stride: []int{1}}, "differ in length"},
	} {
		tc.s.name, tc.s.class, tc.s.key = "w", "FloatStorage", "0"
		data := torchZip(t, stateDict([]st{tc.s}, false, false), map[string][]byte{"0": make([]byte, 4*tc.s.numel)})
		wantErr(t, tc.name, data, tc.want)
	}
}

// TestNotCheckpoints: other files get one line saying what they are.
func TestNotCheckpoints(t *testing.T) {
	wantErr(t, "empty", nil, "empty file: not a PyTorch checkpoint")
	wantErr(t, "text", []byte("hello, world\n"), "not a PyTorch checkpoint (neither a zip archive nor a pickle)")
	st := []byte(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`)
	sf := binary.LittleEndian.AppendUint64(nil, uint64(len(st)))
	sf = append(append(sf, st...), 0, 0, 0, 0)
	wantErr(t, "safetensors", sf, "a safetensors file, not a PyTorch pickle: read it with weights.Load")
	plain := newPickle().emptyDict().stop()
	wantErr(t, "a plain pickle", plain, "not a PyTorch checkpoint (a pickle without torch's magic number")
	tar := make([]byte, 1024)
	copy(tar[257:], "ustar")
	wantErr(t, "tar", tar, "a tar archive: torch's oldest checkpoint format")

	// What the top level holds.
	wantErr(t, "a list", inZip(t, newPickle().op(']').stop()), "the file holds a list, not a state dict")
	wantErr(t, "an empty dict", inZip(t, newPickle().emptyDict().stop()), "the top level is an empty dict: no tensors")
	wantErr(t, "a module pid", inZip(t, newPickle().mark().str("module").str("x").str("y").str("z").str("w").tuple().op('Q').stop()),
		"the pickle holds a whole nn.Module")
}

// TestMalformedPickles: opcode streams that would make gopickle panic or
// allocate without bound are errors.
func TestMalformedPickles(t *testing.T) {
	u64 := func(n uint64) []byte { return binary.LittleEndian.AppendUint64(nil, n) }
	cases := []struct {
		name string
		pkl  []byte
		want string
	}{
		{"BINBYTES8 of 2^62 bytes", append(append([]byte{0x80, 4, 0x8e}, u64(1<<62)...), '.'), "pickle truncated"},
		{"BINUNICODE8 of 2^63+1", append(append([]byte{0x80, 4, 0x8d}, u64(1<<63+1)...), '.'), "pickle truncated"},
		{"FRAME of 2^60", append(append([]byte{0x80, 4, 0x95}, u64(1<<60)...), '.'), "pickle truncated"},
		{"BINBYTES of 4 GiB", []byte{0x80, 3, 'B', 0xff, 0xff, 0xff, 0xff, '.'}, "pickle truncated"},
		{"LONG1 of zero bytes", []byte{0x80, 2, 0x8a, 0, '.'}, "LONG1 of zero bytes"},
		{"opcode 0xff", []byte{0x80, 2, 0xff, '.'}, "unknown pickle opcode 0xff"},
		{"no STOP", []byte{0x80, 2, '}'}, "pickle truncated"},
		{"DICT over an odd count", []byte{0x80, 2, '(', 'K', 1, 'd', '.'}, "malformed pickle"},
		{"unhashable OrderedDict key", append(newPickle().global("collections", "OrderedDict").emptyTuple().reduce().op('C', 1, 'x').op('K', 1).setItem().Bytes(), '.'), "malformed pickle"},
		{"empty stack", []byte{0x80, 2, 'R', '.'}, "malformed pickle"},
		{"memo of nothing", []byte{0x80, 2, 'h', 9, '.'}, "not a state dict"},
		{"out-of-band buffer", []byte{0x80, 5, 0x97, '.'}, "out-of-band buffers"},
		{"rebuild with wrong arguments", newPickle().emptyDict().str("w").global("torch._utils", "_rebuild_tensor_v2").mark().int(1).tuple().reduce().setItem().stop(), "_rebuild_tensor_v2 with 1 arguments"},
		{"rebuild on a non-storage", newPickle().emptyDict().str("w").global("torch._utils", "_rebuild_tensor_v2").mark().int(1).int(0).ints(1).ints(1).op(0x89).none().tuple().reduce().setItem().stop(), "the storage is a int, not a tensor storage"},
		{"huge element count", newPickle().mark().str("storage").global("torch", "FloatStorage").str("0").str("cpu").op(0x8a, 8, 0, 0, 0, 0, 0, 0, 0, 0x40).tuple().op('Q').stop(), "element count"},
		{"persistent id of another kind", newPickle().mark().str("tensor").tuple().op('Q').stop(), "persistent id"},
	}
	for _, tc := range cases {
		wantErr(t, tc.name, inZip(t, tc.pkl), tc.want)
	}
	// Too many opcodes (a pickle that would make gopickle build gigabytes).
	many := append([]byte{0x80, 2}, bytes.Repeat([]byte{'('}, maxOps+1)...)
	wantErr(t, "too many opcodes", inZip(t, append(many, '.')), "more than")
}

// TestRandomInputs: random bytes, and random corruptions of valid files, are
// errors or valid decodes, never panics.
func TestRandomInputs(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	seeds := [][]byte{smallZip(t), smallLegacy()}
	for i := range 2000 {
		var data []byte
		if i%4 == 0 {
			data = make([]byte, rng.IntN(600))
			for j := range data {
				data[j] = byte(rng.UintN(256))
			}
			if i%8 == 0 && len(data) > 2 {
				data[0], data[1] = 0x80, 2 // look like a pickle
			}
		} else {
			data = bytes.Clone(seeds[i%2])
			for range 1 + rng.IntN(4) {
				data[rng.IntN(len(data))] = byte(rng.UintN(256))
			}
			if i%3 == 0 {
				data = data[:rng.IntN(len(data))]
			}
		}
		checkDecode(t, data)
	}
}

// checkDecode decodes data; a success must hold consistent tensors.
func checkDecode(t testing.TB, data []byte) {
	ts, err := DecodeBytes(data)
	if err != nil {
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("error on several lines: %q", err)
		}
		return
	}
	for name, w := range ts {
		n := w.NumElements()
		if len(w.F32)+len(w.I64) != n || (w.F32 != nil) == (w.I64 != nil) {
			t.Errorf("%s: %s%v with %d float32 and %d int64 values", name, w.DType, w.Shape, len(w.F32), len(w.I64))
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(smallZip(f))
	f.Add(smallLegacy())
	f.Add(newPickle().global("os", "system").str("id").op(0x85).reduce().stop())
	f.Add([]byte{0x80, 4, 0x95, 1, 0, 0, 0, 0, 0, 0, 0, '.'})
	f.Add([]byte("PK\x03\x04"))
	for _, name := range []string{"tensor_float16_proto5.pt", "tensor_float32_proto2_zip.pt"} {
		if b, err := os.ReadFile(filepath.Join("testdata", "gopickle", name)); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecode(t, data)
	})
}

// TestRecordIntegrity: a storage whose bytes were altered fails archive/zip's
// CRC check; records deflated by a re-zipping tool still read.
func TestRecordIntegrity(t *testing.T) {
	good := smallZip(t)
	i := bytes.Index(good, f32Bytes(1, 2, 3, 4, 5, 6))
	if i < 0 {
		t.Fatal("storage bytes not found in the archive")
	}
	bad := bytes.Clone(good)
	bad[i+5] ^= 0x40
	wantErr(t, "altered storage", bad, `record archive/data/0: zip: checksum error`)

	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	zr, err := zip.NewReader(bytes.NewReader(good), int64(len(good)))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: f.Name, Method: zip.Deflate})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(w, rc); err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	ts, err := DecodeBytes(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	checkF32(t, ts, "w", "F32", []int{2, 3}, 1, 2, 3, 4, 5, 6)
	checkF32(t, ts, "b", "F32", []int{2}, -1, -2)
}
