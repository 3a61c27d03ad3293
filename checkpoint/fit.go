package checkpoint

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/model/unet"
	"github.com/ddpm-go/ddpm/weights"
)

// FitFormat names the layout of a variance-fit file in its metadata.
//
// A fit file holds a diffusion.VarianceFit (`--var fitted`), measured once
// and read back instead of re-measured (minutes for the shipped models):
//
//	x_start_mse               [T, bins] F32, VarianceFit.XStartMSE
//	pooled_mse                [T] F32
//	decoder_log_scale         [bins] F32
//	pooled_decoder_log_scale  [1] F32
//	__metadata__              format, model_sha256 (WeightsDigest of the
//	                          network it was measured on), images, fit_bins
//	                          (JSON), data, min_bin, clip, checksum
//
// float32 keeps far more digits than the measurement has (its error is a
// percent or more), and the digest ties the fit to the exact weights: a fit
// is a property of one network, not of a data set.
const FitFormat = "ddpm-variance-fit/1"

// WeightsDigest is the SHA-256 (hex) of a network's weights as
// little-endian float32 in Params order: EMA and raw weights, or a model
// before and after more training, get different digests.
func WeightsDigest(m *unet.UNet) string {
	h := sha256.New()
	var buf [4096]byte
	w := m.Weights()
	for len(w) > 0 {
		n := min(len(w), len(buf)/4)
		for i, v := range w[:n] {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
		}
		h.Write(buf[:4*n])
		w = w[n:]
	}
	return hex.EncodeToString(h.Sum(nil))
}

// FitInfo is what a fit file records about how the fit was made.
type FitInfo struct {
	ModelDigest string // WeightsDigest of the network the fit belongs to
	Data        string // the data-set spec of the images it was measured on
	MinBin      int    // diffusion.NewVarianceFitter's minBin
	Clip        bool   // whether x̂0 was clipped to [−1, 1] (the fit differs)
}

// EncodeFit serialises a fit to the bytes SaveFit writes.
func EncodeFit(f *diffusion.VarianceFit, info FitInfo) ([]byte, error) {
	tensors, meta, err := encodeFit(f, info)
	if err != nil {
		return nil, err
	}
	return weights.Encode(tensors, meta)
}

// SaveFit writes a fit to path atomically (weights.Save).
func SaveFit(path string, f *diffusion.VarianceFit, info FitInfo) error {
	tensors, meta, err := encodeFit(f, info)
	if err != nil {
		return fmt.Errorf("variance fit: save %s: %w", path, err)
	}
	return weights.Save(path, tensors, meta)
}

func encodeFit(f *diffusion.VarianceFit, info FitInfo) (map[string]weights.Tensor, map[string]string, error) {
	T := len(f.XStartMSE)
	if T == 0 || len(f.PooledMSE) != T || len(f.DecoderLogScale) != diffusion.NumFitBins {
		return nil, nil, fmt.Errorf("an incomplete fit (%d steps, %d pooled, %d decoder bins)", T, len(f.PooledMSE), len(f.DecoderLogScale))
	}
	bins := len(f.DecoderLogScale)
	mse := make([]float32, 0, T*bins)
	for i, row := range f.XStartMSE {
		if len(row) != bins {
			return nil, nil, fmt.Errorf("index %d has %d bins, want %d", i, len(row), bins)
		}
		mse = append(mse, f32s(row)...)
	}
	tensors := map[string]weights.Tensor{
		"x_start_mse":              weights.F32Tensor(mse, T, bins),
		"pooled_mse":               weights.F32Tensor(f32s(f.PooledMSE), T),
		"decoder_log_scale":        weights.F32Tensor(f32s(f.DecoderLogScale), bins),
		"pooled_decoder_log_scale": weights.F32Tensor([]float32{float32(f.PooledDecoderLogScale)}, 1),
	}
	edges, err := json.Marshal(diffusion.FitBinEdges())
	if err != nil {
		return nil, nil, err
	}
	meta := map[string]string{
		"format":       FitFormat,
		"model_sha256": info.ModelDigest,
		"data":         info.Data,
		"images":       strconv.Itoa(f.Images),
		"min_bin":      strconv.Itoa(info.MinBin),
		"clip":         strconv.FormatBool(info.Clip),
		"fit_bins":     string(edges),
	}
	meta["checksum"] = strconv.FormatUint(uint64(checksum(tensors, meta, false)), 10)
	return tensors, meta, nil
}

func f32s(x []float64) []float32 {
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = float32(v)
	}
	return y
}

// LoadFit reads a fit file written by SaveFit.
func LoadFit(path string) (*diffusion.VarianceFit, FitInfo, error) {
	tensors, meta, err := weights.Load(path)
	if err != nil {
		return nil, FitInfo{}, fmt.Errorf("variance fit: %w", err)
	}
	return fitFrom(tensors, meta, path)
}

// DecodeFit is LoadFit for the bytes of a fit file (one embedded in the
// binary); name stands for the path in errors.
func DecodeFit(data []byte, name string) (*diffusion.VarianceFit, FitInfo, error) {
	tensors, meta, err := weights.Decode(data)
	if err != nil {
		return nil, FitInfo{}, fmt.Errorf("variance fit: %s: %w", name, err)
	}
	return fitFrom(tensors, meta, name)
}

// fitFrom checks a decoded fit file and rebuilds its VarianceFit: the
// format, the checksum, bins that match this build's diffusion.FitBinEdges,
// and tensors of consistent shapes (the values themselves are checked by
// Diffusion.WithFit against the process they are used with).
func fitFrom(tensors map[string]weights.Tensor, meta map[string]string, name string) (*diffusion.VarianceFit, FitInfo, error) {
	bad := func(format string, a ...any) (*diffusion.VarianceFit, FitInfo, error) {
		return nil, FitInfo{}, fmt.Errorf("variance fit: %s: %s", name, fmt.Sprintf(format, a...))
	}
	if meta["format"] != FitFormat {
		return bad("not a variance fit (format %q, want %q; make one with ddpm fit-variance)", meta["format"], FitFormat)
	}
	if err := verify(tensors, meta, true); err != nil {
		return bad("%v", err)
	}
	var edges []float64
	if err := json.Unmarshal([]byte(meta["fit_bins"]), &edges); err != nil {
		return bad("unreadable bins %q: %v", meta["fit_bins"], err)
	}
	want := diffusion.FitBinEdges()
	if len(edges) != len(want) {
		return bad("fitted in %d bins, this build uses %d", len(edges)+1, len(want)+1)
	}
	for i, e := range edges {
		if float64(float32(e)) != float64(float32(want[i])) {
			return bad("bin edge %d is %g, this build uses %g", i, e, want[i])
		}
	}
	images, err := strconv.Atoi(meta["images"])
	if err != nil || images < 1 {
		return bad("bad image count %q", meta["images"])
	}
	minBin, _ := strconv.Atoi(meta["min_bin"])
	clip, err := strconv.ParseBool(meta["clip"])
	if err != nil {
		return bad("bad clip setting %q", meta["clip"])
	}
	bins := len(edges) + 1
	mse, pooled := tensors["x_start_mse"], tensors["pooled_mse"]
	dec, pdec := tensors["decoder_log_scale"], tensors["pooled_decoder_log_scale"]
	if len(mse.Shape) != 2 || mse.Shape[1] != bins || len(pooled.Shape) != 1 || pooled.Shape[0] != mse.Shape[0] ||
		len(dec.Shape) != 1 || dec.Shape[0] != bins || len(pdec.F32) != 1 {
		return bad("tensors of the wrong shapes (x_start_mse %v, pooled_mse %v, decoder_log_scale %v, pooled_decoder_log_scale %v)",
			mse.Shape, pooled.Shape, dec.Shape, pdec.Shape)
	}
	for _, t := range []weights.Tensor{mse, pooled, dec, pdec} {
		if len(t.F32) != t.NumElements() {
			return bad("a %s tensor where float values belong", t.DType)
		}
	}
	T := mse.Shape[0]
	f := &diffusion.VarianceFit{
		XStartMSE:             make([][]float64, T),
		PooledMSE:             f64s(pooled.F32),
		DecoderLogScale:       f64s(dec.F32),
		PooledDecoderLogScale: float64(pdec.F32[0]),
		Images:                images,
	}
	for i := range f.XStartMSE {
		f.XStartMSE[i] = f64s(mse.F32[i*bins : (i+1)*bins])
	}
	return f, FitInfo{ModelDigest: meta["model_sha256"], Data: meta["data"], MinBin: minBin, Clip: clip}, nil
}

func f64s(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}
