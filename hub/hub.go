// Package hub fetches models from the Hugging Face hub (model sources
// written hf:org/name[@revision]) into the cache huggingface_hub and
// diffusers share, in their layout, so that each sees what the other
// downloaded:
//
//	$HF_HUB_CACHE/models--org--name/
//	    refs/main                       the commit main pointed to, 40 hex, no newline
//	    blobs/<etag>                    file contents: git blob sha1, or sha256 for LFS files
//	    snapshots/<commit>/unet/config.json -> ../../../blobs/<etag>
//
// The cache is $HF_HUB_CACHE, else $HF_HOME/hub, else
// $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub. A
// revision resolved through refs/, or a commit whose snapshot holds the
// files, is used without a request; HF_HUB_OFFLINE=1 makes no request at
// all. Downloads go to blobs/<etag>.incomplete (resumed with a Range
// request the next time), are checked against the size and, for LFS
// files, the sha256 the hub announced, and are renamed into place before
// the snapshot link and then the ref are written.
//
// The protocol is huggingface_hub's: GET /api/models/{repo}/revision/{rev}
// for the commit and the file list, HEAD /{repo}/resolve/{commit}/{file}
// (redirects not followed) for X-Repo-Commit, X-Linked-Etag/ETag,
// X-Linked-Size/Content-Length and the Location of LFS files, then GET of
// that location. HF_TOKEN goes along as a bearer token to the endpoint's
// host only, never to a CDN host.
package hub

import (
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// DefaultEndpoint is the hub used when HF_ENDPOINT is not set.
const DefaultEndpoint = "https://huggingface.co"

// DefaultRevision is the revision of a source that names none.
const DefaultRevision = "main"

// Errors a caller may test with errors.Is; every error this package
// returns is one line that says which repository, revision and file.
var (
	ErrRepoNotFound     = errors.New("repository not found")
	ErrRevisionNotFound = errors.New("revision not found")
	ErrFileNotFound     = errors.New("file not found")
	ErrGated            = errors.New("gated repository")
	ErrOffline          = errors.New("not in the cache (offline)")
	ErrUnreachable      = errors.New("hub unreachable")
	ErrInterrupted      = errors.New("download interrupted")
	ErrCorrupt          = errors.New("download corrupt")
	ErrProtocol         = errors.New("not a Hugging Face hub answer")
)

// Client fetches files from a hub into a cache. NewClient fills it from
// the environment; a Client written as a literal needs Endpoint and
// CacheDir, and its zero timeouts and Retries mean none.
type Client struct {
	// Endpoint is the hub's base URL, without a trailing slash
	// ($HF_ENDPOINT, default https://huggingface.co).
	Endpoint string
	// Token is sent as "Authorization: Bearer <Token>" to the endpoint's
	// host ($HF_TOKEN, else the token file `hf auth login` writes).
	Token string
	// CacheDir is the hub cache (see CacheDir).
	CacheDir string
	// Offline makes no request: only the cache is used ($HF_HUB_OFFLINE).
	Offline bool
	// HTTP sends the requests (nil: a client with connect and
	// response-header timeouts and no overall one).
	HTTP *http.Client
	// Quiet hides the progress bar drawn on stderr while a file downloads.
	Quiet bool
	// Progress, when set, is told the bytes of the file downloaded so far.
	Progress func(file string, done, total int64)
	// MetadataTimeout bounds the revision and HEAD requests
	// ($HF_HUB_ETAG_TIMEOUT seconds, default 10 s).
	MetadataTimeout time.Duration
	// StallTimeout gives up on a download that receives nothing for this
	// long, keeping what came for the next try ($HF_HUB_DOWNLOAD_TIMEOUT
	// seconds, default 10 s).
	StallTimeout time.Duration
	// Retries is how many times an interrupted download is resumed within
	// one call before the error is returned (default 3).
	Retries int
}

// NewClient makes a client from the environment, as huggingface_hub reads
// it: HF_ENDPOINT, HF_TOKEN (then HUGGING_FACE_HUB_TOKEN, then the file
// $HF_TOKEN_PATH or $HF_HOME/token), the cache (see CacheDir),
// HF_HUB_OFFLINE (1, true, yes or on; TRANSFORMERS_OFFLINE when unset),
// HF_HUB_ETAG_TIMEOUT and HF_HUB_DOWNLOAD_TIMEOUT.
func NewClient() *Client {
	c := &Client{
		Endpoint:        strings.TrimRight(envOr("HF_ENDPOINT", DefaultEndpoint), "/"),
		Token:           envToken(),
		CacheDir:        CacheDir(),
		Offline:         isTrue(envOr("HF_HUB_OFFLINE", os.Getenv("TRANSFORMERS_OFFLINE"))),
		MetadataTimeout: envSeconds("HF_HUB_ETAG_TIMEOUT", 10*time.Second),
		StallTimeout:    envSeconds("HF_HUB_DOWNLOAD_TIMEOUT", 10*time.Second),
		Retries:         3,
	}
	if isTrue(os.Getenv("HF_HUB_DISABLE_PROGRESS_BARS")) {
		c.Quiet = true
	}
	return c
}

// CacheDir is the hub cache huggingface_hub uses: $HF_HUB_CACHE, else
// $HUGGINGFACE_HUB_CACHE (its older name), else $HF_HOME/hub, where
// HF_HOME defaults to $XDG_CACHE_HOME/huggingface, else
// ~/.cache/huggingface. A leading ~ and $VARS are expanded.
func CacheDir() string {
	if d := os.Getenv("HF_HUB_CACHE"); d != "" {
		return expandPath(d)
	}
	if d := os.Getenv("HUGGINGFACE_HUB_CACHE"); d != "" {
		return expandPath(d)
	}
	return filepath.Join(hfHome(), "hub")
}

// hfHome is $HF_HOME, else $XDG_CACHE_HOME/huggingface, else
// ~/.cache/huggingface.
func hfHome() string {
	if d := os.Getenv("HF_HOME"); d != "" {
		return expandPath(d)
	}
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		base = filepath.Join("~", ".cache")
	}
	return expandPath(filepath.Join(base, "huggingface"))
}

// envToken is the token huggingface_hub would send: HF_TOKEN, the older
// HUGGING_FACE_HUB_TOKEN, then the token file of `hf auth login`.
func envToken() string {
	for _, k := range []string{"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"} {
		if t := strings.TrimSpace(os.Getenv(k)); t != "" {
			return t
		}
	}
	path := os.Getenv("HF_TOKEN_PATH")
	if path == "" {
		path = filepath.Join(hfHome(), "token")
	}
	b, err := os.ReadFile(expandPath(path))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// expandPath expands a leading ~ and $VAR or ${VAR} as Python's
// expanduser and expandvars do (an unset variable stays as written).
func expandPath(p string) string {
	p = os.Expand(p, func(k string) string {
		if v, ok := os.LookupEnv(k); ok {
			return v
		}
		return "${" + k + "}"
	})
	if p == "~" || strings.HasPrefix(p, "~/") || strings.HasPrefix(p, "~"+string(filepath.Separator)) {
		if home, err := os.UserHomeDir(); err == nil {
			p = filepath.Join(home, p[1:])
		}
	}
	return p
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func envSeconds(k string, def time.Duration) time.Duration {
	if s, err := strconv.ParseFloat(os.Getenv(k), 64); err == nil && s > 0 {
		return time.Duration(s * float64(time.Second))
	}
	return def
}

// isTrue is huggingface_hub's reading of a boolean variable.
func isTrue(v string) bool {
	switch strings.ToUpper(strings.TrimSpace(v)) {
	case "1", "ON", "YES", "TRUE":
		return true
	}
	return false
}

var (
	repoPart  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	commitRe  = regexp.MustCompile(`^[0-9a-f]{40}$`)
	sha256Re  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	safeEtag  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	revBadSeq = []string{"..", "//", "\\"}
)

// ParseRef splits a model source "org/name[@revision]" (an "hf:" prefix
// is accepted and dropped) into the repository id and the revision, "main"
// when none is given. The revision may be a branch, a tag, a commit sha or
// a ref such as refs/pr/1.
func ParseRef(s string) (repo, revision string, err error) {
	s = strings.TrimPrefix(s, "hf:")
	repo, revision, hasRev := strings.Cut(s, "@")
	if hasRev && revision == "" {
		return "", "", errors.New("hf:" + repo + ": empty revision after @")
	}
	if !hasRev {
		revision = DefaultRevision
	}
	if err := checkRepo(repo); err != nil {
		return "", "", err
	}
	if err := checkRevision(repo, revision); err != nil {
		return "", "", err
	}
	return repo, revision, nil
}

// checkRepo accepts the repository ids the hub does: "name" or
// "org/name", letters, digits, '-', '_' and '.', neither "--" nor "..".
func checkRepo(repo string) error {
	parts := strings.Split(repo, "/")
	bad := repo == "" || len(repo) > 96 || len(parts) > 2 || strings.Contains(repo, "--") || strings.Contains(repo, "..")
	for _, p := range parts {
		if !repoPart.MatchString(p) || strings.HasSuffix(p, ".") || strings.HasSuffix(p, "-") {
			bad = true
		}
	}
	if bad {
		return errors.New("hf:" + repo + ": not a repository id (org/name: letters, digits, '-', '_', '.')")
	}
	return nil
}

// checkRevision refuses revisions that could not be a git ref or would
// leave refs/ once used as a path there.
func checkRevision(repo, rev string) error {
	bad := rev == "" || strings.HasPrefix(rev, "/") || strings.HasSuffix(rev, "/") || strings.ContainsFunc(rev, func(r rune) bool { return r <= ' ' || r == 0x7f })
	for _, s := range revBadSeq {
		bad = bad || strings.Contains(rev, s)
	}
	if bad {
		return errors.New("hf:" + repo + ": not a revision: " + strconv.Quote(rev))
	}
	return nil
}

// IsCommit reports whether rev is a full commit sha (40 hex digits),
// which names the same files for ever.
func IsCommit(rev string) bool { return commitRe.MatchString(rev) }

// FolderName is the repository's folder in the cache: models--org--name.
func FolderName(repo string) string {
	return "models--" + strings.ReplaceAll(repo, "/", "--")
}

// RepoDir is the repository's folder in the client's cache.
func (c *Client) RepoDir(repo string) string {
	return filepath.Join(c.CacheDir, FolderName(repo))
}

// label names a repository and revision in messages: hf:org/name, with
// @revision unless it is main.
func label(repo, rev string) string {
	if rev == "" || rev == DefaultRevision {
		return "hf:" + repo
	}
	return "hf:" + repo + "@" + rev
}

// escapeRepo escapes each segment of a repository id for a URL path.
func escapeRepo(repo string) string {
	parts := strings.Split(repo, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// escapeFile escapes a file path for a URL, keeping its slashes (as
// huggingface_hub's quote(filename)).
func escapeFile(path string) string { return escapeRepo(path) }

// oneLine keeps server-provided text on one line.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
