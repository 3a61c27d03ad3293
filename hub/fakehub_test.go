package hub

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fixtureDir holds the files of a tiny diffusers DDPM pipeline.
var fixtureDir = filepath.Join("..", "..", "shared", "peers", "diffusers", "tiny")

// fixtureFiles are the files of the fake repository, as in
// google/ddpm-cifar10-32.
var fixtureFiles = []string{
	"model_index.json",
	"scheduler/scheduler_config.json",
	"unet/config.json",
	"unet/diffusion_pytorch_model.safetensors",
}

const (
	testRepo   = "google/ddpm-cifar10-32"
	testCommit = "267b167dc01f0e4e61923ea244e8b988f84deb80"
	oldCommit  = "1111111111111111111111111111111111111111"
)

// readFixture reads the fixture files, skipping the test without them.
func readFixture(t testing.TB) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	for _, f := range fixtureFiles {
		b, err := os.ReadFile(filepath.Join(fixtureDir, filepath.FromSlash(f)))
		if err != nil {
			t.Skipf("fixture missing: %v", err)
		}
		files[f] = b
	}
	return files
}

// gitBlobSHA1 is the git object id of a file, the hub's ETag for files
// not in LFS.
func gitBlobSHA1(b []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(b))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// fakeHub answers as huggingface.co does, for one repository: the
// revision API, HEAD and GET of /{repo}/resolve/{rev}/{file} (LFS files
// redirected to /cdn/<sha256>, on this server or on cdn when set) and the
// CDN, which honours Range.
type fakeHub struct {
	t      *testing.T
	srv    *httptest.Server
	cdn    *httptest.Server // a foreign CDN host; nil: /cdn on srv
	repo   string
	commit string
	refs   map[string]string // branch or tag → commit
	files  map[string][]byte
	lfs    map[string]bool
	// extra siblings listed by the API (but not served)
	extra []string
	// listed replaces fixtureFiles in the API's file list when set
	listed []string
	// renamed repositories: old id → new id
	renamed map[string]string

	mu          sync.Mutex
	log         []string          // "METHOD path [Range]" of every request, both hosts
	auth        map[string]string // last Authorization seen per "host path"
	cuts        int               // CDN answers still to cut off after cutAt bytes
	cutAt       int
	ignoreRange bool
	stall       bool // a cut answer hangs instead of dropping the connection
	corrupt     bool // the CDN serves other bytes of the right size
	private     bool // every request without the token is refused
	token       string
}

func newFakeHub(t *testing.T) *fakeHub {
	files := readFixture(t)
	h := &fakeHub{t: t, repo: testRepo, commit: testCommit, refs: map[string]string{"main": testCommit, "v1.0": testCommit},
		files: files, lfs: map[string]bool{"unet/diffusion_pytorch_model.safetensors": true}, auth: map[string]string{}}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.srv.Close)
	return h
}

// withForeignCDN serves LFS content from a second server (another port:
// another host for the token).
func (h *fakeHub) withForeignCDN() {
	h.cdn = httptest.NewServer(http.HandlerFunc(h.serve))
	h.t.Cleanup(h.cdn.Close)
}

func (h *fakeHub) client(t *testing.T, cache string) *Client {
	c := &Client{Endpoint: h.srv.URL, CacheDir: cache, Quiet: true, Retries: 3, MetadataTimeout: 0, StallTimeout: 0}
	return c
}

func (h *fakeHub) requests() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.log)
}

func (h *fakeHub) reset() {
	h.mu.Lock()
	h.log = nil
	h.auth = map[string]string{}
	h.mu.Unlock()
}

func (h *fakeHub) etag(f string) string {
	if h.lfs[f] {
		return sha256Hex(h.files[f])
	}
	return gitBlobSHA1(h.files[f])
}

func (h *fakeHub) serve(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	entry := r.Method + " " + r.URL.Path
	if rg := r.Header.Get("Range"); rg != "" {
		entry += " " + rg
	}
	h.log = append(h.log, entry)
	h.auth[r.Host+" "+r.URL.Path] = r.Header.Get("Authorization")
	private, token := h.private, h.token
	h.mu.Unlock()

	for from, to := range h.renamed { // a renamed repository: relative redirects
		for _, prefix := range []string{"/api/models/", "/"} {
			if rest, ok := strings.CutPrefix(r.URL.EscapedPath(), prefix+from+"/"); ok {
				http.Redirect(w, r, prefix+to+"/"+rest, http.StatusTemporaryRedirect)
				return
			}
		}
	}
	if p, ok := strings.CutPrefix(r.URL.Path, "/cdn/"); ok {
		h.serveCDN(w, r, p)
		return
	}
	if private && r.Header.Get("Authorization") != "Bearer "+token {
		w.Header().Set("X-Error-Code", "RepoNotFound")
		http.Error(w, `{"error":"Repository not found"}`, http.StatusUnauthorized)
		return
	}
	if rest, ok := strings.CutPrefix(r.URL.Path, "/api/models/"); ok && r.Method == http.MethodGet {
		repo, rev, ok := strings.Cut(rest, "/revision/")
		if !ok {
			http.NotFound(w, r)
			return
		}
		h.serveAPI(w, r, repo, rev)
		return
	}
	// /{org}/{name}/resolve/{rev}/{file...}; rev is escaped (refs%2Fpr%2F1).
	parts := strings.SplitN(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/", 5)
	if len(parts) == 5 && parts[2] == "resolve" {
		rev, _ := url.PathUnescape(parts[3])
		file, _ := url.PathUnescape(parts[4])
		h.serveResolve(w, r, parts[0]+"/"+parts[1], rev, file)
		return
	}
	http.NotFound(w, r)
}

func (h *fakeHub) resolveRev(rev string) (string, bool) {
	if c, ok := h.refs[rev]; ok {
		return c, true
	}
	return rev, rev == h.commit
}

func (h *fakeHub) serveAPI(w http.ResponseWriter, r *http.Request, repo, rev string) {
	if repo != h.repo {
		w.Header().Set("X-Error-Code", "RepoNotFound")
		http.Error(w, `{"error":"Repository not found"}`, http.StatusUnauthorized)
		return
	}
	commit, ok := h.resolveRev(rev)
	if !ok {
		w.Header().Set("X-Error-Code", "RevisionNotFound")
		http.Error(w, `{"error":"Invalid rev id: `+rev+`"}`, http.StatusNotFound)
		return
	}
	type sib struct {
		RFilename string `json:"rfilename"`
	}
	sibs := []sib{{".gitattributes"}, {"README.md"}}
	listed := fixtureFiles
	if h.listed != nil {
		listed = h.listed
	}
	for _, f := range listed {
		sibs = append(sibs, sib{f})
	}
	for _, f := range h.extra {
		sibs = append(sibs, sib{f})
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"id": h.repo, "sha": commit, "private": false, "siblings": sibs})
}

func (h *fakeHub) serveResolve(w http.ResponseWriter, r *http.Request, repo, rev, file string) {
	if repo != h.repo {
		w.Header().Set("X-Error-Code", "RepoNotFound")
		http.Error(w, "Repository not found", http.StatusUnauthorized)
		return
	}
	commit, ok := h.resolveRev(rev)
	if !ok {
		w.Header().Set("X-Error-Code", "RevisionNotFound")
		http.Error(w, "Revision not found", http.StatusNotFound)
		return
	}
	w.Header().Set("X-Repo-Commit", commit)
	body, ok := h.files[file]
	if !ok {
		w.Header().Set("X-Error-Code", "EntryNotFound")
		http.Error(w, "Entry not found", http.StatusNotFound)
		return
	}
	if h.lfs[file] {
		base := "http://" + r.Host
		if h.cdn != nil {
			base = h.cdn.URL
		}
		sum := sha256Hex(body)
		w.Header().Set("X-Linked-Etag", `"`+sum+`"`)
		w.Header().Set("X-Linked-Size", strconv.Itoa(len(body)))
		w.Header().Set("ETag", `W/"pointer-etag"`)
		w.Header().Set("Location", base+"/cdn/"+sum+"?X-Amz-Signature=abc")
		w.WriteHeader(http.StatusFound)
		return
	}
	w.Header().Set("ETag", `"`+gitBlobSHA1(body)+`"`)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write(body)
	}
}

func (h *fakeHub) serveCDN(w http.ResponseWriter, r *http.Request, sum string) {
	var body []byte
	for f, b := range h.files {
		if h.lfs[f] && sha256Hex(b) == sum {
			body = b
		}
	}
	if body == nil {
		http.NotFound(w, r)
		return
	}
	h.mu.Lock()
	cut := h.cuts > 0
	if cut {
		h.cuts--
	}
	cutAt, ignoreRange, corrupt, stall := h.cutAt, h.ignoreRange, h.corrupt, h.stall
	h.mu.Unlock()
	if corrupt {
		body = slices.Clone(body)
		body[len(body)/2] ^= 0xff
	}
	start := 0
	if rg := r.Header.Get("Range"); rg != "" && !ignoreRange {
		s, ok := strings.CutPrefix(rg, "bytes=")
		s, _, ok2 := strings.Cut(s, "-")
		n, err := strconv.Atoi(s)
		if !ok || !ok2 || err != nil || n > len(body) {
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		start = n
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)-start))
	w.Header().Set("ETag", `"`+sum+`"`)
	if start > 0 {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(body)-1, len(body)))
		w.WriteHeader(http.StatusPartialContent)
	} else {
		w.WriteHeader(http.StatusOK)
	}
	if r.Method != http.MethodGet {
		return
	}
	if cut {
		w.Write(body[start : start+cutAt])
		w.(http.Flusher).Flush()
		if stall {
			<-r.Context().Done()
			return
		}
		panic(http.ErrAbortHandler) // the connection drops mid-body
	}
	w.Write(body[start:])
}
