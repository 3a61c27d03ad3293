package data

import (
	"archive/tar"
	"bytes"
	"cmp"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"image"
	_ "image/png" // the emoji are PNGs
	"io"
	"io/fs"
	"maps"
	"math"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
)

// The emoji data set: the 3,786 64×64 Noto Emoji PNGs (1,911 emoji and their
// skin-tone variants) of the npm package emoji-datasource-google 16.0.0,
// read straight from the package's .tgz (or its unpacked folder),
// composited on white and shrunk to 3×32×32 with a 2×2 area filter.
// The images are Apache-2.0 (Noto Emoji); see docs/emoji.md.
const (
	// EmojiPackage is the npm package (and version) the data come from.
	EmojiPackage = "emoji-datasource-google@16.0.0"
	// EmojiArchive is the file name `npm pack` gives it.
	EmojiArchive = "emoji-datasource-google-16.0.0.tgz"
	// EmojiFetch is the command that puts EmojiArchive where [EmojiPath]
	// looks by default.
	EmojiFetch = "mkdir -p ~/.cache/ddpm && cd ~/.cache/ddpm && npm pack " + EmojiPackage
	// EmojiSide is the side of the data set's images.
	EmojiSide = 32
	// EmojiTestShare is the share of each category's images held out as
	// the test split.
	EmojiTestShare = 0.1

	emojiImageDir = "img/google/64/"
)

// emojiCategories are the class names, in the order of the package's
// sort_order: label i is emojiCategories[i]. The package's tenth category,
// Component (five images: four hair styles and, for some packages, skin
// swatches), is too small to be a class of its own and is folded into
// People & Body, which it is part of (see emojiCategoryAlias).
var emojiCategories = [...]string{
	"Smileys & Emotion", "People & Body", "Animals & Nature", "Food & Drink",
	"Travel & Places", "Activities", "Objects", "Symbols", "Flags",
}

// emojiCategoryAlias maps categories of emoji.json that are not classes to
// the class they join.
var emojiCategoryAlias = map[string]string{"Component": "People & Body"}

// EmojiCategories returns the class names of the emoji data set: Labels
// index this list.
func EmojiCategories() []string { return slices.Clone(emojiCategories[:]) }

// EmojiPath is where `--data emoji` reads the package from: $DDPM_EMOJI
// when set (the .tgz or the unpacked folder), else
// ~/.cache/ddpm/emoji-datasource-google-16.0.0.tgz.
func EmojiPath() string {
	if p := os.Getenv("DDPM_EMOJI"); p != "" {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = "~"
	}
	return filepath.Join(home, ".cache", "ddpm", EmojiArchive)
}

// EmojiImage describes one image of the emoji data set.
type EmojiImage struct {
	Name     string // the base emoji's name from emoji.json ("GRINNING FACE")
	Unified  string // this image's code points ("1F385-1F3FB")
	Base     string // the base emoji's code points: the split keeps an emoji's variants together
	File     string // the PNG's file name in img/google/64
	Category string // the class name (EmojiCategories()[Label])
	Label    int
	Test     bool // in the test split
}

// emojiEntry is the part of an emoji.json record the loader uses.
type emojiEntry struct {
	Name      string                  `json:"name"`
	Unified   string                  `json:"unified"`
	Image     string                  `json:"image"`
	Category  string                  `json:"category"`
	SortOrder int                     `json:"sort_order"`
	HasImg    bool                    `json:"has_img_google"`
	Skin      map[string]emojiVariant `json:"skin_variations"`
}

type emojiVariant struct {
	Unified string `json:"unified"`
	Image   string `json:"image"`
	HasImg  bool   `json:"has_img_google"`
}

// emojiSet is the whole decoded package: every image, both splits.
type emojiSet struct {
	images []EmojiImage
	pixels []uint8 // 3×32×32 per image, planar RGB
}

// emojiCache keeps decoded packages for the life of the process, keyed by
// emojiKey, so that loading the train and then the test split (or the same
// split twice) decodes the PNGs once.
var emojiCache struct {
	sync.Mutex
	sets map[string]*emojiSet
}

// loadEmoji reads the split of the emoji package at p ("" means
// EmojiPath()).
func loadEmoji(p, split string) (*Dataset, error) {
	s, err := openEmoji(p)
	if err != nil {
		return nil, err
	}
	return s.split(split), nil
}

// EmojiImages lists the images of the split ("train" or "test") of the
// emoji package at p ("" means EmojiPath()) in the data set's order:
// entry i describes image i of data.Load("emoji:"+p, split).
func EmojiImages(p, split string) ([]EmojiImage, error) {
	s, err := openEmoji(p)
	if err != nil {
		return nil, err
	}
	var out []EmojiImage
	for _, im := range s.images {
		if im.Test == (split == "test") {
			out = append(out, im)
		}
	}
	return out, nil
}

// split copies the images of one split out of the cached set, so that a
// caller modifying its Dataset cannot corrupt the cache.
func (s *emojiSet) split(split string) *Dataset {
	test := split == "test"
	const sz = 3 * EmojiSide * EmojiSide
	d := &Dataset{Name: "emoji", C: 3, H: EmojiSide, W: EmojiSide, Grouped: true}
	for i, im := range s.images {
		if im.Test != test {
			continue
		}
		d.Pixels = append(d.Pixels, s.pixels[i*sz:(i+1)*sz]...)
		d.Labels = append(d.Labels, im.Label)
		d.N++
	}
	return d
}

// openEmoji returns the decoded package at p, from the cache when it was
// read before and has not changed since.
func openEmoji(p string) (*emojiSet, error) {
	def := p == ""
	if def {
		p = EmojiPath()
	}
	fi, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && (def || p == EmojiPath()) {
			return nil, fmt.Errorf("emoji: %s not found; fetch it with `%s` (or set DDPM_EMOJI to the .tgz or its unpacked folder)", p, EmojiFetch)
		}
		return nil, fmt.Errorf("emoji: %w", pathErr(p, err))
	}
	key, err := emojiKey(p, fi)
	if err != nil {
		return nil, err
	}
	emojiCache.Lock()
	defer emojiCache.Unlock()
	if s, ok := emojiCache.sets[key]; ok {
		return s, nil
	}
	var s *emojiSet
	if fi.IsDir() {
		s, err = readEmojiDir(p)
	} else {
		s, err = readEmojiArchive(p)
	}
	if err != nil {
		return nil, err
	}
	if emojiCache.sets == nil {
		emojiCache.sets = map[string]*emojiSet{}
	}
	emojiCache.sets[key] = s
	return s, nil
}

// emojiKey identifies a package by its absolute path and the size and
// modification time of the archive (of emoji.json for a folder).
func emojiKey(p string, fi os.FileInfo) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("emoji: %w", err)
	}
	if fi.IsDir() {
		root, err := emojiRoot(p)
		if err != nil {
			return "", err
		}
		if fi, err = os.Stat(filepath.Join(root, "emoji.json")); err != nil {
			return "", fmt.Errorf("emoji: %w", pathErr(filepath.Join(root, "emoji.json"), err))
		}
	}
	return fmt.Sprintf("%s\x00%d\x00%d", abs, fi.Size(), fi.ModTime().UnixNano()), nil
}

// emojiRoot is the folder holding emoji.json in an unpacked package: dir
// itself or its package/ subfolder (what `tar xzf` of the .tgz makes).
func emojiRoot(dir string) (string, error) {
	for _, r := range []string{dir, filepath.Join(dir, "package")} {
		if _, err := os.Stat(filepath.Join(r, "emoji.json")); err == nil {
			return r, nil
		}
	}
	return "", fmt.Errorf("emoji: %s holds no emoji.json (nor package/emoji.json); want %s or its unpacked folder", dir, EmojiArchive)
}

// readEmojiDir reads an unpacked package.
func readEmojiDir(dir string) (*emojiSet, error) {
	root, err := emojiRoot(dir)
	if err != nil {
		return nil, err
	}
	meta, err := os.ReadFile(filepath.Join(root, "emoji.json"))
	if err != nil {
		return nil, fmt.Errorf("emoji: %w", pathErr(filepath.Join(root, "emoji.json"), err))
	}
	images, err := emojiList(meta, filepath.Join(root, "emoji.json"))
	if err != nil {
		return nil, err
	}
	return decodeEmoji(images, func(file string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(emojiImageDir), file))
		if err != nil {
			return nil, fmt.Errorf("emoji: %w", pathErr(filepath.Join(root, filepath.FromSlash(emojiImageDir), file), err))
		}
		return b, nil
	})
}

// readEmojiArchive streams the .tgz once, keeping emoji.json and the bytes
// of the 64×64 PNGs (about 21 MB; the sprite sheets are skipped), and
// decodes them without writing anything to disk.
func readEmojiArchive(p string) (*emojiSet, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("emoji: %w", pathErr(p, err))
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("emoji: %s is not a gzip-compressed tar archive (want %s or its unpacked folder)", p, EmojiArchive)
	}
	tr := tar.NewReader(zr)
	var meta []byte
	pngs := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("emoji: %s: reading the archive: %w", p, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		// npm pack puts everything under package/.
		_, rel, ok := strings.Cut(path.Clean(h.Name), "/")
		switch {
		case !ok:
		case rel == "emoji.json":
			if meta, err = readLimited(tr, 64<<20); err != nil {
				return nil, fmt.Errorf("emoji: %s: %s: %w", p, h.Name, err)
			}
		case strings.HasPrefix(rel, emojiImageDir) && strings.HasSuffix(rel, ".png") && !strings.Contains(rel[len(emojiImageDir):], "/"):
			b, err := readLimited(tr, 1<<20)
			if err != nil {
				return nil, fmt.Errorf("emoji: %s: %s: %w", p, h.Name, err)
			}
			pngs[rel[len(emojiImageDir):]] = b
		}
	}
	if meta == nil {
		return nil, fmt.Errorf("emoji: %s holds no package/emoji.json (want %s)", p, EmojiArchive)
	}
	images, err := emojiList(meta, p+": emoji.json")
	if err != nil {
		return nil, err
	}
	return decodeEmoji(images, func(file string) ([]byte, error) {
		b, ok := pngs[file]
		if !ok {
			return nil, fmt.Errorf("emoji: %s: emoji.json lists %s%s, which the archive lacks", p, emojiImageDir, file)
		}
		return b, nil
	})
}

// readLimited reads all of r, refusing more than limit bytes.
func readLimited(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return b, nil
}

// emojiList turns emoji.json into the list of images in the data set's
// order (emoji by sort_order, each followed by its skin-tone variants in
// key order), with labels; emojiSplit marks the split once the pictures
// are decoded.
func emojiList(meta []byte, where string) ([]EmojiImage, error) {
	var entries []emojiEntry
	if err := json.Unmarshal(meta, &entries); err != nil {
		return nil, fmt.Errorf("emoji: %s: %w", where, err)
	}
	label := map[string]int{}
	for i, c := range emojiCategories {
		label[c] = i
	}
	slices.SortStableFunc(entries, func(a, b emojiEntry) int {
		return cmp.Or(cmp.Compare(a.SortOrder, b.SortOrder), strings.Compare(a.Unified, b.Unified))
	})
	var images []EmojiImage
	seen := map[string]bool{}
	for _, e := range entries {
		cat := e.Category
		if a, ok := emojiCategoryAlias[cat]; ok {
			cat = a
		}
		l, ok := label[cat]
		if !ok {
			return nil, fmt.Errorf("emoji: %s: %s (%s) has category %q, not one of %s", where, e.Unified, e.Name, e.Category, strings.Join(emojiCategories[:], ", "))
		}
		add := func(unified, file string) error {
			if file == "" || strings.ContainsAny(file, `/\`) {
				return fmt.Errorf("emoji: %s: %s has image %q", where, unified, file)
			}
			if seen[file] {
				return fmt.Errorf("emoji: %s: image %s is listed twice", where, file)
			}
			seen[file] = true
			images = append(images, EmojiImage{Name: e.Name, Unified: unified, Base: e.Unified, File: file, Category: cat, Label: l})
			return nil
		}
		if e.HasImg {
			if err := add(e.Unified, e.Image); err != nil {
				return nil, err
			}
		}
		for _, k := range slices.Sorted(maps.Keys(e.Skin)) {
			if v := e.Skin[k]; v.HasImg {
				if err := add(v.Unified, v.Image); err != nil {
					return nil, err
				}
			}
		}
	}
	if len(images) == 0 {
		return nil, fmt.Errorf("emoji: %s lists no emoji with a Google image", where)
	}
	return images, nil
}

// emojiSplit marks the test images. The unit of the split is a group: an
// emoji with its skin-tone variants and its gender and direction variants
// (those of one emojiDesign: RUNNER, MAN RUNNING, WOMAN RUNNING FACING
// RIGHT, …, drawn alike but for a detail), joined with every other emoji
// whose 32×32 picture is identical to one of its pictures (Noto draws some
// emoji the same: the flags of Norway, Bouvet Island and Svalbard; FAMILY:
// MAN, BOY and FAMILY: ADULT, CHILD; …), so that no test picture is also a
// training picture and no held-out emoji is a variant of a trained one. A group belongs to the category of its first emoji (in
// practice duplicates never cross categories). In each category whole
// groups are taken in the order of a hash (FNV-1a) of the group's first
// base code points, skipping any group that would overshoot, until the
// category's test images number round(EmojiTestShare × its images). The
// hash makes the choice look random but fixes it for good, independent of
// the order of emoji.json; the per-category target stratifies the split.
func emojiSplit(images []EmojiImage, pixels []uint8) {
	const sz = 3 * EmojiSide * EmojiSide
	// Union-find over the images: same base, or same picture.
	parent := make([]int, len(images))
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	union := func(a, b int) {
		a, b = find(a), find(b)
		if a != b {
			parent[max(a, b)] = min(a, b) // the root is the group's first image
		}
	}
	firstOfDesign := map[string]int{}
	firstOfPicture := map[string]int{}
	for i, im := range images {
		if j, ok := firstOfDesign[emojiDesign(im.Base)]; ok {
			union(i, j)
		} else {
			firstOfDesign[emojiDesign(im.Base)] = i
		}
		pic := string(pixels[i*sz : (i+1)*sz])
		if j, ok := firstOfPicture[pic]; ok {
			union(i, j)
		} else {
			firstOfPicture[pic] = i
		}
	}
	type group struct {
		hash uint64
		root int
		idx  []int
	}
	groups := map[int]*group{}
	byCat := map[int][]*group{}
	total := map[int]int{}
	for i := range images {
		r := find(i)
		g, ok := groups[r]
		if !ok {
			h := fnv.New64a()
			h.Write([]byte(strings.ToUpper(images[r].Base)))
			g = &group{hash: h.Sum64(), root: r}
			groups[r] = g
			byCat[images[r].Label] = append(byCat[images[r].Label], g)
		}
		g.idx = append(g.idx, i)
		total[images[i].Label]++
	}
	for c, gs := range byCat {
		slices.SortFunc(gs, func(a, b *group) int {
			return cmp.Or(cmp.Compare(a.hash, b.hash), strings.Compare(images[a.root].Base, images[b.root].Base))
		})
		target := int(math.Round(EmojiTestShare * float64(total[c])))
		n := 0
		for _, g := range gs {
			if n == target {
				break
			}
			if n+len(g.idx) > target {
				continue
			}
			n += len(g.idx)
			for _, i := range g.idx {
				images[i].Test = true
			}
		}
	}
}

// emojiDesignDrop are the code points that only vary an emoji's design:
// the zero-width joiner, the emoji presentation selector, the gender signs,
// the skin tones and "facing right" (a mirrored figure).
var emojiDesignDrop = map[string]bool{
	"200D": true, "FE0F": true, "2640": true, "2642": true, "27A1": true,
	"1F3FB": true, "1F3FC": true, "1F3FD": true, "1F3FE": true, "1F3FF": true,
}

// emojiDesignPeople maps the gendered people code points to one person of
// their age, and the gendered couples to their sequence form.
var emojiDesignPeople = map[string]string{
	"1F468": "P", "1F469": "P", "1F9D1": "P", // man, woman, person
	"1F466": "C", "1F467": "C", "1F9D2": "C", // boy, girl, child
	"1F474": "O", "1F475": "O", "1F9D3": "O", // old man, old woman, older person
	"1F491": "P 2764 P", "1F48F": "P 2764 1F48B P", // couple with heart, kiss
	"1F46B": "P 1F91D P", "1F46C": "P 1F91D P", "1F46D": "P 1F91D P", // holding hands
}

// emojiDesign is the code points of unified with the gender, skin-tone
// and direction variation taken out: the emoji of one design share it
// (1F3C3 for RUNNER, MAN RUNNING and WOMAN RUNNING FACING RIGHT; "P 1F4BB"
// for TECHNOLOGIST, MAN TECHNOLOGIST and WOMAN TECHNOLOGIST).
func emojiDesign(unified string) string {
	var t []string
	for _, cp := range strings.Split(strings.ToUpper(unified), "-") {
		if emojiDesignDrop[cp] {
			continue
		}
		if p, ok := emojiDesignPeople[cp]; ok {
			cp = p
		}
		t = append(t, cp)
	}
	if len(t) == 0 {
		return strings.ToUpper(unified)
	}
	return strings.Join(t, " ")
}

// decodeEmoji decodes the images' PNGs (bytes from read) in parallel,
// compositing each on white and shrinking it to 32×32.
func decodeEmoji(images []EmojiImage, read func(file string) ([]byte, error)) (*emojiSet, error) {
	const sz = 3 * EmojiSide * EmojiSide
	s := &emojiSet{images: images, pixels: make([]uint8, len(images)*sz)}
	// Read serially (map or file reads), decode in parallel.
	raw := make([][]byte, len(images))
	for i, im := range images {
		b, err := read(im.File)
		if err != nil {
			return nil, err
		}
		raw[i] = b
	}
	workers := min(runtime.GOMAXPROCS(0), len(images))
	errs := make([]error, len(images))
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				errs[i] = decodeEmojiPNG(s.pixels[i*sz:(i+1)*sz], raw[i], images[i].File)
			}
		})
	}
	for i := range images {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	emojiSplit(s.images, s.pixels)
	return s, nil
}

func decodeEmojiPNG(dst, b []byte, file string) error {
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("emoji: %s: %w", file, err)
	}
	if err := compositeDown(dst, img, EmojiSide); err != nil {
		return fmt.Errorf("emoji: %s: %w", file, err)
	}
	return nil
}

// compositeDown composites img over opaque white and shrinks it by an
// integer factor f = width/side with an area filter (each output pixel is
// the mean of an f×f block), writing side×side planar RGB into dst. Both
// steps are linear in the premultiplied colour, so they are done together
// in 16-bit precision with one rounding at the end: for each channel,
// out = round(Σ (c·α + 0xffff − α) / (f²·257)), where c·α is the
// premultiplied value color.RGBA returns. img must be square with a side
// that side divides.
func compositeDown(dst []uint8, img image.Image, side int) error {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if w != h || w < side || w%side != 0 {
		return fmt.Errorf("image is %d×%d, want a square whose side is a multiple of %d", w, h, side)
	}
	f := w / side
	plane := side * side
	den := uint64(f * f * 257)
	nrgba, _ := img.(*image.NRGBA)
	for oy := 0; oy < side; oy++ {
		for ox := 0; ox < side; ox++ {
			var sr, sg, sb uint64
			for dy := 0; dy < f; dy++ {
				y := b.Min.Y + oy*f + dy
				for dx := 0; dx < f; dx++ {
					x := b.Min.X + ox*f + dx
					var r, g, bl, a uint32
					if nrgba != nil {
						// color.NRGBA.RGBA without the interface call.
						p := nrgba.Pix[nrgba.PixOffset(x, y):]
						a = uint32(p[3]) * 0x101
						r = uint32(p[0]) * 0x101 * a / 0xffff
						g = uint32(p[1]) * 0x101 * a / 0xffff
						bl = uint32(p[2]) * 0x101 * a / 0xffff
					} else {
						r, g, bl, a = img.At(x, y).RGBA()
					}
					sr += uint64(r + 0xffff - a)
					sg += uint64(g + 0xffff - a)
					sb += uint64(bl + 0xffff - a)
				}
			}
			o := oy*side + ox
			dst[o] = uint8((sr + den/2) / den)
			dst[plane+o] = uint8((sg + den/2) / den)
			dst[2*plane+o] = uint8((sb + den/2) / den)
		}
	}
	return nil
}
