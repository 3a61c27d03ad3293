package weights

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"

	st "github.com/nlpodyssey/safetensors"
)

// wrapWriter lets tests inject a failing writer between the serialiser and
// the temporary file; production code leaves it nil.
var wrapWriter func(io.Writer) io.Writer

// Save writes tensors and metadata to path atomically: the file is written to
// a temporary file in the same directory, flushed to disk (fsync), closed and
// renamed over path, and the directory is fsynced so the rename itself is
// durable. A crash or an error at any point therefore leaves either the old
// file or the complete new one, never a torn checkpoint; on error the
// temporary file is removed. Tensors are stored as their DType says (F32,
// F16 from F32 data, or I64).
func Save(path string, tensors map[string]Tensor, metadata map[string]string) error {
	views, err := toViews(tensors)
	if err != nil {
		return fmt.Errorf("weights: save %s: %w", path, err)
	}
	if err := writeAtomic(path, func(w io.Writer) error {
		return st.SerializeToWriter(views, metadata, w)
	}); err != nil {
		return fmt.Errorf("weights: save %s: %w", path, err)
	}
	return nil
}

func writeAtomic(path string, write func(io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	var w io.Writer = f
	if wrapWriter != nil {
		w = wrapWriter(w)
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	if err = write(bw); err != nil {
		return err
	}
	if err = bw.Flush(); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	// CreateTemp makes the file 0600; a checkpoint is ordinary data.
	if err = f.Chmod(0o644); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	// Persist the directory entry. Some filesystems refuse to fsync a
	// directory; the data is already safe then, so that is not an error.
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
