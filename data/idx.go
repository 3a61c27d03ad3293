package data

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// IDX magic numbers: two zero bytes, the element type (0x08 = unsigned
// byte) and the number of dimensions.
const (
	idxImageMagic = 0x00000803
	idxLabelMagic = 0x00000801
)

// Limits on what an IDX header may declare. They exist so that a corrupt or
// hostile header cannot make the reader attempt a multi-gigabyte allocation
// or overflow the size computation; real image sets are far below them.
const (
	maxIDXItems = 1 << 26 // 67M images or labels
	maxIDXSide  = 1 << 14 // 16384 pixels per side
	maxIDXBytes = 1 << 33 // 8 GiB of pixel data
)

// readChunk is the largest buffer allocated before the data to fill it has
// actually arrived; beyond that the buffer grows only as bytes are read, so
// a header that promises more than the stream holds costs nothing.
const readChunk = 64 << 10

// ReadIDXImages reads an IDX3 image file (magic 0x00000803: count, rows,
// columns, then count·rows·columns pixel bytes) from r, gzip-compressed or
// raw; gzip is detected by its 0x1f8b magic rather than by file name so that
// both the .gz files that usually ship and decompressed copies work.
//
// It returns a single-channel [Dataset] with no labels and an empty Name.
// It never panics and rejects headers that disagree with the data that
// follows (too little or too much), so it is safe on untrusted input.
func ReadIDXImages(r io.Reader) (*Dataset, error) {
	r, err := maybeGunzip(r)
	if err != nil {
		return nil, fmt.Errorf("idx images: %w", err)
	}
	dims, err := readIDXHeader(r, idxImageMagic)
	if err != nil {
		return nil, fmt.Errorf("idx images: %w", err)
	}
	n, h, w := dims[0], dims[1], dims[2]
	if n > maxIDXItems {
		return nil, fmt.Errorf("idx images: header declares %d images, more than the supported %d", n, maxIDXItems)
	}
	if h == 0 || w == 0 || h > maxIDXSide || w > maxIDXSide {
		return nil, fmt.Errorf("idx images: header declares %d×%d images (each side must be 1..%d)", h, w, maxIDXSide)
	}
	size := int64(n) * int64(h) * int64(w)
	if size > maxIDXBytes {
		return nil, fmt.Errorf("idx images: header declares %d bytes of pixels, more than the supported %d", size, int64(maxIDXBytes))
	}
	pix, err := readExactly(r, size)
	if err != nil {
		return nil, fmt.Errorf("idx images: header declares %d images of %d×%d: %w", n, h, w, err)
	}
	return &Dataset{N: int(n), C: 1, H: int(h), W: int(w), Pixels: pix}, nil
}

// ReadIDXLabels reads an IDX1 label file (magic 0x00000801: count, then one
// byte per label) from r, gzip-compressed or raw. Like [ReadIDXImages] it
// never panics and checks the declared count against the data. It does not
// check the label range, which depends on the data set.
func ReadIDXLabels(r io.Reader) ([]int, error) {
	r, err := maybeGunzip(r)
	if err != nil {
		return nil, fmt.Errorf("idx labels: %w", err)
	}
	dims, err := readIDXHeader(r, idxLabelMagic)
	if err != nil {
		return nil, fmt.Errorf("idx labels: %w", err)
	}
	n := dims[0]
	if n > maxIDXItems {
		return nil, fmt.Errorf("idx labels: header declares %d labels, more than the supported %d", n, maxIDXItems)
	}
	raw, err := readExactly(r, int64(n))
	if err != nil {
		return nil, fmt.Errorf("idx labels: header declares %d labels: %w", n, err)
	}
	labels := make([]int, len(raw))
	for i, b := range raw {
		labels[i] = int(b)
	}
	return labels, nil
}

// maybeGunzip returns a reader of the decompressed stream if r starts with
// the gzip magic, and of r itself otherwise.
func maybeGunzip(r io.Reader) (io.Reader, error) {
	br := bufio.NewReader(r)
	magic, err := br.Peek(2)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("corrupt gzip data: %w", err)
		}
		return gzipErrReader{zr}, nil
	}
	return br, nil
}

// gzipErrReader labels decompression failures (bad checksum, truncated
// stream) so that the user can tell a damaged download from a wrong file.
type gzipErrReader struct{ r io.Reader }

func (g gzipErrReader) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	if err != nil && err != io.EOF {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = errors.New("gzip stream is truncated")
		}
		err = fmt.Errorf("corrupt gzip data: %w", err)
	}
	return n, err
}

// readIDXHeader reads the magic number and the dimension sizes, checking
// that the magic is the expected one and explaining the most likely
// mix-ups (a label file given as images and vice versa, a non-IDX file).
func readIDXHeader(r io.Reader, want uint32) ([]uint32, error) {
	var magic uint32
	if err := binary.Read(r, binary.BigEndian, &magic); err != nil {
		return nil, fmt.Errorf("reading magic number: %w", eofAsTruncated(err))
	}
	if magic != want {
		switch {
		case magic>>8 != 0x08:
			return nil, fmt.Errorf("bad magic number 0x%08x, want 0x%08x (not an IDX file of unsigned bytes)", magic, want)
		case want == idxImageMagic && magic == idxLabelMagic:
			return nil, fmt.Errorf("file has 1 dimension, want 3 (is this a label file?)")
		case want == idxLabelMagic && magic == idxImageMagic:
			return nil, fmt.Errorf("file has 3 dimensions, want 1 (is this an image file?)")
		default:
			return nil, fmt.Errorf("file has %d dimensions, want %d (magic 0x%08x)", magic&0xff, want&0xff, magic)
		}
	}
	dims := make([]uint32, want&0xff)
	if err := binary.Read(r, binary.BigEndian, dims); err != nil {
		return nil, fmt.Errorf("reading dimensions: %w", eofAsTruncated(err))
	}
	return dims, nil
}

// readExactly reads exactly n bytes and requires the stream to end there:
// trailing bytes mean the header does not describe the file, which is as
// much a sign of corruption as missing ones.
func readExactly(r io.Reader, n int64) ([]byte, error) {
	buf, err := readUpTo(r, n+1)
	if err != nil {
		return nil, err
	}
	switch {
	case int64(len(buf)) < n:
		return nil, fmt.Errorf("truncated: only %d of %d data bytes present", len(buf), n)
	case int64(len(buf)) > n:
		return nil, fmt.Errorf("unexpected data after the %d bytes the header declares", n)
	}
	return buf, nil
}

// readUpTo reads until EOF or until limit bytes have been read, growing the
// buffer as data arrives instead of trusting any declared size.
func readUpTo(r io.Reader, limit int64) ([]byte, error) {
	buf := make([]byte, 0, min(limit, readChunk))
	for int64(len(buf)) < limit {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(limit, max(2*int64(cap(buf)), 1)))
			copy(grown, buf)
			buf = grown
		}
		end := min(int64(cap(buf)), limit)
		m, err := r.Read(buf[len(buf):end])
		buf = buf[:len(buf)+m]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	return buf, nil
}

func eofAsTruncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("file is truncated")
	}
	return err
}
