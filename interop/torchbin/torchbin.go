// Package torchbin reads PyTorch state dicts saved with torch.save — the
// diffusion_pytorch_model.bin of older diffusers hub repositories, the
// model.ckpt of pesser/pytorch_diffusion — without running any of the
// pickle they are made of.
//
// Two container formats are read:
//   - the zip format (torch >= 1.6): an archive holding <name>/data.pkl, one
//     <name>/data/<key> record per storage, <name>/version and, in newer
//     files, <name>/byteorder;
//   - the legacy format (torch < 1.6, or _use_new_zipfile_serialization=False):
//     a magic-number pickle, a protocol-version pickle, a sys_info pickle, the
//     state dict's pickle, a pickle listing the storage keys, and then each
//     storage as an int64 element count followed by its raw bytes.
//
// The pickle is loaded with github.com/nlpodyssey/gopickle under a closed
// allow list: collections.OrderedDict, torch._utils._rebuild_tensor_v2 (and
// _rebuild_tensor, _rebuild_parameter, _rebuild_parameter_with_state),
// torch._tensor._rebuild_from_type_v2 with torch.Tensor/torch.nn.Parameter,
// and the storage classes torch.{Float,Half,BFloat16,Double,Long,Int}Storage.
// Any other global is refused with one line naming it ("pickle asks for
// os.system: refused (a state dict needs only tensors)"), and the opcode
// stream is checked before gopickle sees it (see scan.go). Nothing in the
// file is executed; the "functions" above are Go code that records a
// tensor's storage, offset, size and stride.
//
// Tensors are decoded as weights.Tensor: float32, float16, bfloat16 and
// float64 into F32 and int64, int32 into I64, with DType recording what the
// file stored ("F32", "F16", "BF16", "F64", "I64", "I32"), as weights.Load
// does for safetensors. Storages must be little-endian. A strided
// (non-contiguous) tensor is copied out in row-major order.
//
// A checkpoint that wraps its state dict — {"state_dict": ...},
// {"model_state_dict": ...} or {"model": ...}, as training scripts and
// Lightning write — is unwrapped when its top level holds no tensor. Entries
// of the state dict that are not tensors are skipped and listed in
// Checkpoint.Skipped.
package torchbin

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/nlpodyssey/gopickle/types"

	"github.com/ddpm-go/ddpm/weights"
)

// MaxPickleSize caps the state dict's pickle (data.pkl). A U-Net's is some
// tens of KiB (about 50 bytes per tensor plus its name).
const MaxPickleSize = 64 << 20

// WrapperKeys are the keys under which a checkpoint may hold its state dict,
// tried in this order when the top level holds no tensor.
var WrapperKeys = []string{"state_dict", "model_state_dict", "model"}

// Checkpoint is a decoded state dict with what was noticed on the way.
type Checkpoint struct {
	// Tensors by state-dict name.
	Tensors map[string]weights.Tensor
	// Format is "zip" (torch >= 1.6) or "legacy" (torch's older non-zip
	// format).
	Format string
	// Unwrapped lists the wrapper keys the state dict was found under,
	// outermost first (empty for a bare state dict).
	Unwrapped []string
	// Skipped lists the state dict's entries that are not tensors, as
	// "name (kind)", in file order.
	Skipped []string

	refs []namedRef // the tensors, before they are decoded
}

// Load reads the state dict in a torch.save file.
func Load(path string) (map[string]weights.Tensor, error) {
	c, err := LoadCheckpoint(path)
	if err != nil {
		return nil, err
	}
	return c.Tensors, nil
}

// LoadCheckpoint is Load with the format, the unwrapped keys and the skipped
// entries.
func LoadCheckpoint(path string) (*Checkpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("torchbin: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("torchbin: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("torchbin: %s: not a regular file", path)
	}
	c, err := read(f, fi.Size())
	if err != nil {
		return nil, fmt.Errorf("torchbin: %s: %w", path, err)
	}
	return c, nil
}

// Decode reads the state dict in a torch.save file of the given size.
func Decode(r io.ReaderAt, size int64) (map[string]weights.Tensor, error) {
	c, err := ReadCheckpoint(r, size)
	if err != nil {
		return nil, err
	}
	return c.Tensors, nil
}

// DecodeBytes reads the state dict in a torch.save file held in memory. The
// tensors do not alias data.
func DecodeBytes(data []byte) (map[string]weights.Tensor, error) {
	return Decode(bytes.NewReader(data), int64(len(data)))
}

// ReadCheckpoint is Decode with the format, the unwrapped keys and the
// skipped entries.
func ReadCheckpoint(r io.ReaderAt, size int64) (*Checkpoint, error) {
	c, err := read(r, size)
	if err != nil {
		return nil, fmt.Errorf("torchbin: %w", err)
	}
	return c, nil
}

func read(r io.ReaderAt, size int64) (*Checkpoint, error) {
	c, err := structure(r, size)
	if err != nil {
		return nil, err
	}
	if err := c.materialize(); err != nil {
		return nil, err
	}
	return c, nil
}

// structure unpickles the state dict and checks its tensors, reading none
// of their data.
func structure(r io.ReaderAt, size int64) (*Checkpoint, error) {
	obj, format, err := readObject(r, size)
	if err != nil {
		return nil, err
	}
	c := &Checkpoint{Format: format}
	if err := c.fill(obj); err != nil {
		return nil, err
	}
	return c, nil
}

// readObject unpickles the file's top-level object, with its tensors not
// yet read, and names the container format.
func readObject(r io.ReaderAt, size int64) (obj any, format string, err error) {
	if size < 0 {
		return nil, "", fmt.Errorf("negative size %d", size)
	}
	var head [512]byte
	n, err := r.ReadAt(head[:min(int64(len(head)), size)], 0)
	if err != nil && err != io.EOF {
		return nil, "", err
	}
	h := head[:n]
	switch {
	case bytes.HasPrefix(h, []byte("PK")):
		format = "zip"
		obj, err = readZip(r, size)
	case len(h) >= 2 && (h[0] == 0x80 && h[1] >= 2 && h[1] <= 5 || h[0] == 'L' && h[1] >= '0' && h[1] <= '9'):
		// A pickle: protocol 2 and later open with PROTO; protocols 0 and
		// 1 write the legacy magic number as a text LONG.
		format = "legacy"
		obj, err = readLegacy(r, size)
	case len(h) >= 262 && string(h[257:262]) == "ustar":
		return nil, "", errors.New("a tar archive: torch's oldest checkpoint format (torch < 0.4) is not supported; re-save it with a recent torch")
	case looksSafetensors(h, size):
		return nil, "", errors.New("a safetensors file, not a PyTorch pickle: read it with weights.Load")
	case size == 0:
		return nil, "", errors.New("empty file: not a PyTorch checkpoint")
	default:
		return nil, "", errors.New("not a PyTorch checkpoint (neither a zip archive nor a pickle)")
	}
	if err != nil {
		return nil, "", fmt.Errorf("%s format: %w", format, err)
	}
	return obj, format, nil
}

func looksSafetensors(h []byte, size int64) bool {
	if len(h) < 9 {
		return false
	}
	n := binary.LittleEndian.Uint64(h)
	return n > 0 && n <= uint64(size-8) && h[8] == '{'
}

// ---- the zip format ----

// maxExpand bounds how much a compressed record may claim to expand to,
// relative to its compressed size (deflate cannot exceed ~1032:1; torch
// stores records uncompressed, so this only matters for hand-made archives).
const maxExpand = 1100

func readZip(r io.ReaderAt, size int64) (any, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("archive is truncated or corrupt (%v)", err)
	}
	records := make(map[string]*zip.File, len(zr.File))
	var pkls []string
	torchScript := false
	for _, f := range zr.File {
		records[f.Name] = f
		dir, base := path.Split(f.Name)
		if base == "data.pkl" && dir != "" && strings.Count(dir, "/") == 1 {
			pkls = append(pkls, f.Name)
		}
		if base == "constants.pkl" {
			torchScript = true
		}
	}
	if torchScript {
		return nil, errors.New("a TorchScript archive (torch.jit.save), not a state dict: save model.state_dict() with torch.save")
	}
	switch len(pkls) {
	case 0:
		return nil, errors.New("archive without a <name>/data.pkl record: not a PyTorch checkpoint")
	case 1:
	default:
		slices.Sort(pkls)
		return nil, fmt.Errorf("archive with %d data.pkl records (%s, …): torch.save writes one", len(pkls), printable(pkls[0]))
	}
	prefix := strings.TrimSuffix(pkls[0], "data.pkl") // "<name>/"
	if f := records[prefix+"byteorder"]; f != nil {
		b, err := readRecord(f, size, 16)
		if err != nil {
			return nil, err
		}
		if order := strings.TrimSpace(string(b)); order != "little" {
			return nil, fmt.Errorf("storages are %s-endian (record %s): only little-endian checkpoints are supported", printable(order), printable(f.Name))
		}
	}
	pkl, err := readRecord(records[pkls[0]], size, MaxPickleSize)
	if err != nil {
		return nil, err
	}
	end, err := scanPickle(pkl)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", printable(pkls[0]), err)
	}
	storages := make(map[string]*storage)
	load := func(pid any) (any, error) {
		t, ok := pid.(*types.Tuple)
		if !ok || t.Len() != 5 {
			return nil, fmt.Errorf("persistent id %s: expected ('storage', type, key, location, numel)", shortValue(pid))
		}
		st, err := storageFromID(*t)
		if err != nil {
			return nil, err
		}
		if prev, ok := storages[st.key]; ok {
			if prev.dtype != st.dtype || prev.numel != st.numel {
				return nil, fmt.Errorf("storage %q is named twice with different types or sizes", st.key)
			}
			return prev, nil
		}
		name := prefix + "data/" + st.key
		f := records[name]
		if f == nil {
			return nil, fmt.Errorf("storage %q: the archive has no record %s (truncated or incomplete checkpoint)", st.key, printable(name))
		}
		need := uint64(st.numel) * uint64(st.dtype.size())
		if f.UncompressedSize64 != need {
			return nil, fmt.Errorf("storage %q: record %s holds %d bytes, but %d elements of %d bytes need %d", st.key, printable(name), f.UncompressedSize64, st.numel, st.dtype.size(), need)
		}
		st.open = func() (io.Reader, func() error, error) { return openRecord(f, size, need) }
		storages[st.key] = st
		return st, nil
	}
	obj, err := unpickle(pkl[:end], load)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", printable(pkls[0]), err)
	}
	return obj, nil
}

// readRecord reads a whole zip record of at most limit bytes.
func readRecord(f *zip.File, archiveSize int64, limit uint64) ([]byte, error) {
	r, finish, err := openRecord(f, archiveSize, limit)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, f.UncompressedSize64)
	_, err = io.ReadFull(r, buf)
	if err != nil {
		err = fmt.Errorf("record %s: %v (truncated archive?)", printable(f.Name), err)
	}
	if ferr := finish(); err == nil {
		err = ferr
	}
	if err != nil {
		return nil, err
	}
	return buf, nil
}

// openRecord opens a zip record of at most limit bytes for reading, and
// returns a finish function that reads what is left of it, checks it and
// closes it. The sizes in the archive's directory are checked against the
// archive before anything is allocated; archive/zip then checks the bytes
// read against them and, at the end, the CRC.
func openRecord(f *zip.File, archiveSize int64, limit uint64) (io.Reader, func() error, error) {
	if f.UncompressedSize64 > limit {
		return nil, nil, fmt.Errorf("record %s: %d bytes, more than the %d allowed", printable(f.Name), f.UncompressedSize64, limit)
	}
	if f.CompressedSize64 > uint64(archiveSize) {
		return nil, nil, fmt.Errorf("record %s: %d bytes in an archive of %d (truncated archive?)", printable(f.Name), f.CompressedSize64, archiveSize)
	}
	if f.Method == zip.Store && f.UncompressedSize64 != f.CompressedSize64 {
		return nil, nil, fmt.Errorf("record %s: stored uncompressed but sized %d and %d", printable(f.Name), f.UncompressedSize64, f.CompressedSize64)
	}
	if f.UncompressedSize64 > maxExpand*f.CompressedSize64+1024 {
		return nil, nil, fmt.Errorf("record %s claims to expand %d bytes to %d", printable(f.Name), f.CompressedSize64, f.UncompressedSize64)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, nil, fmt.Errorf("record %s: %v", printable(f.Name), err)
	}
	cr := &countReader{r: rc}
	finish := func() error {
		defer rc.Close()
		// Reading to the end makes archive/zip check the CRC.
		if _, err := io.Copy(io.Discard, io.LimitReader(cr, int64(f.UncompressedSize64-min(cr.n, f.UncompressedSize64)))); err != nil {
			return fmt.Errorf("record %s: %v (truncated archive?)", printable(f.Name), err)
		}
		if cr.n != f.UncompressedSize64 {
			return fmt.Errorf("record %s: %v (truncated archive?)", printable(f.Name), io.ErrUnexpectedEOF)
		}
		if n, err := rc.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			if err == nil || err == io.EOF {
				err = errors.New("longer than its directory entry says")
			}
			return fmt.Errorf("record %s: %v", printable(f.Name), err)
		}
		return nil
	}
	return cr, finish, nil
}

// countReader counts the bytes read through it.
type countReader struct {
	r io.Reader
	n uint64
}

func (c *countReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n += uint64(k)
	return k, err
}

// storageFromID checks the head of a storage persistent id, common to both
// formats: ('storage', storage class, key, location, numel, ...).
func storageFromID(t types.Tuple) (*storage, error) {
	if len(t) < 5 {
		return nil, fmt.Errorf("persistent id with %d fields", len(t))
	}
	if s, ok := t[0].(string); !ok || s != "storage" {
		if s == "module" {
			return nil, errors.New("the pickle holds a whole nn.Module (torch.save(model)), not a state dict")
		}
		return nil, fmt.Errorf("persistent id of kind %s: only storages are supported", shortValue(t[0]))
	}
	cls, ok := t[1].(*storageClass)
	if !ok {
		return nil, fmt.Errorf("storage type is %s, not a torch storage class", shortValue(t[1]))
	}
	key, ok := t[2].(string)
	if !ok {
		return nil, fmt.Errorf("storage key is %s, not a string", shortValue(t[2]))
	}
	if _, ok := t[3].(string); !ok {
		return nil, fmt.Errorf("storage %q: location is %s, not a string", key, shortValue(t[3]))
	}
	numel, ok := t[4].(int)
	if !ok || numel < 0 || numel > math.MaxInt64/8 {
		return nil, fmt.Errorf("storage %q: element count %s", key, shortValue(t[4]))
	}
	return &storage{key: key, dtype: cls.dtype, numel: numel}, nil
}

// ---- the legacy format ----

// legacyMagic is torch.serialization.MAGIC_NUMBER, in hex.
const legacyMagic = "1950a86a20f9469cfc6c"

// legacyProtocol is torch.serialization.PROTOCOL_VERSION.
const legacyProtocol = 1001

// pickleAt finds the pickle starting at off, reading the file in growing
// pieces, and returns its bytes.
func pickleAt(r io.ReaderAt, size, off int64) ([]byte, error) {
	for n := int64(64 << 10); ; n *= 4 {
		n = min(n, size-off, MaxPickleSize)
		buf := make([]byte, n)
		if _, err := r.ReadAt(buf, off); err != nil && err != io.EOF {
			return nil, err
		}
		end, err := scanPickle(buf)
		if err == nil {
			return buf[:end], nil
		}
		if err != errTruncated || n == size-off {
			return nil, err
		}
		if n == MaxPickleSize {
			return nil, fmt.Errorf("pickle at byte %d is larger than %d bytes", off, MaxPickleSize)
		}
	}
}

func readLegacy(r io.ReaderAt, size int64) (any, error) {
	off := int64(0)
	next := func(what string, load func(any) (any, error)) (any, error) {
		if off >= size {
			return nil, fmt.Errorf("file ends before the %s (truncated?)", what)
		}
		b, err := pickleAt(r, size, off)
		if err != nil {
			return nil, fmt.Errorf("%s at byte %d: %w", what, off, err)
		}
		v, err := unpickle(b, load)
		if err != nil {
			return nil, fmt.Errorf("%s at byte %d: %w", what, off, err)
		}
		off += int64(len(b))
		return v, nil
	}
	magic, err := next("magic number", nil)
	if err != nil {
		return nil, fmt.Errorf("not a PyTorch checkpoint (a pickle, but %v)", err)
	}
	if m, ok := magic.(*big.Int); !ok || m.Text(16) != legacyMagic {
		return nil, errors.New("not a PyTorch checkpoint (a pickle without torch's magic number; plain pickles are not read)")
	}
	proto, err := next("protocol version", nil)
	if err != nil {
		return nil, err
	}
	if p, ok := proto.(int); !ok || p != legacyProtocol {
		return nil, fmt.Errorf("protocol version %s, expected %d", shortValue(proto), legacyProtocol)
	}
	info, err := next("sys_info", nil)
	if err != nil {
		return nil, err
	}
	if d, ok := info.(*types.Dict); ok {
		if le, ok := d.Get("little_endian"); ok && le != true {
			return nil, errors.New("saved on a big-endian machine: only little-endian checkpoints are supported")
		}
	}

	storages := make(map[string]*storage)
	load := func(pid any) (any, error) {
		t, ok := pid.(*types.Tuple)
		if !ok || t.Len() != 6 {
			if ok && t.Len() > 0 && t.Get(0) == "module" {
				return nil, errors.New("the pickle holds a whole nn.Module (torch.save(model)), not a state dict")
			}
			return nil, fmt.Errorf("persistent id %s: expected ('storage', type, key, location, numel, view)", shortValue(pid))
		}
		st, err := storageFromID(*t)
		if err != nil {
			return nil, err
		}
		if t.Get(5) != nil {
			return nil, fmt.Errorf("storage %q is a view of another storage (torch < 0.4 files): not supported", st.key)
		}
		if prev, ok := storages[st.key]; ok {
			if prev.dtype != st.dtype || prev.numel != st.numel {
				return nil, fmt.Errorf("storage %q is named twice with different types or sizes", st.key)
			}
			return prev, nil
		}
		storages[st.key] = st
		return st, nil
	}
	obj, err := next("state dict pickle", load)
	if err != nil {
		return nil, err
	}
	keysObj, err := next("storage key list", nil)
	if err != nil {
		return nil, err
	}
	keys, ok := keysObj.(*types.List)
	if !ok {
		return nil, fmt.Errorf("storage key list is a %s", kindOf(keysObj))
	}
	for _, k := range *keys {
		key, ok := k.(string)
		if !ok {
			return nil, fmt.Errorf("storage key %s is not a string", shortValue(k))
		}
		st := storages[key]
		if st == nil {
			return nil, fmt.Errorf("storage %q is listed but no tensor uses it", key)
		}
		if st.open != nil {
			return nil, fmt.Errorf("storage %q is listed twice", key)
		}
		var hdr [8]byte
		if off+8 > size {
			return nil, fmt.Errorf("file ends before storage %q (truncated?)", key)
		}
		if _, err := r.ReadAt(hdr[:], off); err != nil {
			return nil, fmt.Errorf("storage %q: %v", key, err)
		}
		numel := binary.LittleEndian.Uint64(hdr[:])
		if numel != uint64(st.numel) {
			return nil, fmt.Errorf("storage %q: the file holds %d elements, the pickle says %d", key, numel, st.numel)
		}
		nbytes := int64(st.numel) * int64(st.dtype.size())
		if nbytes > size-off-8 {
			return nil, fmt.Errorf("storage %q: %d bytes at byte %d run past the end of the %d-byte file (truncated?)", key, nbytes, off+8, size)
		}
		at := off + 8
		st.open = func() (io.Reader, func() error, error) {
			return io.NewSectionReader(r, at, nbytes), func() error { return nil }, nil
		}
		off = at + nbytes
	}
	for key, st := range storages {
		if st.open == nil {
			return nil, fmt.Errorf("storage %q is used but missing from the storage key list", key)
		}
	}
	return obj, nil
}

// ---- the state dict ----

type entry struct {
	key any
	val any
}

// dictEntries lists a dict's or OrderedDict's entries in order; ok is false
// for anything else.
func dictEntries(v any) (es []entry, ok bool) {
	switch d := v.(type) {
	case *types.Dict:
		for _, e := range *d {
			es = append(es, entry{e.Key, e.Value})
		}
		return es, true
	case *types.OrderedDict:
		for el := d.List.Front(); el != nil; el = el.Next() {
			e := el.Value.(*types.OrderedDictEntry)
			es = append(es, entry{e.Key, e.Value})
		}
		return es, true
	}
	return nil, false
}

// fill finds the state dict in obj (unwrapping wrappers) and decodes its
// tensors.
func (c *Checkpoint) fill(obj any) error {
	const maxWrap = 4
	for depth := 0; ; depth++ {
		if _, ok := obj.(*tensorRef); ok {
			return errors.New("the file holds a single tensor (torch.save(tensor)), not a state dict")
		}
		es, ok := dictEntries(obj)
		if !ok {
			where := "the file"
			if len(c.Unwrapped) > 0 {
				where = strings.Join(c.Unwrapped, "/")
			}
			return fmt.Errorf("%s holds a %s, not a state dict", where, kindOf(obj))
		}
		hasTensor := false
		for _, e := range es {
			if _, ok := e.val.(*tensorRef); ok {
				hasTensor = true
				break
			}
		}
		if hasTensor {
			return c.decodeEntries(es)
		}
		var next any
		found := ""
		if depth < maxWrap {
		search:
			for _, w := range WrapperKeys {
				for _, e := range es {
					if e.key == w {
						if _, ok := dictEntries(e.val); ok {
							next, found = e.val, w
							break search
						}
					}
				}
			}
		}
		if found == "" {
			where := "the top level"
			if len(c.Unwrapped) > 0 {
				where = strings.Join(c.Unwrapped, "/")
			}
			if len(es) == 0 {
				return fmt.Errorf("%s is an empty dict: no tensors", where)
			}
			return fmt.Errorf("no tensors at %s and no %s entry holding a dict (keys: %s)", where, strings.Join(WrapperKeys, "/"), keyList(es))
		}
		c.Unwrapped = append(c.Unwrapped, found)
		obj = next
	}
}

func keyList(es []entry) string {
	var ks []string
	for i, e := range es {
		if i == 8 {
			ks = append(ks, fmt.Sprintf("… %d more", len(es)-i))
			break
		}
		ks = append(ks, shortValue(e.key))
	}
	return strings.Join(ks, ", ")
}

// decodeEntries records the state dict's tensors, checking each one's view
// of its storage; their data is read by c.materialize (or by the Lazy
// tensors of a File).
func (c *Checkpoint) decodeEntries(es []entry) error {
	seen := make(map[string]bool, len(es))
	for _, e := range es {
		name, ok := e.key.(string)
		t, isTensor := e.val.(*tensorRef)
		if !ok {
			c.Skipped = append(c.Skipped, fmt.Sprintf("%s (%s key)", shortValue(e.key), kindOf(e.key)))
			continue
		}
		if !isTensor {
			c.Skipped = append(c.Skipped, fmt.Sprintf("%s (%s)", name, kindOf(e.val)))
			continue
		}
		if seen[name] {
			return fmt.Errorf("tensor %q appears twice", name)
		}
		seen[name] = true
		if _, err := t.check(); err != nil {
			return fmt.Errorf("tensor %q: %w", name, err)
		}
		c.refs = append(c.refs, namedRef{name, t})
	}
	return nil
}

// namedRef is a state-dict entry that is a tensor.
type namedRef struct {
	name string
	t    *tensorRef
}

// materialize decodes every tensor into c.Tensors, in file order.
func (c *Checkpoint) materialize() error {
	c.Tensors = make(map[string]weights.Tensor, len(c.refs))
	for _, r := range c.refs {
		w, err := materialize(r.t)
		if err != nil {
			return fmt.Errorf("tensor %q: %w", r.name, err)
		}
		c.Tensors[r.name] = w
	}
	c.refs = nil
	return nil
}

// File is a torch.save file opened for reading tensor by tensor: Open
// unpickles its state dict and checks every tensor's view of its storage,
// and each tensor's data is read from the file, piece by piece, only when
// it is decoded (Lazy's Read), so that loading a network this way holds
// neither the file nor a second copy of the weights. Close it when done.
type File struct {
	// Format, Unwrapped and Skipped are as in Checkpoint.
	Format    string
	Unwrapped []string
	Skipped   []string
	// Tensors by state-dict name, read on demand while the file is open.
	Tensors map[string]weights.Lazy
	f       *os.File
}

// Open opens a torch.save file and reads its state dict's structure.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("torchbin: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("torchbin: %w", err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("torchbin: %s: not a regular file", path)
	}
	c, err := structure(f, fi.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("torchbin: %s: %w", path, err)
	}
	lf := &File{Format: c.Format, Unwrapped: c.Unwrapped, Skipped: c.Skipped, Tensors: make(map[string]weights.Lazy, len(c.refs)), f: f}
	for _, r := range c.refs {
		t, name := r.t, r.name
		lf.Tensors[name] = weights.Lazy{DType: t.st.dtype.name(), Shape: append([]int{}, t.shape...), Read: func(dst []float32) error {
			n, err := t.check()
			switch {
			case err != nil:
			case t.isInt():
				err = fmt.Errorf("is %s, not floating point", t.st.dtype.name())
			case len(dst) != n:
				err = fmt.Errorf("%d elements, the destination holds %d", n, len(dst))
			default:
				err = t.decode(n, dst, nil)
			}
			if err != nil {
				return fmt.Errorf("torchbin: %s: tensor %q: %w", path, name, err)
			}
			return nil
		}}
	}
	return lf, nil
}

// Close closes the file.
func (f *File) Close() error { return f.f.Close() }
