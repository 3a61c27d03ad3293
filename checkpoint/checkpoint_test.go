package checkpoint

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/model/unet"
	"github.com/ddpm-go/ddpm/weights"
)

// small is a U-Net of a few thousand parameters, so that tests can afford
// to damage every byte of its checkpoint.
var small = unet.Config{InCh: 1, Res: 8, Ch: 4, ChMult: []int{1, 2}, NumResBlocks: 1, Groups: 2}

func testCheckpoint(t testing.TB, step int) (*Checkpoint, *unet.UNet) {
	t.Helper()
	m, err := unet.New(small)
	if err != nil {
		t.Fatal(err)
	}
	m.Init(rand.New(rand.NewPCG(1, uint64(step))))
	n := m.NumParams()
	rng := rand.New(rand.NewPCG(2, uint64(step)))
	buf := func() []float32 {
		b := make([]float32, n)
		for i := range b {
			b[i] = float32(rng.NormFloat64())
		}
		return b
	}
	return &Checkpoint{
		UNet: m.Config(), Diffusion: diffusion.DefaultConfig(), Train: json.RawMessage(`{"lr":0.0002,"batch":4}`),
		Step: step, AdamStep: step, RNG: []byte("pcg:0123456789abcdef"),
		Model: m.Weights(), EMA: buf(), AdamM: buf(), AdamV: buf(),
	}, m
}

func encodeTest(t testing.TB, step int) []byte {
	t.Helper()
	c, m := testCheckpoint(t, step)
	b, err := Encode(c, m.Params())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSaveLoadGenerations(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	var saved []*Checkpoint
	for step := 1; step <= 3; step++ {
		c, m := testCheckpoint(t, step)
		if err := Save(path, c, m.Params()); err != nil {
			t.Fatal(err)
		}
		saved = append(saved, c)
	}
	if PrevPath(path) != filepath.Join(dir, PrevFileName) {
		t.Fatalf("PrevPath(%s) = %s", path, PrevPath(path))
	}
	for p, want := range map[string]*Checkpoint{path: saved[2], PrevPath(path): saved[1]} {
		c, m, err := Load(p)
		if err != nil {
			t.Fatal(err)
		}
		if c.Step != want.Step || c.AdamStep != want.AdamStep || string(c.RNG) != string(want.RNG) ||
			string(c.Train) != string(want.Train) || m.NumParams() != len(want.Model) {
			t.Fatalf("%s: got step %d, want %d", p, c.Step, want.Step)
		}
		for name, pair := range map[string][2][]float32{"model": {c.Model, want.Model}, "ema": {c.EMA, want.EMA},
			"adam/m": {c.AdamM, want.AdamM}, "adam/v": {c.AdamV, want.AdamV}} {
			for i := range pair[1] {
				if math.Float32bits(pair[0][i]) != math.Float32bits(pair[1][i]) {
					t.Fatalf("%s: %s[%d] = %v, want %v", p, name, i, pair[0][i], pair[1][i])
				}
			}
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Fatalf("run directory holds %v, want the two generations only", ents)
	}
	// Encode gives the bytes Save writes.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, m := testCheckpoint(t, 3)
	if e, err := Encode(c, m.Params()); err != nil || !bytes.Equal(e, b) {
		t.Fatalf("Encode differs from the saved file (%v)", err)
	}
	// LoadModel picks the EMA weights by default, the raw ones on request,
	// from the directory or the file.
	for _, raw := range []bool{false, true} {
		m, _, err := LoadModel(dir, raw, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := saved[2].EMA
		if raw {
			want = saved[2].Model
		}
		if m.Weights()[7] != want[7] {
			t.Fatalf("raw=%v: wrong weights", raw)
		}
	}
}

// TestBitFlipsDetected flips one bit in every byte of the header length
// and of the metadata, and in bytes spread over the tensor descriptions
// and the data, and checks that each damaged copy is rejected: the
// safetensors parser catches damage to the header's structure, the
// checksum everything else (a weight, a digit of a metadata value, a
// tensor name). (Every byte of the data would take minutes: decoding
// parses the whole header each time.)
func TestBitFlipsDetected(t *testing.T) {
	good := encodeTest(t, 5)
	_, meta, err := weights.Decode(good)
	if err != nil {
		t.Fatal(err)
	}
	mj, _ := json.Marshal(meta)
	ms := bytes.Index(good, []byte(`"__metadata__"`))
	if ms < 0 {
		t.Fatal("no metadata in the header")
	}
	var at []int
	for i := range 8 {
		at = append(at, i)
	}
	for i := ms; i < ms+len(mj)+16 && i < len(good); i++ {
		at = append(at, i)
	}
	spread := 600
	if testing.Short() {
		spread = 100
	}
	rng := rand.New(rand.NewPCG(9, 9))
	for range spread {
		at = append(at, 8+rng.IntN(len(good)-8))
	}
	for _, i := range at {
		b := bytes.Clone(good)
		b[i] ^= 1 << (i % 8)
		if _, _, err := Decode(b); err == nil {
			t.Fatalf("flipping bit %d of byte %d (%q) went unnoticed", i%8, i, good[i])
		}
	}
}

func TestTruncationDetected(t *testing.T) {
	good := encodeTest(t, 5)
	for n := 0; n < len(good); n += 1 + n/16 {
		_, _, err := Decode(good[:n])
		if err == nil {
			t.Fatalf("a checkpoint truncated to %d of %d bytes was accepted", n, len(good))
		}
	}
	if _, _, err := Decode(append(bytes.Clone(good), 0)); err == nil {
		t.Fatal("a checkpoint with a trailing byte was accepted")
	}
}

// reencode builds a file from good's tensors with metadata edited by mod
// and a checksum that matches, as a deliberately crafted file would.
func reencode(t testing.TB, good []byte, mod func(meta map[string]string)) []byte {
	t.Helper()
	ts, meta, err := weights.Decode(good)
	if err != nil {
		t.Fatal(err)
	}
	mod(meta)
	meta["checksum"] = strconv.FormatUint(uint64(checksum(ts, meta, meta["format"] == formatV1)), 10)
	b, err := weights.Encode(ts, meta)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBadMetadata feeds well-checksummed files whose metadata is wrong or
// hostile and checks each is refused with a message saying what is wrong,
// without first allocating what the metadata claims.
func TestBadMetadata(t *testing.T) {
	good := encodeTest(t, 5)
	cfgJSON := func(mod func(*unet.Config)) string {
		c := small
		mod(&c)
		b, _ := json.Marshal(c)
		return string(b)
	}
	cases := []struct {
		name string
		mod  func(map[string]string)
		want string
	}{
		{"no format", func(m map[string]string) { delete(m, "format") }, "not a ddpm training checkpoint"},
		{"other format", func(m map[string]string) { m["format"] = "ddpm-checkpoint/9" }, "format"},
		{"unet not JSON", func(m map[string]string) { m["unet"] = "{" }, "unet config"},
		{"diffusion not JSON", func(m map[string]string) { m["diffusion"] = "[]" }, "diffusion config"},
		{"train not JSON", func(m map[string]string) { m["train"] = "lr=1" }, "training options"},
		{"step", func(m map[string]string) { m["step"] = "-3" }, "step"},
		{"adam step", func(m map[string]string) { m["adam_step"] = "x" }, "adam_step"},
		{"rng", func(m map[string]string) { m["rng"] = "!!" }, "rng"},
		{"invalid unet", func(m map[string]string) { m["unet"] = cfgJSON(func(c *unet.Config) { c.Groups = 3 }) }, "groups"},
		{"another architecture", func(m map[string]string) {
			m["unet"] = cfgJSON(func(c *unet.Config) { c.ChMult = []int{1, 1} })
		}, "has shape"},
		{"more channels than the file holds", func(m map[string]string) {
			m["unet"] = cfgJSON(func(c *unet.Config) { c.Ch = 1 << 16; c.Groups = 1 })
		}, "needs at least"},
		{"many blocks", func(m map[string]string) {
			m["unet"] = cfgJSON(func(c *unet.Config) { c.NumResBlocks = 1 << 30 })
		}, "needs at least"},
		{"huge images", func(m map[string]string) { m["unet"] = cfgJSON(func(c *unet.Config) { c.Res = 1 << 20 }) }, "supported"},
		{"huge T", func(m map[string]string) { m["diffusion"] = `{"T":1000000000}` }, "T = 1000000000"},
		{"no checksum", func(m map[string]string) { m["checksum"] = "" }, "checksum"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := reencode(t, good, tc.mod)
			if tc.name == "no checksum" {
				ts, meta, _ := weights.Decode(good)
				delete(meta, "checksum")
				b, _ = weights.Encode(ts, meta)
			}
			_, _, err := Decode(b)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Decode = %v, want an error mentioning %q", err, tc.want)
			}
			p := filepath.Join(t.TempDir(), "c.safetensors")
			os.WriteFile(p, b, 0o644)
			if _, _, err := Load(p); err == nil || !strings.Contains(err.Error(), p) {
				t.Fatalf("Load = %v, want an error naming the file", err)
			}
		})
	}
}

// TestLegacyFormat reads a ddpm-checkpoint/1 file, whose checksum covers
// the tensors only.
func TestLegacyFormat(t *testing.T) {
	good := encodeTest(t, 5)
	b := reencode(t, good, func(m map[string]string) { m["format"] = formatV1 })
	c, _, err := Decode(b)
	if err != nil || c.Step != 5 {
		t.Fatalf("Decode(v1) = %v, %v", c, err)
	}
	ts, meta, _ := weights.Decode(b)
	ts["adam/m"].F32[0]++
	if b, _ = weights.Encode(ts, meta); true {
		if _, _, err := Decode(b); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("damaged v1 checkpoint: %v", err)
		}
	}
}

// TestLoadModelErrors covers the inference path: weights files of another
// architecture, damaged weights files and a damaged run directory.
func TestLoadModelErrors(t *testing.T) {
	dir := t.TempDir()
	m, err := unet.New(small)
	if err != nil {
		t.Fatal(err)
	}
	m.Init(rand.New(rand.NewPCG(3, 4)))
	for _, half := range []bool{false, true} {
		p := filepath.Join(dir, "w"+strconv.FormatBool(half)+".safetensors")
		if err := SaveWeights(p, m, diffusion.DefaultConfig(), half, nil); err != nil {
			t.Fatal(err)
		}
		got, _, err := LoadModel(p, false, nil)
		if err != nil {
			t.Fatalf("half=%v: %v", half, err)
		}
		if w := got.Weights()[10]; half && w != weights.HalfToFloat32(weights.Float32ToHalf(m.Weights()[10])) || !half && w != m.Weights()[10] {
			t.Fatalf("half=%v: weight %v", half, w)
		}
		b, _ := os.ReadFile(p)
		b[len(b)-9] ^= 0x40
		os.WriteFile(p, b, 0o644)
		if _, _, err := LoadModel(p, false, nil); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("half=%v: damaged weights file: %v", half, err)
		}
	}

	// A PyTorch-style file (no config) loaded with the wrong config.
	ts := map[string]weights.Tensor{}
	off := 0
	for _, p := range m.Params() {
		ts[p.Name] = weights.F32Tensor(m.Weights()[off:off+p.Size()], p.Shape...)
		off += p.Size()
	}
	p := filepath.Join(dir, "torch.safetensors")
	if err := weights.Save(p, ts, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadModel(p, false, nil); err == nil || !strings.Contains(err.Error(), "--config") {
		t.Fatalf("file without config: %v", err)
	}
	other := small
	other.Ch = 8
	if _, _, err := LoadModel(p, false, &other); err == nil || !strings.Contains(err.Error(), "shape") {
		t.Fatalf("file of another width: %v", err)
	}
	tiny, _ := unet.ConfigByName("tiny")
	if _, _, err := LoadModel(p, false, &tiny); err == nil || !strings.Contains(err.Error(), "another architecture") {
		t.Fatalf("file of another architecture: %v", err)
	}
	if _, _, err := LoadModel(p, false, &small); err != nil {
		t.Fatalf("right config: %v", err)
	}

	// A run directory whose newest checkpoint is damaged points at the
	// previous one.
	run := t.TempDir()
	for step := 1; step <= 2; step++ {
		c, m := testCheckpoint(t, step)
		if err := Save(filepath.Join(run, FileName), c, m.Params()); err != nil {
			t.Fatal(err)
		}
	}
	os.Truncate(filepath.Join(run, FileName), 100)
	if _, _, err := LoadModel(run, false, nil); err == nil || !strings.Contains(err.Error(), PrevFileName) {
		t.Fatalf("damaged run directory: %v", err)
	}
}
