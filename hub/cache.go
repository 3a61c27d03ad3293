package hub

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// cachedCommit is the commit a revision names in the cache: the revision
// itself when it is a commit sha, else what refs/<revision> holds.
func (c *Client) cachedCommit(repo, rev string) (string, bool) {
	if IsCommit(rev) {
		return rev, true
	}
	b, err := os.ReadFile(filepath.Join(c.RepoDir(repo), "refs", filepath.FromSlash(rev)))
	if err != nil {
		return "", false
	}
	commit := strings.TrimSpace(string(b))
	return commit, IsCommit(commit)
}

// snapshotDir is the folder of a commit's files.
func (c *Client) snapshotDir(repo, commit string) string {
	return filepath.Join(c.RepoDir(repo), "snapshots", commit)
}

// pointerPath is a file's place in a commit's snapshot.
func (c *Client) pointerPath(repo, commit, file string) string {
	return filepath.Join(c.snapshotDir(repo, commit), filepath.FromSlash(file))
}

// isFile reports whether p is a regular file, through links: a link to a
// blob that was deleted is not.
func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// localFiles lists the files of a snapshot folder (slash-separated, sorted),
// links whose blob is gone left out.
func localFiles(dir string) []string {
	var files []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 && !isFile(p) {
			return nil
		}
		if !d.Type().IsRegular() && d.Type()&fs.ModeSymlink == 0 || strings.HasPrefix(d.Name(), ".copy-") {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err == nil {
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	slices.Sort(files)
	return files
}

// fromCache resolves a snapshot from the cache alone: the commit the
// revision names there and the files sel picks from those present.
// reason says what is missing when it fails.
func (c *Client) fromCache(repo, rev string, sel Selector) (dir string, reason string) {
	commit, ok := c.cachedCommit(repo, rev)
	if !ok {
		if IsCommit(rev) {
			return "", "no snapshot of " + rev + " in " + c.RepoDir(repo)
		}
		return "", "no refs/" + rev + " in " + c.RepoDir(repo)
	}
	dir = c.snapshotDir(repo, commit)
	files := localFiles(dir)
	if len(files) == 0 {
		return "", "no snapshot of " + commit + " in " + c.RepoDir(repo)
	}
	picked, err := sel(files)
	if err != nil {
		return "", err.Error() + " in " + dir
	}
	for _, f := range picked {
		if !isFile(c.pointerPath(repo, commit, f)) {
			return "", "no " + f + " in " + dir
		}
	}
	return dir, ""
}

// checkFile refuses a repository file path that would leave the snapshot
// folder once joined to it.
func checkFile(lbl, file string) error {
	clean := path.Clean(file)
	if file == "" || clean != file || path.IsAbs(file) || clean == "." || strings.HasPrefix(clean, "../") || clean == ".." || strings.Contains(file, "\\") || strings.ContainsRune(file, 0) {
		return fmt.Errorf("%s: %w: the hub listed an unsafe file path %q", lbl, ErrProtocol, file)
	}
	return nil
}

// symlink is os.Symlink; tests replace it to act as a file system
// without links.
var symlink = os.Symlink

// link makes the snapshot entry pointer a relative link to blob, as
// huggingface_hub does (../../blobs/<etag>, one more ../ per folder), or
// a copy of blob where links cannot be made.
func link(blob, pointer string) error {
	if err := os.MkdirAll(filepath.Dir(pointer), 0o755); err != nil {
		return err
	}
	rel, err := filepath.Rel(filepath.Dir(pointer), blob)
	if err != nil {
		rel = blob
	}
	if err := os.Remove(pointer); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	err = symlink(rel, pointer)
	if err == nil {
		return nil
	}
	if errors.Is(err, fs.ErrExist) && sameFile(blob, pointer) {
		return nil // made meanwhile by another process
	}
	return copyFile(blob, pointer)
}

func sameFile(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// copyFile copies src to dst through a temporary file renamed into place.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".copy-*")
	if err != nil {
		return err
	}
	_, err = io.Copy(tmp, in)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// writeRef records that rev names commit (refs/<rev>, the 40 hex digits
// and no newline), when rev is a branch or tag and the record differs.
func (c *Client) writeRef(repo, rev, commit string) error {
	if rev == commit || IsCommit(rev) {
		return nil
	}
	p := filepath.Join(c.RepoDir(repo), "refs", filepath.FromSlash(rev))
	if b, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(b)) == commit {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".ref-*")
	if err != nil {
		return err
	}
	_, err = tmp.WriteString(commit)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), p)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}
