package serve

import (
	"embed"
	"io/fs"
	"net/http"
)

// web is the studio: a page, its script and style, no build step and no
// requests beyond this server.
//
//go:embed web
var web embed.FS

// openAPI describes the API (OpenAPI 3).
//
//go:embed openapi.json
var openAPI []byte

func webHandler() http.Handler {
	sub, err := fs.Sub(web, "web")
	if err != nil {
		panic(err) // the embedded tree always has web/
	}
	return http.FileServerFS(sub)
}

func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(openAPI)
}
