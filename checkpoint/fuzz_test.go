package checkpoint

import (
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/model/unet"
)

// fuzzConfig is the smallest U-Net that builds, so that each fuzz input
// decodes in microseconds rather than milliseconds.
var fuzzConfig = unet.Config{InCh: 1, Res: 2, Ch: 4, ChMult: []int{1}, NumResBlocks: 1, Groups: 1}

func fuzzCheckpoint(f *testing.F) (*Checkpoint, *unet.UNet) {
	m, err := unet.New(fuzzConfig)
	if err != nil {
		f.Fatal(err)
	}
	m.Init(rand.New(rand.NewPCG(1, 1)))
	n := m.NumParams()
	return &Checkpoint{
		UNet: m.Config(), Diffusion: diffusion.DefaultConfig(), Train: json.RawMessage(`{"lr":0.0002}`),
		Step: 3, AdamStep: 3, RNG: []byte("pcg:0123456789abcdef"),
		Model: m.Weights(), EMA: make([]float32, n), AdamM: make([]float32, n), AdamV: make([]float32, n),
	}, m
}

// FuzzDecode feeds arbitrary bytes to the checkpoint reader: it must
// return an error or a checkpoint whose buffers fit its model, and never
// panic.
//
// The valid seed is some 58 KB, and the fuzzer minimises every new input
// it finds for up to a minute by default, which stalls it; run it with a
// bound on that:
//
//	go test ./checkpoint -run '^$' -fuzz '^FuzzDecode$' -fuzzminimizetime 20x
func FuzzDecode(f *testing.F) {
	c, m := fuzzCheckpoint(f)
	good, err := Encode(c, m.Params())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(good[:100])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, m, err := Decode(b)
		if err != nil {
			if c != nil || m != nil {
				t.Fatal("a result with an error")
			}
			return
		}
		n := m.NumParams()
		if len(c.Model) != n || len(c.EMA) != n || len(c.AdamM) != n || len(c.AdamV) != n {
			t.Fatalf("buffers of %d/%d/%d/%d values for %d parameters", len(c.Model), len(c.EMA), len(c.AdamM), len(c.AdamV), n)
		}
	})
}

// FuzzMetadata fuzzes the metadata of a checkpoint whose checksum is then
// made to match, which random bytes almost never achieve: this reaches the
// config, step and random-state parsers and the plausibility checks that
// must refuse a config before it allocates a network of any size.
func FuzzMetadata(f *testing.F) {
	c, m := fuzzCheckpoint(f)
	tensors, meta0, err := encode(c, m.Params())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(meta0["unet"], meta0["diffusion"], meta0["train"], meta0["step"], meta0["adam_step"], meta0["rng"], Format)
	f.Add(`{"in_ch":1,"res":2,"ch":4,"ch_mult":[1],"num_res_blocks":1000000,"groups":1}`, `{"T":1000000000}`, `{}`, "1", "1", "", formatV1)
	f.Add(`{"in_ch":1,"res":1048576,"ch":4,"ch_mult":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],"num_res_blocks":1,"groups":1}`, `{}`, `[]`, "-1", "x", "!!", "")
	f.Add(`{"in_ch":1,"out_ch":2,"res":2,"ch":4,"ch_mult":[1],"num_res_blocks":1,"groups":1}`, `{"Var":"learned"}`, `{}`, "0", "0", "AA==", Format)
	f.Fuzz(func(t *testing.T, u, d, tr, step, adamStep, rng, format string) {
		meta := map[string]string{"unet": u, "diffusion": d, "train": tr, "step": step, "adam_step": adamStep, "rng": rng, "format": format}
		meta["checksum"] = strconv.FormatUint(uint64(checksum(tensors, meta, format == formatV1)), 10)
		c, m, err := fromTensors(tensors, meta)
		if err != nil {
			return
		}
		if c.Step < 0 || c.AdamStep < 0 || m.NumParams() != len(c.Model) || !json.Valid(c.Train) {
			t.Fatalf("inconsistent checkpoint accepted: step %d, adam %d, %d params, %d weights", c.Step, c.AdamStep, m.NumParams(), len(c.Model))
		}
		if c.Diffusion.T > MaxT || c.UNet.Res > MaxRes {
			t.Fatalf("implausible config accepted: T %d, res %d", c.Diffusion.T, c.UNet.Res)
		}
	})
}
