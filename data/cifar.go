package data

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// CIFAR-10 binary layout: each record is one label byte followed by a
// 32×32 image stored as a red, a green and a blue plane.
const (
	cifarSide       = 32
	cifarPixels     = 3 * cifarSide * cifarSide
	cifarRecord     = 1 + cifarPixels
	cifarPerBatch   = 10000
	cifarClasses    = 10
	cifarTrainFiles = 5
)

// ReadCIFARBatch reads CIFAR-10 binary records (1 label byte + 3072 pixel
// bytes, already planar R, G, B) from r until EOF. The stream must hold a
// whole, non-zero number of records, at most the 10 000 of one batch file,
// and every label must be below 10; anything else means the file is not a
// CIFAR-10 batch (CIFAR-100's binary files, for example, have two label
// bytes). It never panics and reads at most one byte past the largest
// valid batch, so it is safe on untrusted input.
func ReadCIFARBatch(r io.Reader) (*Dataset, error) {
	raw, err := readUpTo(r, cifarPerBatch*cifarRecord+1)
	if err != nil {
		return nil, fmt.Errorf("cifar batch: %w", err)
	}
	switch {
	case len(raw) == 0:
		return nil, fmt.Errorf("cifar batch: file is empty")
	case len(raw) > cifarPerBatch*cifarRecord:
		return nil, fmt.Errorf("cifar batch: more than %d records (%d bytes)", cifarPerBatch, cifarPerBatch*cifarRecord)
	case len(raw)%cifarRecord != 0:
		return nil, fmt.Errorf("cifar batch: %d bytes is not a whole number of %d-byte records", len(raw), cifarRecord)
	}
	n := len(raw) / cifarRecord
	d := &Dataset{
		Name:   "cifar10",
		N:      n,
		C:      3,
		H:      cifarSide,
		W:      cifarSide,
		Pixels: make([]uint8, n*cifarPixels),
		Labels: make([]int, n),
	}
	for i := 0; i < n; i++ {
		rec := raw[i*cifarRecord : (i+1)*cifarRecord]
		if rec[0] >= cifarClasses {
			return nil, fmt.Errorf("cifar batch: record %d has label %d, want 0..%d (not a CIFAR-10 binary file?)", i, rec[0], cifarClasses-1)
		}
		d.Labels[i] = int(rec[0])
		copy(d.Pixels[i*cifarPixels:], rec[1:])
	}
	return d, nil
}

// loadCIFAR10 reads the train (data_batch_1..5.bin) or test
// (test_batch.bin) split of the CIFAR-10 binary version from dir. The files
// are checked to be exactly 10 000 records before reading so that a
// truncated download is reported by name and size.
func loadCIFAR10(dir, split string) (*Dataset, error) {
	var files []string
	switch split {
	case "train":
		for i := 1; i <= cifarTrainFiles; i++ {
			files = append(files, fmt.Sprintf("data_batch_%d.bin", i))
		}
	case "test":
		files = []string{"test_batch.bin"}
	}
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("cifar10: %w", pathErr(dir, err))
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("cifar10: %s is not a directory (want the folder holding data_batch_1.bin … test_batch.bin, e.g. cifar-10-batches-bin)", dir)
	}
	out := &Dataset{Name: "cifar10", C: 3, H: cifarSide, W: cifarSide}
	out.Pixels = make([]uint8, 0, len(files)*cifarPerBatch*cifarPixels)
	out.Labels = make([]int, 0, len(files)*cifarPerBatch)
	for _, name := range files {
		path := filepath.Join(dir, name)
		b, err := readCIFARFile(path)
		if err != nil {
			return nil, err
		}
		out.Pixels = append(out.Pixels, b.Pixels...)
		out.Labels = append(out.Labels, b.Labels...)
		out.N += b.N
	}
	return out, nil
}

func readCIFARFile(path string) (*Dataset, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cifar10: %w (want the CIFAR-10 binary version, cifar-10-binary.tar.gz, extracted)", pathErr(path, err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("cifar10: %w", pathErr(path, err))
	}
	if want := int64(cifarPerBatch * cifarRecord); fi.Size() != want {
		return nil, fmt.Errorf("cifar10: %s is %d bytes, want %d (10000 records of %d bytes; truncated or not the binary version?)", path, fi.Size(), want, cifarRecord)
	}
	b, err := ReadCIFARBatch(f)
	if err != nil {
		return nil, fmt.Errorf("cifar10: %s: %w", path, err)
	}
	return b, nil
}
