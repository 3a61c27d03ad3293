package weights

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func oneTensor(v float32) map[string]Tensor {
	return map[string]Tensor{"w": F32Tensor([]float32{v, v}, 2)}
}

func valueAt(t *testing.T, path string) float32 {
	t.Helper()
	ts, _, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return ts["w"].F32[0]
}

// TestSaveKeep checks the two generations: each save keeps the file it
// replaces as prev, and a failed save changes neither file and leaves no
// temporary file behind.
func TestSaveKeep(t *testing.T) {
	dir := t.TempDir()
	path, prev := filepath.Join(dir, "c.safetensors"), filepath.Join(dir, "c.prev.safetensors")
	for v := float32(1); v <= 3; v++ {
		if err := SaveKeep(path, prev, oneTensor(v), nil); err != nil {
			t.Fatal(err)
		}
		if got := valueAt(t, path); got != v {
			t.Fatalf("newest holds %v, want %v", got, v)
		}
		if v > 1 {
			if got := valueAt(t, prev); got != v-1 {
				t.Fatalf("previous holds %v, want %v", got, v-1)
			}
		} else if _, err := os.Stat(prev); !errors.Is(err, os.ErrNotExist) {
			t.Fatal("a previous generation appeared after the first save")
		}
	}
	if fi, err := os.Stat(prev); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("previous generation: %v %v", fi, err)
	}

	beforeCur, _ := os.ReadFile(path)
	beforePrev, _ := os.ReadFile(prev)
	big := make([]float32, 1<<20)
	wrapWriter = func(w io.Writer) io.Writer { return &failAfter{w: w, n: 3 << 20} }
	err := SaveKeep(path, prev, map[string]Tensor{"w": F32Tensor(big, len(big))}, nil)
	wrapWriter = nil
	if !errors.Is(err, errInjected) {
		t.Fatalf("SaveKeep = %v, want the injected failure", err)
	}
	afterCur, _ := os.ReadFile(path)
	afterPrev, _ := os.ReadFile(prev)
	if !bytes.Equal(beforeCur, afterCur) || !bytes.Equal(beforePrev, afterPrev) {
		t.Fatal("a failed save changed a generation")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Fatalf("directory holds %v after a failed save", ents)
	}
}

// TestSaveKeepAfterKill starts from the state a save killed between its
// two renames leaves behind: prev is a hard link to the newest file, plus
// stale temporary files. The next save must keep that file as prev and
// leave nothing else behind (rename between two links to one file is a
// no-op that once left the new link in place).
func TestSaveKeepAfterKill(t *testing.T) {
	dir := t.TempDir()
	path, prev := filepath.Join(dir, "c.safetensors"), filepath.Join(dir, "c.prev.safetensors")
	if err := SaveKeep(path, prev, oneTensor(1), nil); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(path, prev); err != nil {
		t.Skipf("no hard links here: %v", err)
	}
	os.WriteFile(filepath.Join(dir, ".c.safetensors.tmp-1"), []byte("half"), 0o600)
	if err := RemoveTemps(path); err != nil {
		t.Fatal(err)
	}
	if err := SaveKeep(path, prev, oneTensor(2), nil); err != nil {
		t.Fatal(err)
	}
	if valueAt(t, path) != 2 || valueAt(t, prev) != 1 {
		t.Fatal("wrong generations")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Fatalf("directory holds %v, want the two generations only", ents)
	}
}

// TestSaveKeepDiskFull writes into a file system that is full: the kernel's
// own ENOSPC, not an injected error. It needs a tmpfs, i.e. root; it is
// skipped elsewhere (the injected-writer test covers the logic).
func TestSaveKeepDiskFull(t *testing.T) {
	dir := mountTmpfs(t, "64k")
	path, prev := filepath.Join(dir, "c.safetensors"), filepath.Join(dir, "c.prev.safetensors")
	if err := SaveKeep(path, prev, oneTensor(1), nil); err != nil {
		t.Fatal(err)
	}
	if err := SaveKeep(path, prev, oneTensor(2), nil); err != nil {
		t.Fatal(err)
	}
	big := make([]float32, 1<<16) // 256 KiB: more than the file system holds
	err := SaveKeep(path, prev, map[string]Tensor{"w": F32Tensor(big, len(big))}, nil)
	if err == nil || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("SaveKeep on a full disk = %v", err)
	}
	if valueAt(t, path) != 2 || valueAt(t, prev) != 1 {
		t.Fatal("a failed save on a full disk changed a generation")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Fatalf("directory holds %v after a failed save", ents)
	}
}

func TestRemoveTemps(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.safetensors")
	keepNames := []string{"c.safetensors", ".other.tmp-1", "c.safetensors.tmp-2"}
	for _, n := range append([]string{".c.safetensors.tmp-123", ".c.safetensors.tmp-x"}, keepNames...) {
		os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644)
	}
	if err := RemoveTemps(path); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if len(got) != len(keepNames) {
		t.Fatalf("left %v, want %v", got, keepNames)
	}
}

// FuzzDecode feeds arbitrary bytes to the safetensors reader: it must
// return an error or tensors whose data matches their shapes and fits in
// the input, and never panic or allocate beyond the input's size.
func FuzzDecode(f *testing.F) {
	good, err := Encode(sample(), map[string]string{"a": "b"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add(craft(map[string]any{"w": map[string]any{"dtype": "BF16", "shape": []int{2}, "data_offsets": []int{0, 4}}}, make([]byte, 4)))
	f.Add(craft(map[string]any{"w": map[string]any{"dtype": "F64", "shape": []int{1}, "data_offsets": []int{0, 8}}}, make([]byte, 8)))
	f.Add(craft(map[string]any{"w": map[string]any{"dtype": "I32", "shape": []int{}, "data_offsets": []int{0, 4}}}, make([]byte, 4)))
	f.Add(craft(map[string]any{"a": map[string]any{"dtype": "F16", "shape": []int{2}, "data_offsets": []int{0, 4}},
		"b": map[string]any{"dtype": "F16", "shape": []int{2}, "data_offsets": []int{2, 6}}}, make([]byte, 6)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, _, err := Decode(b)
		if err != nil {
			return
		}
		total := 0
		for name, x := range ts {
			n := x.NumElements()
			if len(x.F32)+len(x.I64) != n || (x.F32 != nil) == (x.I64 != nil) && n > 0 {
				t.Fatalf("%s: shape %v with %d F32 and %d I64 values", name, x.Shape, len(x.F32), len(x.I64))
			}
			total += n
		}
		if total > len(b) {
			t.Fatalf("%d values from %d bytes", total, len(b))
		}
	})
}
