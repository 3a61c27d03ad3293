package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// userAgent identifies the client to the hub.
var userAgent = "ddpm-go-hub/1 (" + runtime.Version() + ")"

// defaultHTTP has the connect and TLS limits of http.DefaultTransport and
// a limit on waiting for response headers; a download's body is watched
// by StallTimeout instead of an overall limit.
var defaultHTTP = func() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = 60 * time.Second
	return &http.Client{Transport: t}
}()

// RepoInfo is what GET /api/models/{repo}/revision/{rev} answers, in part.
type RepoInfo struct {
	ID       string    `json:"id"`
	SHA      string    `json:"sha"`
	Private  bool      `json:"private"`
	Siblings []Sibling `json:"siblings"`
}

// Sibling is one file of a revision.
type Sibling struct {
	RFilename string `json:"rfilename"`
}

// Files lists the revision's file paths.
func (r *RepoInfo) Files() []string {
	out := make([]string, 0, len(r.Siblings))
	for _, s := range r.Siblings {
		out = append(out, s.RFilename)
	}
	return out
}

// Info asks the hub which commit revision names and which files it holds.
func (c *Client) Info(ctx context.Context, repo, revision string) (*RepoInfo, error) {
	if revision == "" {
		revision = DefaultRevision
	}
	lbl := label(repo, revision)
	if err := checkRepo(repo); err != nil {
		return nil, err
	}
	if err := checkRevision(repo, revision); err != nil {
		return nil, err
	}
	if c.Offline {
		return nil, fmt.Errorf("%s: %w: HF_HUB_OFFLINE is set, so the hub is not asked", lbl, ErrOffline)
	}
	u := c.Endpoint + "/api/models/" + escapeRepo(repo) + "/revision/" + url.PathEscape(revision)
	ctx, cancel := c.metaContext(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", lbl, ErrProtocol, err)
	}
	c.setHeaders(req)
	resp, err := c.guarded().Do(req)
	if err != nil {
		return nil, c.netError(lbl, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, c.statusError(lbl, repo, revision, "", resp)
	}
	var info RepoInfo
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&info); err != nil {
		return nil, fmt.Errorf("%s: %w: reading %s: %v", lbl, ErrProtocol, u, err)
	}
	if !IsCommit(info.SHA) {
		return nil, fmt.Errorf("%s: %w: %s gave no commit sha (got %q)", lbl, ErrProtocol, u, oneLine(info.SHA))
	}
	return &info, nil
}

// Snapshot makes sure the files sel picks from the revision are in the
// cache and returns the snapshot folder, <cache>/models--org--name/
// snapshots/<commit>, where they lie under their repository paths.
// sel nil picks every file; Pipeline picks what a DDPM model needs.
//
// A commit sha whose cached snapshot satisfies sel costs no request; a
// branch or tag costs the revision request, plus a HEAD and a GET per
// file missing from the cache. Offline, or when the hub cannot be
// reached, the revision is resolved through refs/ and sel is applied to
// the cached files.
func (c *Client) Snapshot(ctx context.Context, repo, revision string, sel Selector) (string, error) {
	if revision == "" {
		revision = DefaultRevision
	}
	if sel == nil {
		sel = All
	}
	lbl := label(repo, revision)
	if err := checkRepo(repo); err != nil {
		return "", err
	}
	if err := checkRevision(repo, revision); err != nil {
		return "", err
	}
	if IsCommit(revision) {
		if dir, reason := c.fromCache(repo, revision, sel); reason == "" {
			return dir, nil
		}
	}
	if c.Offline {
		dir, reason := c.fromCache(repo, revision, sel)
		if reason != "" {
			return "", fmt.Errorf("%s: %w: %s, and HF_HUB_OFFLINE is set (unset it to download)", lbl, ErrOffline, reason)
		}
		return dir, nil
	}
	info, err := c.Info(ctx, repo, revision)
	if err != nil {
		return c.fallback(lbl, repo, revision, sel, err)
	}
	files, err := sel(info.Files())
	if err != nil {
		return "", fmt.Errorf("%s: %s at commit %s", lbl, err, info.SHA)
	}
	for _, f := range files {
		if err := checkFile(lbl, f); err != nil {
			return "", err
		}
	}
	for _, f := range files {
		if isFile(c.pointerPath(repo, info.SHA, f)) {
			continue
		}
		meta, err := c.head(ctx, lbl, repo, info.SHA, f)
		if err != nil {
			return "", unreachable(c, lbl, repo, err)
		}
		if _, err := c.place(ctx, lbl, repo, info.SHA, f, meta); err != nil {
			return "", err
		}
	}
	if err := c.writeRef(repo, revision, info.SHA); err != nil {
		return "", fmt.Errorf("%s: recording refs/%s: %w", lbl, revision, err)
	}
	return c.snapshotDir(repo, info.SHA), nil
}

// File makes sure one file of the revision is in the cache and returns its
// path in the snapshot folder, as huggingface_hub's hf_hub_download.
func (c *Client) File(ctx context.Context, repo, revision, file string) (string, error) {
	if revision == "" {
		revision = DefaultRevision
	}
	lbl := label(repo, revision)
	if err := checkRepo(repo); err != nil {
		return "", err
	}
	if err := checkRevision(repo, revision); err != nil {
		return "", err
	}
	if err := checkFile(lbl, file); err != nil {
		return "", err
	}
	if IsCommit(revision) {
		if p := c.pointerPath(repo, revision, file); isFile(p) {
			return p, nil
		}
	}
	if c.Offline {
		p, reason := c.cachedFile(repo, revision, file)
		if reason != "" {
			return "", fmt.Errorf("%s: %w: %s, and HF_HUB_OFFLINE is set (unset it to download)", lbl, ErrOffline, reason)
		}
		return p, nil
	}
	meta, err := c.head(ctx, lbl, repo, revision, file)
	if err != nil {
		if !fallsBack(err) {
			return "", err
		}
		p, reason := c.cachedFile(repo, revision, file)
		if reason != "" {
			return "", unreachable(c, lbl, repo, err)
		}
		return p, nil
	}
	p, err := c.place(ctx, lbl, repo, meta.commit, file, meta)
	if err != nil {
		return "", err
	}
	if err := c.writeRef(repo, revision, meta.commit); err != nil {
		return "", fmt.Errorf("%s: recording refs/%s: %w", lbl, revision, err)
	}
	return p, nil
}

// cachedFile finds a file of a revision in the cache alone.
func (c *Client) cachedFile(repo, rev, file string) (string, string) {
	commit, ok := c.cachedCommit(repo, rev)
	if !ok {
		return "", "no refs/" + rev + " in " + c.RepoDir(repo)
	}
	p := c.pointerPath(repo, commit, file)
	if !isFile(p) {
		return "", "no " + file + " in " + c.snapshotDir(repo, commit)
	}
	return p, ""
}

// fallback uses the cache when the revision request failed for a reason
// the cache can stand in for (no network, the hub down, a private repo
// without a token), as huggingface_hub does, and reports err otherwise.
func (c *Client) fallback(lbl, repo, rev string, sel Selector, err error) (string, error) {
	if !fallsBack(err) {
		return "", err
	}
	dir, reason := c.fromCache(repo, rev, sel)
	if reason == "" {
		return dir, nil
	}
	return "", unreachable(c, lbl, repo, err)
}

// fallsBack reports whether err leaves the cache worth trying: anything
// but a revision or file the hub says does not exist.
func fallsBack(err error) bool {
	return !errors.Is(err, ErrRevisionNotFound) && !errors.Is(err, ErrFileNotFound) && !errors.Is(err, ErrProtocol) && !errors.Is(err, context.Canceled)
}

// unreachable adds to a failed request that the cache could not stand in.
func unreachable(c *Client, lbl, repo string, err error) error {
	if !errors.Is(err, ErrUnreachable) {
		return err // the hub answered: its answer is the error
	}
	return fmt.Errorf("%w, and %s holds no copy; connect, or fill the cache elsewhere and set HF_HUB_OFFLINE=1", err, c.RepoDir(repo))
}

// fileMeta is what a HEAD of a file's resolve URL tells.
type fileMeta struct {
	commit   string // X-Repo-Commit
	etag     string // X-Linked-Etag, else ETag, unquoted
	size     int64  // X-Linked-Size, else Content-Length
	location string // where to GET the content (a CDN for LFS files)
}

// lfs reports whether the etag is a sha256 (an LFS file) that the content
// must hash to.
func (m fileMeta) lfs() bool { return sha256Re.MatchString(m.etag) }

// head asks for a file's metadata without following the redirect to its
// content (but following relative ones, a renamed repository's).
func (c *Client) head(ctx context.Context, lbl, repo, rev, file string) (fileMeta, error) {
	u := c.Endpoint + "/" + escapeRepo(repo) + "/resolve/" + url.PathEscape(rev) + "/" + escapeFile(file)
	ctx, cancel := c.metaContext(ctx)
	defer cancel()
	cl := c.noRedirect()
	for hops := 0; ; hops++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodHead, u, nil)
		if err != nil {
			return fileMeta{}, fmt.Errorf("%s: %w: %v", lbl, ErrProtocol, err)
		}
		c.setHeaders(req)
		resp, err := cl.Do(req)
		if err != nil {
			return fileMeta{}, c.netError(lbl, err)
		}
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		redirect := resp.StatusCode >= 300 && resp.StatusCode < 400
		if redirect && loc == "" || !redirect && resp.StatusCode != http.StatusOK {
			return fileMeta{}, c.statusError(lbl, repo, rev, file, resp)
		}
		var locURL *url.URL
		if redirect {
			l, err := req.URL.Parse(loc)
			if err != nil {
				return fileMeta{}, fmt.Errorf("%s: %s: %w: bad Location %q", lbl, file, ErrProtocol, oneLine(loc))
			}
			locURL = l
			if rel, _ := url.Parse(loc); rel != nil && rel.Host == "" {
				if hops >= 10 {
					return fileMeta{}, fmt.Errorf("%s: %s: %w: too many redirects", lbl, file, ErrProtocol)
				}
				u = l.String()
				continue
			}
		}
		m := fileMeta{commit: resp.Header.Get("X-Repo-Commit"), location: u}
		if locURL != nil {
			m.location = locURL.String()
		}
		m.etag = resp.Header.Get("X-Linked-Etag")
		if m.etag == "" {
			m.etag = resp.Header.Get("ETag")
		}
		m.etag = strings.Trim(strings.TrimPrefix(strings.TrimSpace(m.etag), "W/"), `"`)
		size := resp.Header.Get("X-Linked-Size")
		if size == "" {
			size = resp.Header.Get("Content-Length")
		}
		m.size = -1
		if n, err := strconv.ParseInt(strings.TrimSpace(size), 10, 64); err == nil && n >= 0 {
			m.size = n
		}
		switch {
		case !IsCommit(m.commit):
			return m, fmt.Errorf("%s: %s: %w: %s gave no X-Repo-Commit header (check HF_ENDPOINT and any proxy)", lbl, file, ErrProtocol, c.Endpoint)
		case !safeEtag.MatchString(m.etag):
			return m, fmt.Errorf("%s: %s: %w: no usable ETag (%q)", lbl, file, ErrProtocol, oneLine(m.etag))
		case m.size < 0:
			return m, fmt.Errorf("%s: %s: %w: no X-Linked-Size or Content-Length", lbl, file, ErrProtocol)
		}
		return m, nil
	}
}

// place puts a file of commit into the cache: the blob (downloaded unless
// present), then the snapshot link. It returns the link's path.
func (c *Client) place(ctx context.Context, lbl, repo, commit, file string, m fileMeta) (string, error) {
	repoDir := c.RepoDir(repo)
	blob := filepath.Join(repoDir, "blobs", m.etag)
	pointer := c.pointerPath(repo, commit, file)
	if isFile(pointer) {
		return pointer, nil
	}
	if err := os.MkdirAll(filepath.Dir(blob), 0o755); err != nil {
		return "", fmt.Errorf("%s: %s: %w", lbl, file, err)
	}
	unlock, err := lockFile(ctx, filepath.Join(c.CacheDir, ".locks", FolderName(repo), m.etag+".lock"))
	if err != nil {
		return "", fmt.Errorf("%s: %s: locking: %w", lbl, file, err)
	}
	defer unlock()
	if isFile(pointer) { // placed meanwhile, by another process
		return pointer, nil
	}
	if !isFile(blob) {
		if err := c.download(ctx, lbl, file, m, blob); err != nil {
			return "", err
		}
	}
	if err := link(blob, pointer); err != nil {
		return "", fmt.Errorf("%s: %s: %w", lbl, file, err)
	}
	return pointer, nil
}

// metaContext bounds a metadata request by MetadataTimeout.
func (c *Client) metaContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.MetadataTimeout > 0 {
		return context.WithTimeout(ctx, c.MetadataTimeout)
	}
	return context.WithCancel(ctx)
}

func (c *Client) setHeaders(req *http.Request) {
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept-Encoding", "identity") // the size the hub states is the size that comes
	if c.Token != "" && c.endpointHost(req.URL) {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
}

// endpointHost reports whether u is on the endpoint's host (scheme, host
// and port), the only one that gets the token.
func (c *Client) endpointHost(u *url.URL) bool {
	e, err := url.Parse(c.Endpoint)
	return err == nil && strings.EqualFold(e.Scheme, u.Scheme) && strings.EqualFold(e.Host, u.Host)
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return defaultHTTP
}

// noRedirect is the HTTP client that returns redirects as they come.
func (c *Client) noRedirect() *http.Client {
	cl := *c.httpClient()
	cl.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &cl
}

// guarded is the HTTP client that follows redirects but drops the token
// on leaving the endpoint's host (Go alone keeps it for another port of
// the same host name).
func (c *Client) guarded() *http.Client {
	cl := *c.httpClient()
	orig := cl.CheckRedirect
	cl.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		if !c.endpointHost(req.URL) {
			req.Header.Del("Authorization")
		}
		if orig != nil {
			return orig(req, via)
		}
		return nil
	}
	return &cl
}

// netError describes a request that got no answer.
func (c *Client) netError(lbl string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: %w", lbl, context.Canceled)
	}
	what := err.Error()
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		what = "no answer in time"
	}
	return fmt.Errorf("%s: %w: cannot reach %s (%s)", lbl, ErrUnreachable, c.Endpoint, oneLine(what))
}

// statusError turns an HTTP error answer into one line, read as
// huggingface_hub reads X-Error-Code.
func (c *Client) statusError(lbl, repo, rev, file string, resp *http.Response) error {
	code := resp.Header.Get("X-Error-Code")
	msg := oneLine(resp.Header.Get("X-Error-Message"))
	where := lbl
	if file != "" {
		where += ": " + file
	}
	switch {
	case code == "RevisionNotFound":
		return fmt.Errorf("%s: %w: %q", label(repo, ""), ErrRevisionNotFound, rev)
	case code == "EntryNotFound":
		return fmt.Errorf("%s: %w in the repository", where, ErrFileNotFound)
	case code == "GatedRepo":
		tok := "set HF_TOKEN"
		if c.Token != "" {
			tok = "check that HF_TOKEN's account was granted access"
		}
		return fmt.Errorf("%s: %w: accept its conditions on %s/%s and %s", label(repo, ""), ErrGated, c.Endpoint, repo, tok)
	case code == "RepoNotFound" || resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusNotFound && file == "":
		if c.Token == "" {
			return fmt.Errorf("%s: %w (or private: set HF_TOKEN)", label(repo, ""), ErrRepoNotFound)
		}
		return fmt.Errorf("%s: %w (or private, and HF_TOKEN gives no access)", label(repo, ""), ErrRepoNotFound)
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%s: %w in the repository", where, ErrFileNotFound)
	case resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%s: forbidden (%s): HF_TOKEN lacks the permission", where, msg)
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		if msg == "" {
			msg = resp.Status
		}
		return fmt.Errorf("%s: %w: %s answered %s", where, ErrUnreachable, c.Endpoint, msg)
	}
	if msg == "" {
		msg = resp.Status
	}
	return fmt.Errorf("%s: %w: %s answered %s", where, ErrProtocol, c.Endpoint, msg)
}
