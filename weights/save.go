package weights

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

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
	return SaveKeep(path, "", tensors, metadata)
}

// SaveKeep is Save that also keeps the file it replaces: once the new file
// is complete on disk, the old one at path (if any) becomes prev, replacing
// any older prev, and only then does the new file take path's name. The
// directory thus always holds two complete generations after the second
// save, so that a file damaged after it was written (a bad disk block, a
// truncated copy) still leaves one to fall back to. prev == "" keeps
// nothing, which is Save.
//
// The old file is hard-linked to prev, so path never stops naming a
// complete file; on a file system without hard links it is renamed, and a
// crash between that rename and the next one leaves only prev (readers
// that fall back to prev handle this).
func SaveKeep(path, prev string, tensors map[string]Tensor, metadata map[string]string) error {
	views, err := toViews(tensors)
	if err != nil {
		return fmt.Errorf("weights: save %s: %w", path, err)
	}
	if err := writeAtomic(path, prev, func(w io.Writer) error {
		return st.SerializeToWriter(views, metadata, w)
	}); err != nil {
		return fmt.Errorf("weights: save %s: %w", path, err)
	}
	return nil
}

// tempPattern names the temporary files writeAtomic creates for path's base
// name, so RemoveTemps can find the ones a killed process left behind.
func tempPattern(base string) string { return "." + base + ".tmp-*" }

func writeAtomic(path, prev string, write func(io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, tempPattern(base))
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
	if prev != "" {
		if err = keep(path, prev); err != nil {
			return fmt.Errorf("keep the previous file as %s: %w", prev, err)
		}
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	// Persist the directory entries. Some filesystems refuse to fsync a
	// directory; the data is already safe then, so that is not an error.
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// keep makes prev name the file now at path, if there is one.
func keep(path, prev string) error {
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	// Link to a fresh name first and rename that over prev: os.Link fails
	// if its target exists, and the rename replaces the old prev in one
	// atomic step.
	dir, base := filepath.Split(prev)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, tempPattern(base))
	if err != nil {
		return err
	}
	link := f.Name()
	f.Close()
	os.Remove(link)
	if err := os.Link(path, link); err == nil {
		err := os.Rename(link, prev)
		// If prev already was a link to path's file (a save killed
		// between this step and the next), rename succeeds without
		// doing anything and link is still there.
		os.Remove(link)
		return err
	}
	return os.Rename(path, prev)
}

// RemoveTemps deletes the temporary files that Save and SaveKeep create
// next to path (".<name>.tmp-*"). A process killed while writing leaves
// one behind; it is never a complete file under its real name, so it is
// safe to delete as long as no other process is saving to path right now.
func RemoveTemps(path string) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	prefix := "." + base + ".tmp-"
	var first error
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) && e.Type().IsRegular() {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}
