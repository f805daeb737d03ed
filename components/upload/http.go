package upload

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/parley-im/parley/server"
	"github.com/parley-im/parley/storage"
)

// The path of a slot's file on the HTTP listener: /upload/<slot>/<name>.
const routePrefix = "/upload/"

// minTransferRate is the slowest average rate a PUT or a GET of a file
// may go at: its deadline is the listener's read_timeout plus the file's
// size at this rate. The listener's own deadlines are sized for small
// requests and would cut a large file on a phone's link.
const minTransferRate = 32 << 10 // bytes a second

// securityHeaders keep a browser from running or framing what it gets:
// Prosody's mod_http_file_share's CSP (media-src 'self' lets a browser
// play audio and video it opens directly).
const csp = "default-src 'none'; media-src 'self'; frame-ancestors 'none'"

// fileURL is the PUT and GET URL of slot.
func (s *Service) fileURL(slot *storage.UploadSlot) string {
	return s.baseURL + routePrefix + slot.ID + "/" + url.PathEscape(slot.Filename)
}

// files serves the files of every upload host of a server.
type files struct {
	api   *server.HTTPAPI
	hosts map[string]*Service
	store Store
}

// routes adds PUT, GET, HEAD and the CORS preflight of /upload/.
func routes(mux *http.ServeMux, api *server.HTTPAPI, hosts map[string]server.Handler) {
	f := &files{api: api, hosts: make(map[string]*Service, len(hosts))}
	for name, h := range hosts {
		svc := h.(*Service)
		f.hosts[name], f.store = svc, svc.store
	}
	if len(f.hosts) == 0 {
		return
	}
	for _, c := range []string{causeSignature, causeConflict, causeTooLarge} {
		api.DeclareRefusal(c)
	}
	mux.HandleFunc("PUT "+routePrefix+"{slot}/{name}", f.put)
	mux.HandleFunc("GET "+routePrefix+"{slot}/{name}", f.get) // HEAD too
	mux.HandleFunc("OPTIONS "+routePrefix+"{slot}/{name}", f.preflight)
}

// Refusal causes of parley_http_refused_total.
const (
	causeSignature = "upload_signature"
	causeConflict  = "upload_conflict"
	causeTooLarge  = "upload_too_large"
)

// cors lets a web client on another origin (a Converse.js page) PUT and
// GET: the token is a header, not a cookie, so no credentials are
// involved and any origin may be allowed.
func cors(w http.ResponseWriter) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
}

// preflight answers a browser's CORS preflight of a PUT.
func (f *files) preflight(w http.ResponseWriter, _ *http.Request) {
	cors(w)
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "GET, HEAD, PUT")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
	h.Set("Access-Control-Max-Age", "86400")
	w.WriteHeader(http.StatusNoContent)
}

// lookup returns the slot of the request's path and its host, or answers
// 404 itself. The name in the path must be the slot's: the URL is the
// slot's, never a way to name another file.
func (f *files) lookup(w http.ResponseWriter, r *http.Request) (*storage.UploadSlot, *Service, bool) {
	id := r.PathValue("slot")
	if !validSlotID(id) {
		http.NotFound(w, r)
		return nil, nil, false
	}
	slot, err := f.store.UploadSlotByID(r.Context(), id)
	if err != nil {
		if !errors.Is(err, storage.ErrNotFound) {
			http.Error(w, "the file could not be looked up", http.StatusInternalServerError)
			return nil, nil, false
		}
		http.NotFound(w, r)
		return nil, nil, false
	}
	svc, ok := f.hosts[slot.Host]
	if !ok || r.PathValue("name") != slot.Filename {
		http.NotFound(w, r)
		return nil, nil, false
	}
	return &slot, svc, true
}

// transferDeadline is when a transfer of size bytes must be done.
func (f *files) transferDeadline(size int64) time.Time {
	return time.Now().Add(f.api.ReadTimeout() + time.Duration(size/minTransferRate)*time.Second)
}

// put is PUT /upload/<slot>/<name>: the slot's owner fills it, once.
// Every refusal that the headers decide comes before the body is read,
// so a client that sent Expect: 100-continue never sends it.
func (f *files) put(w http.ResponseWriter, r *http.Request) {
	cors(w)
	if f.api.Throttled(w, r, false) {
		return
	}
	slot, svc, ok := f.lookup(w, r)
	if !ok {
		return
	}
	auth := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || tok == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="parley upload"`)
		http.Error(w, "send the Authorization header that came with the slot", http.StatusUnauthorized)
		return
	}
	if err := checkToken(svc.key, slot, tok, svc.now()); err != nil {
		// Each wrong token counts against the address (token_failures):
		// guessing a MAC is hopeless, but a client retrying a stale slot
		// in a loop is not free.
		f.api.Fail(r)
		f.api.Refuse(causeSignature, "upload: PUT refused", "host", slot.Host, "remote", r.RemoteAddr, "why", err)
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	if !slot.Uploaded.IsZero() {
		f.api.Refuse(causeConflict, "upload: PUT to a filled slot", "host", slot.Host, "remote", r.RemoteAddr)
		http.Error(w, "this slot has been filled already; request a new one", http.StatusConflict)
		return
	}
	switch n := r.ContentLength; {
	case n < 0:
		http.Error(w, fmt.Sprintf("send Content-Length: %d (the slot's size)", slot.Size), http.StatusLengthRequired)
		return
	case n > slot.Size:
		f.api.Refuse(causeTooLarge, "upload: PUT larger than its slot", "host", slot.Host, "remote", r.RemoteAddr)
		http.Error(w, fmt.Sprintf("the body is %d bytes; the slot is for %d", n, slot.Size), http.StatusRequestEntityTooLarge)
		return
	case n < slot.Size:
		http.Error(w, fmt.Sprintf("the body is %d bytes; the slot is for %d", n, slot.Size), http.StatusBadRequest)
		return
	}
	if !sameMediaType(r.Header.Get("Content-Type"), slot.ContentType) {
		http.Error(w, "send Content-Type: "+slot.ContentType+" (the slot's)", http.StatusUnsupportedMediaType)
		return
	}
	if !svc.claim(slot.ID) {
		f.api.Refuse(causeConflict, "upload: PUT to a slot being filled", "host", slot.Host, "remote", r.RemoteAddr)
		http.Error(w, "this slot is being filled by another request", http.StatusConflict)
		return
	}
	defer svc.release(slot.ID)
	status, msg := svc.receive(w, r, slot, f.transferDeadline(slot.Size))
	if status != http.StatusCreated {
		http.Error(w, msg, status)
		return
	}
	w.WriteHeader(http.StatusCreated)
}

// sameMediaType reports whether the PUT's Content-Type is the slot's:
// the same type and parameters, compared as media types (case and spaces
// aside). A slot that named none (application/octet-stream) takes any.
func sameMediaType(got, want string) bool {
	if want == "application/octet-stream" {
		return true
	}
	gt, gp, err := mime.ParseMediaType(got)
	if err != nil {
		return false
	}
	return mime.FormatMediaType(gt, gp) == want
}

// claim marks slot id's PUT in progress, and reports false when one was.
func (s *Service) claim(id string) bool {
	s.busyMu.Lock()
	defer s.busyMu.Unlock()
	if s.busy[id] {
		return false
	}
	s.busy[id] = true
	return true
}

func (s *Service) release(id string) {
	s.busyMu.Lock()
	defer s.busyMu.Unlock()
	delete(s.busy, id)
}

// receive writes the body to a temporary file, renames it to the slot's
// name and records the upload. It returns the status to answer with.
func (s *Service) receive(w http.ResponseWriter, r *http.Request, slot *storage.UploadSlot, deadline time.Time) (int, string) {
	final := filepath.Join(s.dir, slot.ID)
	if _, err := os.Lstat(final); err == nil {
		// A file with no record of its upload: a crash between the
		// rename and the store's update. It is complete; keep it.
		return http.StatusConflict, "this slot has been filled already; request a new one"
	}
	// The listener's read deadline is sized for small requests.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(deadline)
	_ = rc.SetWriteDeadline(deadline.Add(10 * time.Second))

	tmp, err := os.CreateTemp(s.dir, ".put-*")
	if err != nil {
		s.log.Error("upload: create a temporary file", "host", s.domain, "err", err)
		return http.StatusInternalServerError, "the file could not be stored"
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	n, err := io.Copy(tmp, io.LimitReader(r.Body, slot.Size))
	if err != nil || n != slot.Size {
		// The client went away or was too slow: its problem, logged at
		// debug.
		s.log.Debug("upload: PUT body incomplete", "host", s.domain, "got", n, "want", slot.Size, "err", err)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return http.StatusRequestTimeout, fmt.Sprintf("the body did not arrive in time (at least %d bytes a second)", minTransferRate)
		}
		return http.StatusBadRequest, "the body was incomplete"
	}
	// 201 means the file is served from now on (XEP-0363 §6): on disk,
	// not in a cache.
	if err := tmp.Sync(); err != nil {
		s.log.Error("upload: sync", "host", s.domain, "err", err)
		return http.StatusInternalServerError, "the file could not be stored"
	}
	if err := tmp.Close(); err != nil {
		s.log.Error("upload: close", "host", s.domain, "err", err)
		return http.StatusInternalServerError, "the file could not be stored"
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		s.log.Error("upload: rename", "host", s.domain, "err", err)
		return http.StatusInternalServerError, "the file could not be stored"
	}
	done = true
	if err := s.store.MarkUploaded(r.Context(), slot.ID, s.now()); err != nil {
		os.Remove(final)
		if errors.Is(err, storage.ErrExists) {
			return http.StatusConflict, "this slot has been filled already; request a new one"
		}
		if errors.Is(err, storage.ErrNotFound) {
			return http.StatusGone, "the slot expired during the upload; request a new one"
		}
		s.log.Error("upload: record the upload", "host", s.domain, "err", err)
		return http.StatusInternalServerError, "the file could not be stored"
	}
	s.metrics.uploads.Add(1)
	s.metrics.bytes.Add(slot.Size)
	return http.StatusCreated, ""
}

// get is GET and HEAD /upload/<slot>/<name>: anyone with the URL gets the
// file (XEP-0363 §2: the URL is the secret).
func (f *files) get(w http.ResponseWriter, r *http.Request) {
	cors(w)
	slot, svc, ok := f.lookup(w, r)
	if !ok {
		return
	}
	if slot.Uploaded.IsZero() || !svc.now().Before(slot.Uploaded.Add(svc.opts.ExpiresAfter.Duration)) {
		// Not there yet, or expired and waiting for the next sweep.
		http.NotFound(w, r)
		return
	}
	file, err := os.Open(filepath.Join(svc.dir, slot.ID))
	if err != nil {
		// Expired between the lookup and now, or removed by hand.
		http.NotFound(w, r)
		return
	}
	defer file.Close()
	h := w.Header()
	h.Set("Content-Type", slot.ContentType)
	disposition := "attachment"
	if inline(slot.ContentType) {
		disposition = "inline"
	}
	if v := mime.FormatMediaType(disposition, map[string]string{"filename": slot.Filename}); v != "" {
		h.Set("Content-Disposition", v)
	} else {
		h.Set("Content-Disposition", disposition)
	}
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Frame-Options", "DENY") // for browsers without frame-ancestors
	h.Set("Referrer-Policy", "no-referrer")
	// A slot's file never changes: its name is its version.
	h.Set("ETag", `"`+slot.ID+`"`)
	h.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(svc.opts.ExpiresAfter.Seconds()))+", immutable")
	_ = http.NewResponseController(w).SetWriteDeadline(f.transferDeadline(slot.Size))
	http.ServeContent(w, r, "", slot.Uploaded, file)
}

// inline reports whether a file of the media type ct is shown in the
// browser rather than downloaded: images, audio and video, which a
// browser renders without running anything (an SVG's scripts are held
// by the CSP).
func inline(ct string) bool {
	mt, _, _ := mime.ParseMediaType(ct)
	top, _, _ := strings.Cut(mt, "/")
	return top == "image" || top == "audio" || top == "video"
}
