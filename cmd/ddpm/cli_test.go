package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/model/unet"
	"github.com/ddpm-go/ddpm/train"
	"github.com/ddpm-go/ddpm/weights"
)

// The CLI tests run the real binary, built once on first use into a
// directory TestMain removes at the end (a package has one TestMain: add
// to this one), as a user would: exit status, one-line messages and files
// on disk are what they check.

// testDir holds the binary and the data fixtures shared by all tests.
var testDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ddpm-cmd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var build struct {
	once sync.Once
	path string
	err  error
}

// ddpmBin builds the ddpm binary once per test process.
func ddpmBin(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		build.path = filepath.Join(testDir, "ddpm")
		if runtime.GOOS == "windows" {
			build.path += ".exe"
		}
		out, err := exec.Command("go", "build", "-o", build.path, ".").CombinedOutput()
		if err != nil {
			build.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.path
}

// result is how a child process ended.
type result struct {
	code           int // exit status; −1 when killed by a signal
	stdout, stderr string
}

// runBin runs the binary to completion (at most two minutes) with extra
// environment variables env ("K=V").
func runBin(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ddpmBin(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("ddpm %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// mustSucceed fails the test unless r is a clean exit.
func mustSucceed(t *testing.T, r result, what string) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("%s: exit %d\n%s", what, r.code, r.stderr)
	}
}

// checkCleanFailure asserts the error contract: status code, and stderr
// whose last line is "ddpm <cmd>: ..." containing want, with no trace of
// a panic.
func checkCleanFailure(t *testing.T, r result, code int, want string) {
	t.Helper()
	for _, bad := range []string{"goroutine ", "panic", "internal error", ".go:"} {
		if strings.Contains(r.stderr, bad) {
			t.Fatalf("stderr shows %q:\n%s", bad, r.stderr)
		}
	}
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	last := lines[len(lines)-1]
	if r.code != code || !strings.HasPrefix(last, "ddpm") || !strings.Contains(last, want) {
		t.Fatalf("exit %d, last line %q; want exit %d and a line containing %q\nstderr:\n%s", r.code, last, code, want, r.stderr)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ---- data fixtures ----

var fixtures struct {
	folder, fashion, cifar sync.Once
	folderDir, fashionDir  string
	cifarDir               string
}

// folderFixture is a folder of 16×16 RGB PNGs (config tiny's images,
// which train takes as they are), plus a file the loader must skip.
// TestTrainFolder* cover folders that need --resize or --channels.
func folderFixture(t *testing.T) string {
	fixtures.folder.Do(func() {
		dir := filepath.Join(testDir, "folder")
		os.MkdirAll(dir, 0o755)
		rng := rand.New(rand.NewPCG(4, 4))
		for i := range 8 {
			img := image.NewRGBA(image.Rect(0, 0, 16, 16))
			for j := range img.Pix {
				img.Pix[j] = uint8(rng.IntN(256))
			}
			for j := 3; j < len(img.Pix); j += 4 {
				img.Pix[j] = 255
			}
			var b bytes.Buffer
			png.Encode(&b, img)
			os.WriteFile(filepath.Join(dir, fmt.Sprintf("img%02d.png", i)), b.Bytes(), 0o644)
		}
		os.WriteFile(filepath.Join(dir, "README.txt"), []byte("not an image"), 0o644)
		fixtures.folderDir = dir
	})
	return fixtures.folderDir
}

func gzipBytes(b []byte) []byte {
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write(b)
	zw.Close()
	return out.Bytes()
}

// idxFiles returns an IDX3 image file of n random 28×28 images and an IDX1
// label file of labels digits.
func idxFiles(n int, seed uint64) (images, labels []byte) {
	rng := rand.New(rand.NewPCG(seed, 1))
	images = binary.BigEndian.AppendUint32(nil, 0x803)
	for _, d := range []uint32{uint32(n), 28, 28} {
		images = binary.BigEndian.AppendUint32(images, d)
	}
	for range n * 28 * 28 {
		images = append(images, uint8(rng.IntN(256)))
	}
	labels = binary.BigEndian.AppendUint32(nil, 0x801)
	labels = binary.BigEndian.AppendUint32(labels, uint32(n))
	for i := range n {
		labels = append(labels, byte(i%10))
	}
	return images, labels
}

func writeIDXDir(t *testing.T, dir string, images, labels []byte) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "train-images-idx3-ubyte.gz"), gzipBytes(images), 0o644)
	os.WriteFile(filepath.Join(dir, "train-labels-idx1-ubyte.gz"), gzipBytes(labels), 0o644)
}

// fashionFixture is a synthetic Fashion-MNIST directory (the real one is a
// Debian package that need not be installed), used via
// DDPM_FASHION_MNIST_DIR.
func fashionFixture(t *testing.T) string {
	fixtures.fashion.Do(func() {
		fixtures.fashionDir = filepath.Join(testDir, "fashion")
		img, lbl := idxFiles(64, 7)
		writeIDXDir(t, fixtures.fashionDir, img, lbl)
	})
	return fixtures.fashionDir
}

const cifarFileSize = 10000 * (1 + 3*32*32)

// cifarFixture is a CIFAR-10 binary directory of random images: five
// full-size batch files, as the loader insists on.
func cifarFixture(t *testing.T) string {
	fixtures.cifar.Do(func() {
		dir := filepath.Join(testDir, "cifar")
		os.MkdirAll(dir, 0o755)
		buf := make([]byte, cifarFileSize)
		rng := rand.New(rand.NewPCG(5, 5))
		for i := 0; i+8 <= len(buf); i += 8 {
			binary.LittleEndian.PutUint64(buf[i:], rng.Uint64())
		}
		for k := 1; k <= 5; k++ {
			for r := 0; r < 10000; r++ {
				buf[r*(1+3*32*32)] = byte((r + k) % 10)
			}
			os.WriteFile(filepath.Join(dir, fmt.Sprintf("data_batch_%d.bin", k)), buf, 0o644)
		}
		fixtures.cifarDir = dir
	})
	return fixtures.cifarDir
}

// TestExactResumeAllLoaders trains 2N steps in one go and N + N with a
// resume in between, for every data loader with dropout on, and requires
// byte-identical checkpoints: weights, EMA, Adam moments and random state.
// The configs also exercise MNIST's padding (28 → 32) and the folder's
// resizing of mixed-size images to 16×16.
func TestExactResumeAllLoaders(t *testing.T) {
	type loader struct {
		name, data, config string
		env                []string
		flip               bool
	}
	loaders := []loader{
		{"fashion-mnist", "fashion-mnist", "tiny1", []string{"DDPM_FASHION_MNIST_DIR=" + fashionFixture(t)}, false},
		{"folder", "folder:" + folderFixture(t), "tiny", nil, true},
	}
	// The real MNIST (60 000 images) and five full CIFAR-10 batch files
	// take seconds to load in each of the six child processes.
	if !testing.Short() {
		loaders = append(loaders,
			loader{"mnist", "mnist", "tiny1", nil, false},
			loader{"cifar10", "cifar10:" + cifarFixture(t), "tiny32", nil, true})
	}
	const n = 3
	for _, l := range loaders {
		t.Run(l.name, func(t *testing.T) {
			t.Parallel() // the child processes mostly read and decode data
			args := func(out string, steps int) []string {
				a := []string{"train", "--data", l.data, "--config", l.config, "--steps", strconv.Itoa(steps),
					"--batch", "2", "--ckpt-every", "2", "--dropout", "0.1", "--seed", "11", "--lr", "1e-3",
					"--warmup", "2", "--quiet", "--out", out}
				if l.flip {
					a = append(a, "--flip")
				}
				return a
			}
			dir := t.TempDir()
			whole, split := filepath.Join(dir, "whole"), filepath.Join(dir, "split")
			mustSucceed(t, runBin(t, l.env, args(whole, 2*n)...), "2N-step run")
			mustSucceed(t, runBin(t, l.env, args(split, n)...), "N-step run")
			// Repeating the original flags with --resume is allowed.
			mustSucceed(t, runBin(t, l.env, append(args(split, 2*n), "--resume")...), "resume")
			a, b := readFile(t, filepath.Join(whole, checkpoint.FileName)), readFile(t, filepath.Join(split, checkpoint.FileName))
			if !bytes.Equal(a, b) {
				ca, _, _ := checkpoint.Load(filepath.Join(whole, checkpoint.FileName))
				cb, _, _ := checkpoint.Load(filepath.Join(split, checkpoint.FileName))
				t.Fatalf("N+N steps with a resume differ from 2N steps (steps %d vs %d)", ca.Step, cb.Step)
			}
		})
	}
}

// TestNonFiniteCLI drives a run into NaN with an absurd learning rate: the
// run stops naming the step and keeping the last good checkpoint; resumed
// with --skip-nan it skips the bad steps, and gives up once the weights
// are clearly beyond repair; an even larger rate overflows the weights in
// the first update and is reported as such.
func TestNonFiniteCLI(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	args := []string{"train", "--data", "folder:" + folderFixture(t), "--config", "tiny", "--batch", "2",
		"--lr", "1e30", "--warmup", "0", "--ckpt-every", "1", "--quiet", "--out", out}
	r := runBin(t, nil, append(args, "--steps", "5")...)
	checkCleanFailure(t, r, 1, "step 2: loss or gradient is not finite")
	if !strings.Contains(r.stderr, "the last good checkpoint (step 1) is kept") {
		t.Fatalf("the message does not name the kept checkpoint:\n%s", r.stderr)
	}
	if st := newestStep(out); st != 1 {
		t.Fatalf("newest checkpoint is step %d, want 1", st)
	}
	before := readFile(t, filepath.Join(out, checkpoint.FileName))

	r = runBin(t, nil, "train", "--resume", "--skip-nan", "--steps", "40", "--quiet", "--out", out)
	checkCleanFailure(t, r, 1, fmt.Sprintf("%d steps in a row", train.MaxConsecutiveSkips))
	if got := strings.Count(r.stderr, "skipped"); got != train.MaxConsecutiveSkips-1 {
		t.Fatalf("%d skip warnings, want %d:\n%s", got, train.MaxConsecutiveSkips-1, r.stderr)
	}
	if !bytes.Equal(before, readFile(t, filepath.Join(out, checkpoint.FileName))) {
		t.Fatal("the last good checkpoint changed")
	}

	out2 := filepath.Join(t.TempDir(), "run")
	r = runBin(t, nil, "train", "--data", "folder:"+folderFixture(t), "--config", "tiny", "--batch", "2",
		"--lr", "1e39", "--warmup", "0", "--steps", "3", "--skip-nan", "--quiet", "--out", out2)
	checkCleanFailure(t, r, 1, "step 1: the weights became non-finite")
	if _, err := os.Stat(filepath.Join(out2, checkpoint.FileName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a checkpoint was written from diverged weights: %v", err)
	}
}

// newestStep is the step of the run's newest checkpoint, or −1.
func newestStep(dir string) int {
	c, _, err := checkpoint.Load(filepath.Join(dir, checkpoint.FileName))
	if err != nil {
		return -1
	}
	return c.Step
}

// tempFiles lists the temporary files of unfinished writes in dir.
func tempFiles(dir string) []string {
	m, _ := filepath.Glob(filepath.Join(dir, ".checkpoint*.tmp-*"))
	return m
}

// rawSafetensors builds a safetensors file from a raw JSON header.
func rawSafetensors(header string, body []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(b, header...), body...)
}

// mismatchedCheckpoint is a well-formed, checksummed training checkpoint
// whose metadata names the tiny U-Net but whose tensors belong to another
// network: a checkpoint of another architecture.
func mismatchedCheckpoint(t *testing.T, path string) {
	t.Helper()
	other := unet.Config{InCh: 3, Res: 16, Ch: 8, ChMult: []int{1, 2}, NumResBlocks: 1, Groups: 4}
	m, err := unet.New(other)
	if err != nil {
		t.Fatal(err)
	}
	tiny, _ := unet.ConfigByName("tiny")
	n := m.NumParams()
	c := &checkpoint.Checkpoint{UNet: tiny, Diffusion: diffusion.DefaultConfig(),
		Train: json.RawMessage(`{"data":"mnist","config":"tiny","steps":10,"batch":2,"lr":0.001,"ema_decay":0.9}`),
		Step:  2, AdamStep: 2, RNG: make([]byte, 20),
		Model: m.Weights(), EMA: make([]float32, n), AdamM: make([]float32, n), AdamV: make([]float32, n)}
	if err := checkpoint.Save(path, c, m.Params()); err != nil {
		t.Fatal(err)
	}
}

// TestBadInputs runs the binary on every kind of bad input the CLI can
// meet and requires a specific one-line message and exit status for each:
// never a panic, a stack trace or the internal-error net.
func TestBadInputs(t *testing.T) {
	tmp := t.TempDir()
	mk := func(parts ...string) string { // a fresh directory under tmp
		d := filepath.Join(append([]string{tmp}, parts...)...)
		os.MkdirAll(d, 0o755)
		return d
	}
	write := func(path string, b []byte) string {
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	img, lbl := idxFiles(10, 1)

	// MNIST-style directories, each broken in one way.
	idxDir := func(name string, images, labels []byte) string {
		d := mk("idx", name)
		writeIDXDir(t, d, images, labels)
		return d
	}
	truncated := idxDir("truncated", img[:len(img)-100], lbl)
	badMagic := idxDir("magic", append([]byte{0, 0, 9, 3}, img[4:]...), lbl)
	swapped := idxDir("swapped", lbl, img)
	countMismatch := idxDir("count", img, append(binary.BigEndian.AppendUint32([]byte{0, 0, 8, 1}, 9), lbl[8:17]...))
	overclaim := idxDir("overclaim", append(append(append([]byte{}, img[:4]...), 0, 0, 0, 11), img[8:]...), lbl)
	notGzip := mk("idx", "notgzip")
	write(filepath.Join(notGzip, "train-images-idx3-ubyte.gz"), []byte{0x1f, 0x8b, 8, 0, 0, 0})
	write(filepath.Join(notGzip, "train-labels-idx1-ubyte.gz"), gzipBytes(lbl))

	emptyFolder := mk("folder-empty")
	write(filepath.Join(emptyFolder, "notes.txt"), []byte("no images here"))
	corruptPNG := mk("folder-corrupt")
	write(filepath.Join(corruptPNG, "a.png"), []byte("\x89PNG\r\n\x1a\nnot really"))

	cifarShort := mk("cifar-short")
	write(filepath.Join(cifarShort, "data_batch_1.bin"), make([]byte, 3073*10))
	cifarMissing := mk("cifar-missing")

	// Model and checkpoint files.
	hugeHeader := write(filepath.Join(tmp, "huge.safetensors"), binary.LittleEndian.AppendUint64(nil, 1<<40))
	malformed := write(filepath.Join(tmp, "malformed.safetensors"), rawSafetensors(`{"w":{"dtype":"F32","shape":[2],`, nil))
	overlap := write(filepath.Join(tmp, "overlap.safetensors"), rawSafetensors(
		`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, make([]byte, 12)))
	outOfBounds := write(filepath.Join(tmp, "oob.safetensors"), rawSafetensors(
		`{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, make([]byte, 8)))
	noConfig := write(filepath.Join(tmp, "noconfig.safetensors"), rawSafetensors(
		`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 8)))
	// A weights file whose config does not match its tensors.
	tinyCfg, _ := unet.ConfigByName("tiny")
	tm, _ := unet.New(tinyCfg)
	ts := map[string]weights.Tensor{}
	off := 0
	for _, p := range tm.Params() {
		ts[p.Name] = weights.F32Tensor(tm.Weights()[off:off+p.Size()], p.Shape...)
		off += p.Size()
	}
	smallCfg, _ := unet.ConfigByName("small")
	smallJSON, _ := json.Marshal(smallCfg)
	wrongShape := filepath.Join(tmp, "wrongshape.safetensors")
	if err := weights.Save(wrongShape, ts, map[string]string{"unet": string(smallJSON)}); err != nil {
		t.Fatal(err)
	}
	otherArch := mk("run-other-arch")
	mismatchedCheckpoint(t, filepath.Join(otherArch, checkpoint.FileName))
	weightsOnlyRun := mk("run-weights-only")
	if err := checkpoint.SaveWeights(filepath.Join(weightsOnlyRun, checkpoint.FileName), tm, diffusion.DefaultConfig(), false, nil); err != nil {
		t.Fatal(err)
	}
	truncRun := mk("run-truncated")
	write(filepath.Join(truncRun, checkpoint.FileName), readFile(t, wrongShape)[:5000])
	hugeRun := mk("run-huge-header")
	write(filepath.Join(hugeRun, checkpoint.FileName), readFile(t, hugeHeader))

	notADir := write(filepath.Join(tmp, "plain-file"), []byte("x"))

	folder := "folder:" + folderFixture(t)
	existing := mk("existing")
	mustSucceed(t, runBin(t, nil, "train", "--data", folder, "--config", "tiny", "--steps", "2", "--batch", "1", "--quiet", "--out", existing), "setup run")
	flipped := mk("flipped")
	b := readFile(t, filepath.Join(existing, checkpoint.FileName))
	b[len(b)-1000] ^= 0x20
	write(filepath.Join(flipped, checkpoint.FileName), b)

	tr := func(extra ...string) []string {
		return append([]string{"train", "--data", folder, "--config", "tiny", "--steps", "2", "--batch", "1", "--quiet", "--out", filepath.Join(tmp, "out")}, extra...)
	}
	mnistAt := func(dir string, extra ...string) ([]string, []string) {
		return []string{"DDPM_MNIST_DIR=" + dir}, append([]string{"train", "--data", "mnist", "--config", "tiny1", "--steps", "1", "--out", filepath.Join(tmp, "out")}, extra...)
	}
	type tcase struct {
		name string
		env  []string
		args []string
		code int
		want string
	}
	cases := []tcase{
		{"unknown command", nil, []string{"trian"}, 2, `unknown command "trian"`},
		{"unknown flag", nil, tr("--bogus"), 2, "flag provided but not defined: -bogus"},
		{"stray argument", nil, tr("extra"), 2, `unexpected argument "extra"`},
		{"non-numeric steps", nil, tr("--steps", "ten"), 2, `invalid value "ten" for flag -steps`},
		{"negative steps", nil, tr("--steps", "-5"), 2, "steps must be positive, got -5"},
		{"batch 0", nil, tr("--batch", "0"), 2, "batch must be positive, got 0"},
		{"negative lr", nil, tr("--lr", "-1"), 2, "lr must be positive"},
		{"ema 1", nil, tr("--ema", "1"), 2, "ema decay must be in [0, 1)"},
		{"dropout 1", nil, tr("--dropout", "1"), 2, "--dropout must be in [0, 1)"},
		{"T 1", nil, tr("--T", "1"), 2, "T = 1, need T ≥ 2"},
		{"huge T", nil, tr("--T", "100000000"), 2, "more than the supported"},
		{"beta 0", nil, tr("--beta-start", "0"), 2, "beta start = 0, need 0 < β < 1"},
		{"beta 1.5", nil, tr("--beta-end", "1.5"), 2, "beta end = 1.5, need 0 < β < 1"},
		{"unknown schedule", nil, tr("--schedule", "quadratic"), 2, "quadratic"},
		{"unknown config", nil, tr("--config", "huge"), 2, `unknown config "huge"`},
		{"no --out", nil, []string{"train", "--data", folder}, 2, "--out DIR is required"},
		{"unknown data set", nil, tr("--data", "imagenet"), 1, `unknown data set "imagenet"`},
		{"channels", nil, tr("--data", "mnist", "--config", "tiny"), 1, "mnist has 1 channels, config tiny takes 3"},
		{"missing IDX files", []string{"DDPM_MNIST_DIR=" + mk("idx", "empty")}, tr("--data", "mnist", "--config", "tiny1"), 1, "train-images-idx3-ubyte.gz: no such file or directory"},
		{"truncated IDX", nil, nil, 1, "truncated: only"},
		{"wrong magic", nil, nil, 1, "bad magic number 0x00000903"},
		{"labels as images", nil, nil, 1, "is this a label file?"},
		{"count mismatch", nil, nil, 1, "has 10 images but"},
		{"count beyond data", nil, nil, 1, "header declares 11 images"},
		{"broken gzip", nil, nil, 1, "corrupt gzip data"},
		{"missing folder", nil, tr("--data", "folder:"+filepath.Join(tmp, "nope")), 1, "no such file or directory"},
		{"empty folder", nil, tr("--data", "folder:"+emptyFolder), 1, "no .png, .jpg or .jpeg images found"},
		{"unreadable image", nil, tr("--data", "folder:"+corruptPNG), 1, "a.png: cannot decode image"},
		{"CIFAR file of the wrong size", nil, tr("--data", "cifar10:"+cifarShort, "--config", "tiny32"), 1, "is 30730 bytes, want 30730000"},
		{"CIFAR files missing", nil, tr("--data", "cifar10:"+cifarMissing, "--config", "tiny32"), 1, "data_batch_1.bin: no such file or directory"},
		{"out under a file", nil, tr("--out", filepath.Join(notADir, "run")), 1, "not a directory"},
		{"existing run", nil, tr("--out", existing), 1, "already holds a checkpoint: pass --resume"},
		{"resume nothing", nil, []string{"train", "--resume", "--out", mk("nothing")}, 1, "holds no checkpoint to resume"},
		{"resume missing dir", nil, []string{"train", "--resume", "--out", filepath.Join(tmp, "absent")}, 1, "no run to resume at"},
		{"resume changed setting", nil, []string{"train", "--resume", "--out", existing, "--lr", "0.5"}, 2, "--lr 0.5 differs from the run's 0.0002"},
		{"resume fewer steps", nil, []string{"train", "--resume", "--out", existing, "--steps", "1"}, 2, "--steps 1 is below the run's step 2"},
		{"resume bit flip", nil, []string{"train", "--resume", "--out", flipped}, 1, "checksum mismatch"},
		{"resume truncated", nil, []string{"train", "--resume", "--out", truncRun}, 1, "truncated file?"},
		{"resume huge header", nil, []string{"train", "--resume", "--out", hugeRun}, 1, "exceeds the 16777216-byte cap"},
		{"resume other architecture", nil, []string{"train", "--resume", "--out", otherArch}, 1, "tensor model/temb_dense0.weight has shape [32 8], the model needs [64 16]"},
		{"resume weights file", nil, []string{"train", "--resume", "--out", weightsOnlyRun}, 1, "not a ddpm training checkpoint"},
		{"sample missing model", nil, []string{"sample", "--model", filepath.Join(tmp, "none.safetensors")}, 1, "no such file or directory"},
		{"sample huge header", nil, []string{"sample", "--model", hugeHeader}, 1, "exceeds the 16777216-byte cap"},
		{"sample malformed header", nil, []string{"sample", "--model", malformed}, 1, "weights: read " + malformed},
		{"sample overlapping tensors", nil, []string{"sample", "--model", overlap}, 1, "weights: read " + overlap},
		{"sample out of bounds", nil, []string{"sample", "--model", outOfBounds}, 1, "weights: read " + outOfBounds},
		{"sample no config", nil, []string{"sample", "--model", noConfig}, 1, "has no U-Net config"},
		{"sample wrong shape", nil, []string{"sample", "--model", wrongShape}, 1, "the model needs"},
		{"sample bit flip", nil, []string{"sample", "--model", flipped}, 1, "checksum mismatch"},
	}
	idxCases := map[string]string{"truncated IDX": truncated, "wrong magic": badMagic, "labels as images": swapped,
		"count mismatch": countMismatch, "count beyond data": overclaim, "broken gzip": notGzip}
	for i, c := range cases {
		if dir, ok := idxCases[c.name]; ok {
			cases[i].env, cases[i].args = mnistAt(dir)
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := runBin(t, c.env, c.args...)
			checkCleanFailure(t, r, c.code, c.want)
			if n := strings.Count(strings.TrimSpace(r.stderr), "\n"); n != 0 {
				t.Fatalf("%d lines on stderr, want one:\n%s", n+1, r.stderr)
			}
		})
	}
	// No failed attempt may have damaged the runs it was pointed at.
	if _, _, err := checkpoint.Load(filepath.Join(existing, checkpoint.FileName)); err != nil {
		t.Fatalf("the existing run was damaged: %v", err)
	}
}

// TestHelp checks that --help prints the flags once, to stdout, with
// status 0.
func TestHelp(t *testing.T) {
	r := runBin(t, nil, "train", "--help")
	if r.code != 0 || strings.Count(r.stdout, "usage: ddpm train") != 1 || !strings.Contains(r.stdout, "-skip-nan") || r.stderr != "" {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
}

// TestPanicNet checks the last line of defence: a panic in a command is a
// one-line internal error with exit status 3, not a stack trace.
func TestPanicNet(t *testing.T) {
	boom := command{"panics", func([]string) error {
		var m map[string]int
		m["x"]++ // a nil-map write: a runtime error, as a real bug would be
		return nil
	}}
	t.Setenv("GOTRACEBACK", "")
	var code int
	out := captureStderr(t, func() { code = runCommand("boom", boom, nil) })
	if code != exitInternal {
		t.Fatalf("exit %d, want %d", code, exitInternal)
	}
	want := "ddpm boom: internal error: assignment to entry in nil map (this is a bug; please report it with the command line)\n"
	if out != want {
		t.Fatalf("stderr %q, want %q", out, want)
	}
	// With GOTRACEBACK set the stack follows, for the bug report.
	t.Setenv("GOTRACEBACK", "all")
	out = captureStderr(t, func() { runCommand("boom", boom, nil) })
	if !strings.HasPrefix(out, want) || !strings.Contains(out, "goroutine") {
		t.Fatalf("with GOTRACEBACK=all: %q", out)
	}
	// Errors that are not panics keep their statuses.
	for _, tc := range []struct {
		err  error
		code int
	}{{nil, 0}, {usageErr("bad"), 2}, {io.ErrUnexpectedEOF, 1}} {
		var c int
		captureStderr(t, func() { c = runCommand("x", command{"", func([]string) error { return tc.err }}, nil) })
		if c != tc.code {
			t.Errorf("error %v: exit %d, want %d", tc.err, c, tc.code)
		}
	}
}

// captureOutput runs fn with *f (os.Stdout or os.Stderr) redirected to a
// temporary file and returns what fn wrote there.
func captureOutput(t *testing.T, f **os.File, fn func()) string {
	t.Helper()
	tmp, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer tmp.Close()
	old := *f
	*f = tmp
	defer func() { *f = old }() // also when fn fails the test
	fn()
	b, err := os.ReadFile(tmp.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// captureStdout returns what fn prints on os.Stdout.
func captureStdout(t *testing.T, fn func()) string {
	t.Helper()
	return captureOutput(t, &os.Stdout, fn)
}

// captureStderr returns what fn prints on os.Stderr.
func captureStderr(t *testing.T, fn func()) string {
	t.Helper()
	return captureOutput(t, &os.Stderr, fn)
}

// runCaptured runs the CLI in-process with args and returns its exit
// status and what it printed on stdout.
func runCaptured(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var code int
	out := captureStdout(t, func() { code = run(args) })
	return code, out
}

// decodePNG reads the PNG file at path.
func decodePNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return img
}

// pngSize is the width and height of the PNG file at path.
func pngSize(t *testing.T, path string) (w, h int) {
	t.Helper()
	b := decodePNG(t, path).Bounds()
	return b.Dx(), b.Dy()
}

// testUNet is a freshly initialised U-Net of config cfg.
func testUNet(t *testing.T, cfg unet.Config, seed uint64) *unet.UNet {
	t.Helper()
	m, err := unet.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.Init(rand.New(rand.NewPCG(seed, 2)))
	return m
}

// TestDataFitsModel checks the two ways data is fitted to the model, which
// a resumed run repeats from the config saved in its checkpoint: folder
// images of any size are resized to the model's side, MNIST's 28×28
// digits are padded to 32×32 with −1 (black).
func TestDataFitsModel(t *testing.T) {
	r := runBin(t, nil, "train", "--data", "folder:"+folderFixture(t), "--config", "tiny", "--steps", "1", "--batch", "1",
		"--quiet", "--out", filepath.Join(t.TempDir(), "run"))
	mustSucceed(t, r, "train on mixed sizes")
	if !strings.Contains(r.stderr, "on folder (8 images)") {
		t.Fatalf("the folder's 8 mixed-size images were not all used:\n%s", r.stderr)
	}
	ds, err := data.Load("folder:"+folderFixture(t), "train", data.WithSize(16), data.WithChannels(3))
	if err != nil || ds.N != 8 || ds.H != 16 || ds.W != 16 || ds.C != 3 {
		t.Fatalf("folder loaded as %+v, %v; want 8 images of 3×16×16", ds, err)
	}

	t.Setenv("DDPM_MNIST_DIR", "")
	dir := t.TempDir()
	img, lbl := idxFiles(2, 3)
	writeIDXDir(t, dir, img, lbl)
	t.Setenv("DDPM_MNIST_DIR", dir)
	tiny1, _ := unet.ConfigByName("tiny1")
	ds, err = data.Load("mnist", "train", data.WithSize(tiny1.Res), data.WithChannels(tiny1.InCh))
	if err != nil || ds.H != 28 {
		t.Fatalf("mnist: %+v, %v", ds, err)
	}
	x := make([]float32, 32*32)
	ds.ToFloat(x, []int{1}, tiny1.Res)
	for y := range 32 {
		for xx := range 32 {
			v := x[y*32+xx]
			if y < 2 || y >= 30 || xx < 2 || xx >= 30 {
				if v != -1 {
					t.Fatalf("padding at (%d, %d) = %v, want -1", xx, y, v)
				}
			} else if want := float32(img[16+28*28+(y-2)*28+xx-2])/127.5 - 1; v != want {
				t.Fatalf("pixel (%d, %d) = %v, want %v", xx, y, v, want)
			}
		}
	}
}

// TestTrainLockedRun: a second trainer on a run directory that another one
// holds stops at once with a one-line error, before it writes anything.
func TestTrainLockedRun(t *testing.T) {
	out := t.TempDir()
	release, err := train.LockDir(out)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	r := runBin(t, nil, "train", "--data", "folder:"+folderFixture(t), "--config", "tiny", "--steps", "2", "--batch", "2", "--quiet", "--out", out)
	if r.code != 1 || !strings.Contains(r.stderr, "in use by another ddpm train") || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
		t.Fatalf("exit %d, stderr %q; want exit 1 and a one-line in-use error", r.code, r.stderr)
	}
	if dirHasCheckpoint(out) {
		t.Fatal("the locked run directory got a checkpoint")
	}
}
