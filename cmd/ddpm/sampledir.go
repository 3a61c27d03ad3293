package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"image"
	_ "image/png" // a resumed draw's grid reads the images written before
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ddpm-go/ddpm"
	"github.com/ddpm-go/ddpm/imgio"
	"github.com/ddpm-go/ddpm/internal/progress"
)

// A draw into --out-dir is written a batch at a time, with its state in
// drawStateName beside the images until the last batch is written: a draw
// that stopped (Ctrl-C, a killed process, the end of a session) goes on
// with --resume and gives the images one uninterrupted run would have.
const drawStateName = "draw-state.json"

// drawState is an unfinished draw: the flags that decide its images, as
// given, a checksum of the network's weights (a run that trained on, or
// another version's shipped file, would draw other images), how many images
// are written, and the sampling source's state after them (rand.PCG's
// MarshalBinary).
type drawState struct {
	Flags   map[string]string `json:"flags"`
	Weights string            `json:"weights"`
	Done    int               `json:"done"`
	RNG     []byte            `json:"rng"`
}

// weightsSum is the CRC-32 of the network's weights, as a draw's state
// keeps it.
func weightsSum(p *ddpm.Pipeline) string {
	h := crc32.NewIEEE()
	var b [4]byte
	for _, w := range p.Net.Weights() {
		binary.LittleEndian.PutUint32(b[:], math.Float32bits(w))
		h.Write(b[:])
	}
	return fmt.Sprintf("%08x", h.Sum32())
}

// notDrawFlags are the flags of `ddpm sample` that do not change its images.
var notDrawFlags = []string{"resume", "quiet", "out", "cols", "out-dir"}

// drawFlags are the flags given to fs that decide the images.
func drawFlags(fs *flag.FlagSet) map[string]string {
	m := map[string]string{}
	fs.Visit(func(f *flag.Flag) {
		if !slices.Contains(notDrawFlags, f.Name) {
			m[f.Name] = f.Value.String()
		}
	})
	return m
}

// newDrawState is the state of a draw of p about to start with the flags
// given to fs: nothing written, the seed's sampling source.
func newDrawState(fs *flag.FlagSet, p *ddpm.Pipeline, seed uint64) drawState {
	rng, _ := ddpm.SampleSource(seed).MarshalBinary() // PCG's never fails
	return drawState{Flags: drawFlags(fs), Weights: weightsSum(p), RNG: rng}
}

// commandLine spells flags out as arguments, sorted by name.
func commandLine(flags map[string]string) string {
	var args []string
	for name, v := range flags {
		args = append(args, fmt.Sprintf("--%s %s", name, v))
	}
	slices.Sort(args)
	return strings.Join(args, " ")
}

// readDrawState reads the unfinished draw in dir; found is false when dir
// holds none.
func readDrawState(dir string) (st drawState, found bool, err error) {
	path := filepath.Join(dir, drawStateName)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return drawState{}, false, nil
	}
	if err != nil {
		return drawState{}, false, fmt.Errorf("--out-dir %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil || st.Flags == nil || st.Done < 0 || len(st.RNG) == 0 {
		return drawState{}, false, fmt.Errorf("--out-dir %s: not the state of a draw (delete it to start the draw over)", path)
	}
	return st, true, nil
}

// write replaces the state file in dir through a temporary file, so a
// process killed while writing leaves the previous state.
func (st drawState) write(dir string) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, drawStateName)
	if err := os.WriteFile(path+".tmp", append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("save the draw's state: %w", err)
	}
	return os.Rename(path+".tmp", path)
}

// resumeFlags gives the flags of fs the values of the draw being resumed:
// those not given take the draw's, those given must match it.
func resumeFlags(fs *flag.FlagSet, st drawState, dir string) error {
	for name, v := range drawFlags(fs) {
		switch was, ok := st.Flags[name]; {
		case !ok:
			return usageErr("--%s %s was not given to the draw in %s (%s): --resume takes the draw's own flags", name, v, dir, commandLine(st.Flags))
		case was != v:
			return usageErr("--%s %s differs from the draw's --%s %s in %s: --resume takes the draw's own flags", name, v, name, was, dir)
		}
	}
	for name, v := range st.Flags {
		if err := fs.Set(name, v); err != nil {
			return fmt.Errorf("--out-dir %s: the draw's --%s %s: %w", dir, name, v, err)
		}
	}
	return nil
}

// drawToDir samples images st.Done … n−1 into dir a batch per call, saving
// st before the first and after each batch; with keep it returns all n
// images, reading the ones written before from dir. A cancelled ctx stops
// it between network evaluations with ctx.Err(); done counts the images
// written by then.
func drawToDir(ctx context.Context, p *ddpm.Pipeline, n, batch int, o ddpm.SampleOptions, dir string, st drawState, keep bool, bar *progress.Bar) (imgs []image.Image, done int, err error) {
	o.Source = ddpm.SampleSource(0)
	if err := o.Source.UnmarshalBinary(st.RNG); err != nil || st.Done > n {
		return nil, 0, fmt.Errorf("--out-dir %s: not the state of a draw of %d images (delete it to start the draw over)", filepath.Join(dir, drawStateName), n)
	}
	if sum := weightsSum(p); sum != st.Weights {
		return nil, 0, fmt.Errorf("--out-dir %s: the draw's network had other weights (CRC-32 %s, now %s): it cannot go on with this model; delete %s to start over", dir, st.Weights, sum, drawStateName)
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, 0, fmt.Errorf("--out-dir %w", err)
	}
	if err := st.write(dir); err != nil {
		return nil, 0, err
	}
	if keep {
		for i := range st.Done {
			img, err := readImage(filepath.Join(dir, imgio.EachName("sample-", i, n)))
			if err != nil {
				return nil, st.Done, err
			}
			imgs = append(imgs, img)
		}
	}
	evals := 0
	if st.Done > 0 {
		evals = p.Evaluations(st.Done, o) // whole batches: Done is a multiple of batch
	}
	bar.Begin(evals)
	for st.Done < n {
		size := min(batch, n-st.Done)
		o.Progress = func(done, _ int) { bar.Set(evals + done) }
		x, err := p.SampleTensor(ctx, size, o)
		if err != nil {
			return nil, st.Done, err
		}
		if err := imgio.SaveRange(dir, "sample-", st.Done, n, x.Data, x.N, x.C, x.H, x.W); err != nil {
			return nil, st.Done, err
		}
		if st.RNG, err = o.Source.MarshalBinary(); err != nil {
			return nil, st.Done, err
		}
		st.Done += size
		evals += p.Evaluations(size, o)
		if err := st.write(dir); err != nil {
			return nil, st.Done, err
		}
		if keep {
			imgs = append(imgs, x.Images()...)
		}
	}
	return imgs, st.Done, os.Remove(filepath.Join(dir, drawStateName))
}

// readImage decodes a PNG written by an earlier part of a draw.
func readImage(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--out-dir: the draw's earlier image: %w", err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("--out-dir: the draw's earlier image %s: %w", path, err)
	}
	return img, nil
}
