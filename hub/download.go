package hub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ddpm-go/ddpm/internal/progress"
)

// retryWait is the pause before resuming an interrupted download, times
// the attempt number (tests shorten it).
var retryWait = time.Second

// errRestart asks for the download to start again from byte 0 at once
// (the server's Range answer did not fit what is on disk).
var errRestart = errors.New("restart")

// transient marks a download failure worth resuming.
type transient struct{ err error }

func (t transient) Error() string { return t.err.Error() }
func (t transient) Unwrap() error { return t.err }

// partial is a blob being downloaded: blobs/<etag>.incomplete, the bytes
// it holds and their running sha256.
type partial struct {
	f    *os.File
	n    int64
	hash hash.Hash
}

// reset empties the partial file, to download from byte 0.
func (p *partial) reset() error {
	if err := p.f.Truncate(0); err != nil {
		return err
	}
	if _, err := p.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	p.n = 0
	p.hash.Reset()
	return nil
}

func (p *partial) Write(b []byte) (int, error) {
	n, err := p.f.Write(b)
	p.hash.Write(b[:n])
	p.n += int64(n)
	return n, err
}

// download fetches a blob into blob: to blob.incomplete (resumed when it
// exists), checked against the size and, for LFS files, the sha256, then
// renamed into place. An interrupted download keeps blob.incomplete.
func (c *Client) download(ctx context.Context, lbl, file string, m fileMeta, blob string) error {
	where := lbl + ": " + file
	inc := blob + ".incomplete"
	f, err := os.OpenFile(inc, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	p := &partial{f: f, hash: sha256.New()}
	closed := false
	defer func() {
		if !closed {
			f.Close()
		}
	}()
	// What an earlier try left: hashed, to go on from its end.
	if p.n, err = io.Copy(p.hash, f); err != nil {
		return fmt.Errorf("%s: reading %s: %w", where, inc, err)
	}
	if p.n > m.size {
		if err := p.reset(); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
	}
	bar := c.newMeter(file, m.size, p.n)
	restarts := 0
	for attempt := 0; p.n < m.size || m.size == 0 && attempt == 0; attempt++ {
		if err = c.get(ctx, m, p, bar); err == nil {
			break
		}
		if errors.Is(err, errRestart) {
			if restarts++; restarts > 2 {
				err = fmt.Errorf("%w: %s answers Range requests with bytes that do not fit", ErrProtocol, hostOf(m.location))
				break
			}
			if err = p.reset(); err != nil {
				break
			}
			bar.restart()
			continue
		}
		var t transient
		if !errors.As(err, &t) || attempt >= c.Retries || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(retryWait * time.Duration(attempt+1)):
		}
	}
	if err != nil {
		bar.abort()
		var t transient
		switch {
		case errors.Is(err, ErrCorrupt):
			f.Close()
			closed = true
			os.Remove(inc)
			return fmt.Errorf("%s: %w", where, err)
		case errors.As(err, &t) || ctx.Err() != nil:
			return fmt.Errorf("%s: %w at %d of %d bytes (%v); run again to resume from %s", where, ErrInterrupted, p.n, m.size, oneLine(err.Error()), inc)
		case isHTTPAnswer(err) || errors.Is(err, ErrProtocol):
			return fmt.Errorf("%s: %w", where, err)
		}
		return fmt.Errorf("%s: writing %s: %w", where, inc, err)
	}
	if p.n != m.size {
		f.Close()
		closed = true
		os.Remove(inc)
		return fmt.Errorf("%s: %w: %d bytes came, the hub announced %d; deleted it, run again", where, ErrCorrupt, p.n, m.size)
	}
	if m.lfs() {
		if got := hex.EncodeToString(p.hash.Sum(nil)); got != m.etag {
			f.Close()
			closed = true
			os.Remove(inc)
			return fmt.Errorf("%s: %w: sha256 %s, the hub announced %s; deleted it, run again", where, ErrCorrupt, got, m.etag)
		}
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	closed = true
	if err == nil {
		err = os.Rename(inc, blob)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	bar.finish()
	return nil
}

// httpAnswer is an error answer of the content server.
type httpAnswer struct{ msg string }

func (h httpAnswer) Error() string { return h.msg }

func isHTTPAnswer(err error) bool {
	var h httpAnswer
	return errors.As(err, &h)
}

// get makes one GET of the content, from p.n on when p holds bytes, and
// appends what comes to p.
func (c *Client) get(ctx context.Context, m fileMeta, p *partial, bar *meter) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stall := c.StallTimeout
	if stall <= 0 {
		stall = time.Duration(1<<63 - 1)
	}
	errStalled := fmt.Errorf("nothing received for %s", stall)
	watch := time.AfterFunc(stall, func() { cancel(errStalled) })
	defer watch.Stop()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.location, nil)
	if err != nil {
		return fmt.Errorf("%w: bad location on %s: %v", ErrProtocol, hostOf(m.location), err)
	}
	c.setHeaders(req)
	if p.n > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(p.n, 10)+"-")
	}
	resp, err := c.guarded().Do(req)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
			err = cause
		}
		return transient{err}
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusPartialContent:
		if start, ok := rangeStart(resp.Header.Get("Content-Range")); !ok || start != p.n {
			return errRestart
		}
	case http.StatusOK:
		if p.n > 0 { // the server ignored the Range: start again
			if err := p.reset(); err != nil {
				return err
			}
			bar.restart()
		}
	case http.StatusRequestedRangeNotSatisfiable:
		if p.n == m.size {
			return nil // all came before
		}
		return errRestart
	default:
		msg := fmt.Sprintf("%s answered %s", req.URL.Host, resp.Status)
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
			return transient{errors.New(msg)}
		}
		return httpAnswer{msg}
	}
	buf := make([]byte, 1<<20)
	for {
		k, rerr := resp.Body.Read(buf)
		if k > 0 {
			watch.Reset(stall)
			if p.n+int64(k) > m.size {
				return fmt.Errorf("%w: more than the %d bytes the hub announced came", ErrCorrupt, m.size)
			}
			if _, err := p.Write(buf[:k]); err != nil {
				return err
			}
			bar.set(p.n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
				rerr = cause
			}
			return transient{rerr}
		}
	}
	if p.n < m.size {
		return transient{io.ErrUnexpectedEOF}
	}
	return nil
}

// hostOf is the host of a URL, for messages: a CDN location's query is a
// signature not to print.
func hostOf(loc string) string {
	if u, err := url.Parse(loc); err == nil && u.Host != "" {
		return u.Host
	}
	return "the content server"
}

// rangeStart reads the first byte of "bytes 100-199/200".
func rangeStart(cr string) (int64, bool) {
	s, ok := strings.CutPrefix(strings.TrimSpace(cr), "bytes ")
	if !ok {
		return 0, false
	}
	s, _, ok = strings.Cut(s, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	return n, err == nil
}

// meter shows a download's progress: a bar in KiB or MiB on stderr
// (unless Quiet) and the Progress callback.
type meter struct {
	bar         *progress.Bar
	file        string
	total, unit int64
	shown       int
	cb          func(string, int64, int64)
}

func (c *Client) newMeter(file string, total, done int64) *meter {
	unit, name := int64(1<<10), "KiB"
	if total >= 64<<20 {
		unit, name = 1<<20, "MiB"
	}
	units := int((total + unit - 1) / unit)
	m := &meter{bar: progress.New(max(units, 1), file, name, c.Quiet), file: file, total: total, unit: unit, cb: c.Progress}
	m.shown = int(done / unit)
	m.bar.Begin(m.shown) // a resumed download's bytes do not count towards the rate
	if m.cb != nil {
		m.cb(file, done, total)
	}
	return m
}

func (m *meter) set(done int64) {
	if u := int(done / m.unit); u > m.shown {
		m.bar.Add(u - m.shown)
		m.shown = u
	}
	if m.cb != nil {
		m.cb(m.file, done, m.total)
	}
}

func (m *meter) restart() {
	m.shown = 0
	m.bar.Set(0)
	if m.cb != nil {
		m.cb(m.file, 0, m.total)
	}
}

func (m *meter) finish() {
	if full := int((m.total + m.unit - 1) / m.unit); full > m.shown {
		m.bar.Add(full - m.shown)
		m.shown = full
	}
	m.bar.Finish()
}

// abort ends a bar drawn in place with a newline, so that the error
// printed next starts a line of its own.
func (m *meter) abort() {
	if m.bar.Terminal() {
		io.WriteString(os.Stderr, "\n")
	}
}
