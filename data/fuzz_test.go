package data

import (
	"bytes"
	"testing"
)

// FuzzReadIDXImages checks that the IDX image reader never panics and that
// whatever it accepts is internally consistent.
func FuzzReadIDXImages(f *testing.F) {
	valid := idxImages(2, 3, 2, []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	f.Add(valid)
	f.Add(gz(valid))
	f.Add(valid[:len(valid)-1])
	f.Add(idxLabels([]byte{1, 2, 3}))
	f.Add(idxImages(1<<20, 1<<14, 1<<14, nil))
	f.Add(gz(idxImages(100000, 28, 28, nil)))
	f.Add([]byte{0x1f, 0x8b})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ReadIDXImages(bytes.NewReader(b))
		if err != nil {
			if d != nil {
				t.Fatal("non-nil data set with an error")
			}
			return
		}
		if d.C != 1 || len(d.Pixels) != d.N*d.H*d.W {
			t.Fatalf("inconsistent result N=%d H=%d W=%d len=%d", d.N, d.H, d.W, len(d.Pixels))
		}
		if _, err := ReadIDXLabels(bytes.NewReader(b)); err == nil {
			t.Fatal("the same bytes parsed as both images and labels")
		}
	})
}

// FuzzReadIDXLabels does the same for label files.
func FuzzReadIDXLabels(f *testing.F) {
	f.Add(idxLabels([]byte{5, 0, 4}))
	f.Add(gz(idxLabels([]byte{5, 0, 4})))
	f.Add(idxLabels([]byte{5, 0, 4})[:9])
	f.Add(idxImages(1, 1, 1, []byte{0}))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ReadIDXLabels(bytes.NewReader(b))
		if err == nil && len(l) > len(b) && !(len(b) > 1 && b[0] == 0x1f && b[1] == 0x8b) {
			t.Fatalf("%d labels from %d raw bytes", len(l), len(b))
		}
	})
}

// FuzzReadCIFARBatch checks that the CIFAR-10 reader never panics and only
// accepts whole records with valid labels.
func FuzzReadCIFARBatch(f *testing.F) {
	f.Add(cifarRecords(1, func(int) byte { return 3 }))
	f.Add(cifarRecords(2, func(i int) byte { return byte(9 * i) }))
	f.Add(cifarRecords(1, func(int) byte { return 10 }))
	f.Add(cifarRecords(1, func(int) byte { return 0 })[:100])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ReadCIFARBatch(bytes.NewReader(b))
		if err != nil {
			return
		}
		if d.N*cifarRecord != len(b) || len(d.Pixels) != d.N*cifarPixels || len(d.Labels) != d.N {
			t.Fatalf("inconsistent result N=%d from %d bytes", d.N, len(b))
		}
		for _, l := range d.Labels {
			if l < 0 || l > 9 {
				t.Fatalf("label %d accepted", l)
			}
		}
	})
}
