package data

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeEmoji is one emoji of a fake package: its code, category, colour and
// skin-tone variants (each drawn in its own colour).
type fakeEmoji struct {
	unified, category string
	col               color.NRGBA
	skins             int
}

// fakeEmojiPNG is a 64×64 image filled with col, except its top-left 2×2
// block, which holds four known pixels for the compositing test.
func fakeEmojiPNG(t *testing.T, col color.NRGBA) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, 64, 64))
	for y := range 64 {
		for x := range 64 {
			img.SetNRGBA(x, y, col)
		}
	}
	img.SetNRGBA(0, 0, color.NRGBA{255, 0, 0, 255}) // opaque red
	img.SetNRGBA(1, 0, color.NRGBA{0, 255, 0, 0})   // fully transparent (its colour must not show)
	img.SetNRGBA(0, 1, color.NRGBA{0, 0, 255, 128}) // half-transparent blue
	img.SetNRGBA(1, 1, color.NRGBA{0, 0, 0, 255})   // opaque black
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// fakeEmojiFiles returns the files of a fake package (paths relative to
// package/): emoji.json and one PNG per image.
func fakeEmojiFiles(t *testing.T, emoji []fakeEmoji) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	var entries []map[string]any
	for i, e := range emoji {
		name := strings.ToLower(e.unified) + ".png"
		files[emojiImageDir+name] = fakeEmojiPNG(t, e.col)
		rec := map[string]any{
			"name": "EMOJI " + e.unified, "unified": e.unified, "image": name,
			"category": e.category, "subcategory": "x", "sort_order": len(emoji) - i, // reversed: the loader sorts
			"has_img_google": true, "has_img_apple": true,
		}
		if e.skins > 0 {
			sv := map[string]any{}
			for k := range e.skins {
				key := fmt.Sprintf("1F3F%c", 'B'+k)
				u := e.unified + "-" + key
				file := strings.ToLower(u) + ".png"
				c := e.col
				c.R = uint8(20 * (k + 1))
				files[emojiImageDir+file] = fakeEmojiPNG(t, c)
				sv[key] = map[string]any{"unified": u, "image": file, "has_img_google": true}
			}
			rec["skin_variations"] = sv
		}
		entries = append(entries, rec)
	}
	// An emoji without a Google image is left out.
	entries = append(entries, map[string]any{"name": "NO IMAGE", "unified": "2FFFF", "image": "2ffff.png",
		"category": "Objects", "sort_order": 999, "has_img_google": false})
	b, err := json.Marshal(entries)
	if err != nil {
		t.Fatal(err)
	}
	files["emoji.json"] = b
	return files
}

// writeFakeTgz writes files as npm pack would (under package/, gzipped
// tar), with an unrelated big file and a sprite sheet to skip.
func writeFakeTgz(t *testing.T, path string, files map[string][]byte) {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	add := func(name string, body []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: "package/" + name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	add("README.md", []byte("fake"))
	add("img/google/sheets/64.png", bytes.Repeat([]byte{1}, 5000))
	for name, body := range files {
		add(name, body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fakeEmojiSet is a package of 60 emoji in three categories, a third of
// them with five skin tones, and Component, which joins People & Body.
func fakeEmojiSet() []fakeEmoji {
	var emoji []fakeEmoji
	cats := []string{"Smileys & Emotion", "People & Body", "Flags"}
	for i := range 60 {
		e := fakeEmoji{unified: fmt.Sprintf("1F%03X", 0x600+i), category: cats[i%3], col: color.NRGBA{uint8(i), uint8(3 * i), 200, 255}}
		if i%3 == 1 && i%2 == 1 {
			e.skins = 5
		}
		emoji = append(emoji, e)
	}
	emoji = append(emoji, fakeEmoji{unified: "1F9B0", category: "Component", col: color.NRGBA{9, 9, 9, 255}})
	// Two flags drawn like flag 2 (and so like each other): one group.
	for _, u := range []string{"1F1E6", "1F1E7"} {
		emoji = append(emoji, fakeEmoji{unified: u, category: "Flags", col: emoji[2].col})
	}
	// Runners of three genders and two directions: one design, one group.
	for i, u := range []string{"1F3C3", "1F3C3-200D-2640-FE0F", "1F3C3-200D-2642-FE0F", "1F3C3-200D-27A1-FE0F", "1F3C3-200D-2640-FE0F-200D-27A1-FE0F"} {
		emoji = append(emoji, fakeEmoji{unified: u, category: "People & Body", col: color.NRGBA{250, uint8(10 * i), 7, 255}})
	}
	return emoji
}

func TestEmojiFake(t *testing.T) {
	emoji := fakeEmojiSet()
	files := fakeEmojiFiles(t, emoji)
	dir := t.TempDir()
	tgz := filepath.Join(dir, EmojiArchive)
	writeFakeTgz(t, tgz, files)

	train, err := Load("emoji:"+tgz, "train")
	if err != nil {
		t.Fatal(err)
	}
	test, err := Load("emoji:"+tgz, "test")
	if err != nil {
		t.Fatal(err)
	}
	// 68 emoji, 10 of them with 5 variants: 118 images.
	if train.N+test.N != 118 || train.C != 3 || train.H != 32 || train.W != 32 || train.Name != "emoji" {
		t.Fatalf("train %d + test %d images of %d×%d×%d (%s), want 118 of 3×32×32", train.N, test.N, train.C, train.H, train.W, train.Name)
	}

	// Compositing on white and the 2×2 area filter: the top-left output
	// pixel averages red, white (transparent), blue at α = 128 over white,
	// and black.
	a := 128.0 * 257 / 65535
	blueOnWhite := func(c float64) float64 { return c*a + 255*(1-a) }
	want := []float64{
		(255 + 255 + blueOnWhite(0) + 0) / 4, // R
		(0 + 255 + blueOnWhite(0) + 0) / 4,   // G
		(0 + 255 + blueOnWhite(255) + 0) / 4, // B
	}
	for c := range 3 {
		got := float64(train.Pixels[c*32*32])
		if d := got - want[c]; d < -0.5 || d > 0.5 {
			t.Errorf("channel %d of the composited, shrunk corner pixel: %v, want %.2f", c, got, want[c])
		}
	}

	// Images, labels and the split against the listing.
	all := map[string]EmojiImage{}
	for _, split := range []string{"train", "test"} {
		list, err := EmojiImages(tgz, split)
		if err != nil {
			t.Fatal(err)
		}
		ds := map[string]*Dataset{"train": train, "test": test}[split]
		if len(list) != ds.N {
			t.Fatalf("%s: %d listed, %d loaded", split, len(list), ds.N)
		}
		for i, im := range list {
			all[im.Unified] = im
			if im.Test != (split == "test") || ds.Labels[i] != im.Label || EmojiCategories()[im.Label] != im.Category {
				t.Errorf("%s image %d: %+v, label %d", split, i, im, ds.Labels[i])
			}
			// Every pixel but the corner block is the emoji's colour.
			px := ds.Image(i)
			r := px[5*32+5]
			if im.Unified != im.Base {
				if k := strings.LastIndexByte(im.Unified, '-'); r != uint8(20*(im.Unified[k+5]-'B'+1)) {
					t.Errorf("variant %s: red %d", im.Unified, r)
				}
			}
		}
	}
	if _, ok := all["2FFFF"]; ok {
		t.Error("an emoji without a Google image was loaded")
	}
	if c := all["1F9B0"]; c.Category != "People & Body" || c.Label != 1 {
		t.Errorf("Component emoji loaded as %+v, want People & Body", c)
	}
	if a, b, c := all["1F1E6"], all["1F1E7"], all[emoji[2].unified]; a.Test != b.Test || a.Test != c.Test {
		t.Errorf("identical pictures on both sides of the split: %+v, %+v, %+v", a, b, c)
	}
	for _, u := range []string{"1F3C3-200D-2640-FE0F", "1F3C3-200D-2642-FE0F", "1F3C3-200D-27A1-FE0F", "1F3C3-200D-2640-FE0F-200D-27A1-FE0F"} {
		if all[u].Test != all["1F3C3"].Test {
			t.Errorf("runner %s and 1F3C3 on both sides of the split", u)
		}
	}
	// Order: by sort_order (the fake reverses it), variants after their base.
	list, _ := EmojiImages(tgz, "train")
	for i := 1; i < len(list); i++ {
		if list[i].Base == list[i-1].Base && list[i].Unified < list[i-1].Unified {
			t.Errorf("variants out of order: %s before %s", list[i-1].Unified, list[i].Unified)
		}
	}
	// Emoji never straddle; each category holds out round(10 %).
	testOf := map[string]bool{}
	perCat := map[string][2]int{}
	for _, im := range all {
		if v, ok := testOf[im.Base]; ok && v != im.Test {
			t.Errorf("emoji %s straddles the split", im.Base)
		}
		testOf[im.Base] = im.Test
		c := perCat[im.Category]
		c[0]++
		if im.Test {
			c[1]++
		}
		perCat[im.Category] = c
	}
	for cat, c := range perCat {
		if want := int(0.1*float64(c[0]) + 0.5); c[1] != want {
			t.Errorf("%s: %d of %d images held out, want %d", cat, c[1], c[0], want)
		}
	}

	// The unpacked folder (and its parent, as tar xzf leaves it) gives the
	// same data.
	root := filepath.Join(dir, "unpacked", "package")
	for name, body := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{root, filepath.Dir(root)} {
		d, err := Load("emoji:"+p, "test")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(d.Pixels, test.Pixels) || fmt.Sprint(d.Labels) != fmt.Sprint(test.Labels) {
			t.Errorf("folder %s differs from the archive", p)
		}
	}

	// A second load comes from the cache but is a copy.
	again, err := Load("emoji:"+tgz, "test", WithLimit(3))
	if err != nil {
		t.Fatal(err)
	}
	if again.N != 3 || !bytes.Equal(again.Pixels, test.Pixels[:3*3072]) {
		t.Errorf("cached load: %d images", again.N)
	}
	again.Pixels[0] ^= 0xff
	if third, _ := Load("emoji:"+tgz, "test"); third.Pixels[0] != test.Pixels[0] {
		t.Error("modifying a loaded data set changed the cache")
	}
}

func TestEmojiErrors(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("DDPM_EMOJI", "")
	_, err := Load("emoji", "train")
	want := filepath.Join(home, ".cache", "ddpm", EmojiArchive) + " not found; fetch it with `" + EmojiFetch + "`"
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
		t.Errorf("missing package: %v\nwant one line with %q", err, want)
	}
	if EmojiFetch != "mkdir -p ~/.cache/ddpm && cd ~/.cache/ddpm && npm pack emoji-datasource-google@16.0.0" {
		t.Errorf("EmojiFetch = %q", EmojiFetch)
	}

	dir := t.TempDir()
	t.Setenv("DDPM_EMOJI", filepath.Join(dir, "elsewhere.tgz"))
	if p := EmojiPath(); p != filepath.Join(dir, "elsewhere.tgz") {
		t.Errorf("EmojiPath with DDPM_EMOJI set: %s", p)
	}

	files := fakeEmojiFiles(t, fakeEmojiSet()[:5])
	notGzip := filepath.Join(dir, "plain.tgz")
	os.WriteFile(notGzip, []byte("not an archive"), 0o644)
	noPNG := filepath.Join(dir, "nopng.tgz")
	delete(files, emojiImageDir+"1f600.png")
	writeFakeTgz(t, noPNG, files)
	noJSON := filepath.Join(dir, "nojson.tgz")
	delete(files, "emoji.json")
	writeFakeTgz(t, noJSON, files)
	for p, want := range map[string]string{
		notGzip:                        "not a gzip-compressed tar archive",
		noPNG:                          "lists img/google/64/1f600.png, which the archive lacks",
		noJSON:                         "holds no package/emoji.json",
		t.TempDir():                    "holds no emoji.json",
		filepath.Join(dir, "none.tgz"): "no such file",
	} {
		if _, err := Load("emoji:"+p, "test"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", filepath.Base(p), err, want)
		}
	}
}

// TestEmojiReal checks the real package when it is installed (CI fetches
// it): the image count, the split sizes and that no emoji straddles.
func TestEmojiReal(t *testing.T) {
	p := EmojiPath()
	if _, err := os.Stat(p); err != nil {
		t.Skipf("%s not installed (%s)", EmojiArchive, EmojiFetch)
	}
	train, err := EmojiImages(p, "train")
	if err != nil {
		t.Fatal(err)
	}
	test, err := EmojiImages(p, "test")
	if err != nil {
		t.Fatal(err)
	}
	if len(train) != 3407 || len(test) != 379 {
		t.Errorf("train %d, test %d images; want 3407 and 379 (3786 in all)", len(train), len(test))
	}
	inTest := map[string]bool{}
	for _, im := range test {
		inTest[im.Base] = true
	}
	for _, im := range train {
		if inTest[im.Base] {
			t.Errorf("%s (%s) straddles the split", im.Base, im.Name)
		}
	}
	d, err := Load("emoji", "test")
	if err != nil {
		t.Fatal(err)
	}
	if d.N != len(test) || d.C != 3 || d.H != 32 {
		t.Errorf("loaded %d images of %d×%d", d.N, d.C, d.H)
	}
	// No test picture is also a training picture (some emoji are drawn
	// alike: Norway, Bouvet Island and Svalbard share a flag).
	tr, err := Load("emoji", "train")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for i := range tr.N {
		seen[string(tr.Image(i))] = i
	}
	for i := range d.N {
		if j, ok := seen[string(d.Image(i))]; ok {
			t.Errorf("test image %s is train image %s", test[i].Unified, train[j].Unified)
		}
	}
	// The splits are stored in category order, so evaluations take their
	// first images through SampleOrder: 64 of them cover the categories.
	for _, s := range []*Dataset{d, tr} {
		cats := map[int]bool{}
		for _, i := range s.SampleOrder()[:64] {
			cats[s.Labels[i]] = true
		}
		if !s.Grouped || len(cats) < 6 {
			t.Errorf("grouped %v; the first 64 images in sample order span %d categories, want ≥ 6", s.Grouped, len(cats))
		}
	}
}

func TestEmojiDesign(t *testing.T) {
	for _, c := range []struct{ a, b string }{
		{"1F3C3", "1F3C3-200D-2642-FE0F-200D-27A1-FE0F"}, // runner, man running facing right
		{"1F9D1-200D-1F4BB", "1F469-1F3FD-200D-1F4BB"},   // technologist, woman technologist (medium skin)
		{"1F46A", "1F46A"},                                         // family
		{"1F468-200D-1F466", "1F9D1-200D-1F9D2"},                   // family: man, boy and adult, child
		{"1F491", "1F469-200D-2764-FE0F-200D-1F468"},               // couple with heart
		{"1F46C-1F3FB", "1F9D1-1F3FF-200D-1F91D-200D-1F9D1-1F3FB"}, // holding hands
	} {
		if emojiDesign(c.a) != emojiDesign(c.b) {
			t.Errorf("%s (%s) and %s (%s) differ", c.a, emojiDesign(c.a), c.b, emojiDesign(c.b))
		}
	}
	for _, c := range []struct{ a, b string }{
		{"1F3C3", "1F3C4"}, // runner, surfer
		{"1F468-200D-1F466", "1F468-200D-1F466-200D-1F466"}, // one child, two
		{"1F1F3-1F1F4", "1F1F8-1F1EF"},                      // Norway, Svalbard (their pictures join them)
	} {
		if emojiDesign(c.a) == emojiDesign(c.b) {
			t.Errorf("%s and %s share the design %s", c.a, c.b, emojiDesign(c.a))
		}
	}
}
