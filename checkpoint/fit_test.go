package checkpoint

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/model/unet"
	"github.com/ddpm-go/ddpm/weights"
)

// testFit is a fit of T steps with distinct, float32-exact values.
func testFit(T int) *diffusion.VarianceFit {
	bins := diffusion.NumFitBins
	f := &diffusion.VarianceFit{XStartMSE: make([][]float64, T), PooledMSE: make([]float64, T),
		DecoderLogScale: make([]float64, bins), PooledDecoderLogScale: -4.75, Images: 7}
	for i := range T {
		f.XStartMSE[i] = make([]float64, bins)
		for k := range bins {
			f.XStartMSE[i][k] = float64(i*bins+k) / 1024
		}
		f.PooledMSE[i] = float64(i) / 512
	}
	for k := range bins {
		f.DecoderLogScale[k] = -5 + float64(k)/8
	}
	return f
}

func TestFitRoundTrip(t *testing.T) {
	f := testFit(20)
	info := FitInfo{ModelDigest: "abc", Data: "mnist", MinBin: 100, Clip: true}
	path := filepath.Join(t.TempDir(), "fit.safetensors")
	if err := SaveFit(path, f, info); err != nil {
		t.Fatal(err)
	}
	g, gi, err := LoadFit(path)
	if err != nil {
		t.Fatal(err)
	}
	if gi != info {
		t.Errorf("info %+v, want %+v", gi, info)
	}
	if g.Images != f.Images || g.PooledDecoderLogScale != f.PooledDecoderLogScale || len(g.XStartMSE) != len(f.XStartMSE) {
		t.Fatalf("got %+v", g)
	}
	for i := range f.XStartMSE {
		for k := range f.XStartMSE[i] {
			if g.XStartMSE[i][k] != f.XStartMSE[i][k] {
				t.Fatalf("XStartMSE[%d][%d] = %g, want %g", i, k, g.XStartMSE[i][k], f.XStartMSE[i][k])
			}
		}
		if g.PooledMSE[i] != f.PooledMSE[i] {
			t.Fatalf("PooledMSE[%d] = %g, want %g", i, g.PooledMSE[i], f.PooledMSE[i])
		}
	}
	for k := range f.DecoderLogScale {
		if g.DecoderLogScale[k] != f.DecoderLogScale[k] {
			t.Fatalf("DecoderLogScale[%d] = %g, want %g", k, g.DecoderLogScale[k], f.DecoderLogScale[k])
		}
	}
	// The bytes EncodeFit returns are the file SaveFit writes.
	b, err := EncodeFit(f, info)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := DecodeFit(b, "embedded"); err != nil {
		t.Error(err)
	}
}

func TestFitBadFiles(t *testing.T) {
	f := testFit(5)
	good, err := EncodeFit(f, FitInfo{ModelDigest: "abc"})
	if err != nil {
		t.Fatal(err)
	}
	// Every flipped byte of the file is caught (the checksum or the parser).
	for i := range good {
		b := append([]byte(nil), good...)
		b[i] ^= 0x10
		if _, _, err := DecodeFit(b, "flipped"); err == nil {
			t.Fatalf("byte %d flipped: accepted", i)
		}
	}
	// A checkpoint, or a file with other bins, is refused with a reason.
	ckpt := encodeTest(t, 1)
	if _, _, err := DecodeFit(ckpt, "ckpt"); err == nil || !strings.Contains(err.Error(), "not a variance fit") {
		t.Errorf("checkpoint: %v", err)
	}
	tensors, meta, err := weights.Decode(good)
	if err != nil {
		t.Fatal(err)
	}
	meta["fit_bins"] = "[0.5]"
	meta["checksum"] = itoa(checksum(tensors, meta, false))
	b, _ := weights.Encode(tensors, meta)
	if _, _, err := DecodeFit(b, "bins"); err == nil || !strings.Contains(err.Error(), "bins") {
		t.Errorf("other bins: %v", err)
	}
	// Incomplete fits are not written.
	if _, err := EncodeFit(&diffusion.VarianceFit{}, FitInfo{}); err == nil {
		t.Error("an empty fit encoded")
	}
}

func TestWeightsDigest(t *testing.T) {
	m, err := unet.New(small)
	if err != nil {
		t.Fatal(err)
	}
	m.Init(rand.New(rand.NewPCG(1, 1)))
	d := WeightsDigest(m)
	if len(d) != 64 || d != WeightsDigest(m) {
		t.Fatalf("digest %q, not 64 hex digits or not stable", d)
	}
	w := m.Weights()
	w[len(w)-1] = math.Nextafter32(w[len(w)-1], 1) // the last bit of the last weight
	if WeightsDigest(m) == d {
		t.Error("a changed weight left the digest unchanged")
	}
}

func itoa(c uint32) string { return strconv.FormatUint(uint64(c), 10) }
