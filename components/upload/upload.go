package upload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/server"
	"github.com/parley-im/parley/server/local"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// NS is XEP-0363's namespace.
const NS = "urn:xmpp:http:upload:0"

// nsData is XEP-0004's namespace, of the disco#info form (XEP-0128).
const nsData = "jabber:x:data"

// Store is what an upload host keeps in the server's store:
// *storage.Store implements it.
type Store interface {
	CreateUploadSlot(ctx context.Context, slot storage.UploadSlot, quota int64, pendingSince time.Time) (storage.UploadUsage, error)
	UploadSlotByID(ctx context.Context, id string) (storage.UploadSlot, error)
	MarkUploaded(ctx context.Context, id string, at time.Time) error
	ExpiredUploadSlots(ctx context.Context, host string, uploadedBefore, pendingBefore time.Time, limit int) ([]storage.UploadSlot, error)
	DeleteUploadSlots(ctx context.Context, ids []string) error
}

func init() {
	conf.RegisterHostType(HostType, conf.HostType[Options]{Check: checkOptions})
	server.RegisterHostType(HostType, server.HostType{New: newHost, Routes: routes, Metrics: writeMetrics})
}

// Service is the handler of one upload host.
type Service struct {
	domain  string
	opts    Options
	baseURL string // public_url without its trailing slash
	allowed []string
	key     []byte
	dir     string // where the files are: data_dir/uploads
	tempDir bool   // dir is a temporary one, removed at Close
	store   Store
	router  *server.Router
	log     *slog.Logger
	now     func() time.Time

	// busy are the slots whose PUT is in progress: a second PUT to one
	// of them gets 409 rather than racing the first to the rename.
	busyMu sync.Mutex
	busy   map[string]bool

	metrics metrics
}

// newHost builds the service of an upload host.
func newHost(env *server.HostEnv) (server.Handler, error) {
	h := env.Host
	o := OptionsOf(h)
	s := &Service{
		domain: h.Name, opts: *o, store: env.Store, router: env.Router, log: env.Log,
		now: time.Now, busy: map[string]bool{},
	}
	s.allowed = o.AllowedHosts
	if len(s.allowed) == 0 {
		for _, other := range env.Config.Hosts {
			if other.Type == local.HostLocal {
				s.allowed = append(s.allowed, other.Name)
			}
		}
	}
	for i, d := range s.allowed {
		s.allowed[i] = strings.ToLower(d)
	}
	s.baseURL = strings.TrimRight(o.PublicURL, "/")
	if s.baseURL == "" {
		if len(env.Config.HTTP.Listen) == 0 {
			return nil, errors.New(`upload: an upload host is served on the HTTP listener; set [http] listen, ` +
				`like listen = ["[::]:5280"]`)
		}
		_, port, err := net.SplitHostPort(env.Config.HTTP.Listen[0])
		if err != nil {
			return nil, fmt.Errorf("upload: the [http] listen address %q: %w", env.Config.HTTP.Listen[0], err)
		}
		s.baseURL = "http://" + net.JoinHostPort(h.Name, port)
	}
	var err error
	if s.key, err = loadSecret(o.Secret, env.DataDir); err != nil {
		return nil, err
	}
	if env.DataDir == "" {
		// An ephemeral server (in-memory store) leaves nothing on disk:
		// its slots are gone at exit, so are their files.
		if s.dir, err = os.MkdirTemp("", "parley-uploads-"); err != nil {
			return nil, fmt.Errorf("upload: %w", err)
		}
		s.tempDir = true
	} else {
		s.dir = filepath.Join(env.DataDir, "uploads")
		if err := os.MkdirAll(s.dir, 0o700); err != nil {
			return nil, fmt.Errorf("upload: %w", err)
		}
	}
	env.Router.Go(s.expireLoop)
	return s, nil
}

// Dir is the directory the host keeps its files in.
func (s *Service) Dir() string { return s.dir }

// Close removes the temporary directory of an ephemeral server's files.
func (s *Service) Close(context.Context) error {
	if s.tempDir {
		return os.RemoveAll(s.dir)
	}
	return nil
}

// HandleStanza answers slot requests, disco and ping; other iqs get
// service-unavailable, and messages are bounced.
func (s *Service) HandleStanza(st *xmpp.Stanza) {
	if st.Kind != xmpp.KindIQ {
		if st.Kind == xmpp.KindMessage {
			s.router.Bounce(st, xmpp.NewStanzaError(xmpp.ServiceUnavailable, "this is an upload service; it takes no messages"))
		}
		return
	}
	if st.Type != "get" && st.Type != "set" {
		return
	}
	p := st.Payload()
	if p == nil || st.To.Local() != "" {
		s.router.Bounce(st, xmpp.NewStanzaError(xmpp.ServiceUnavailable, ""))
		return
	}
	ns := xmpp.NS(p)
	switch {
	case st.Type == "get" && p.Tag == "request" && ns == NS:
		s.requestSlot(st, p)
	case st.Type == "get" && p.Tag == "query" && ns == xmpp.NSDiscoInfo:
		if p.SelectAttr("node") != nil {
			s.router.Bounce(st, xmpp.NewStanzaError(xmpp.ItemNotFound, "no such node"))
			return
		}
		s.router.Route(st.Result(s.discoInfo()))
	case st.Type == "get" && p.Tag == "query" && ns == xmpp.NSDiscoItems:
		s.router.Route(st.Result(xmpp.NewElementNS(xmpp.NSDiscoItems, "query")))
	case st.Type == "get" && p.Tag == "ping" && ns == xmpp.NSPing:
		s.router.Route(st.Result(nil))
	default:
		s.router.Bounce(st, xmpp.NewStanzaError(xmpp.ServiceUnavailable, ""))
	}
}

// discoInfo is the service's disco#info: XEP-0363 §3, with the size
// limit in the XEP-0128 form, and the quota beside it as an x- field
// (XEP-0068 §6: the registered form has no such field).
func (s *Service) discoInfo() *etree.Element {
	q := xmpp.NewElementNS(xmpp.NSDiscoInfo, "query")
	id := q.CreateElement("identity")
	id.CreateAttr("category", "store")
	id.CreateAttr("type", "file")
	id.CreateAttr("name", "HTTP File Upload")
	for _, f := range []string{xmpp.NSDiscoInfo, xmpp.NSDiscoItems, xmpp.NSPing, NS} {
		q.CreateElement("feature").CreateAttr("var", f)
	}
	x := q.CreateElement("x")
	x.CreateAttr("xmlns", nsData)
	x.CreateAttr("type", "result")
	field := func(name, typ, value string) {
		f := x.CreateElement("field")
		f.CreateAttr("var", name)
		if typ != "" {
			f.CreateAttr("type", typ)
		}
		f.CreateElement("value").SetText(value)
	}
	field("FORM_TYPE", "hidden", NS)
	field("max-file-size", "", strconv.FormatInt(int64(s.opts.MaxFileSize), 10))
	field("x-quota-per-user", "", strconv.FormatInt(int64(s.opts.QuotaPerUser), 10))
	return q
}

// maxFilename bounds a slot's file name, in bytes: most file systems'
// limit, and the name travels in URLs.
const maxFilename = 255

// requestSlot answers a slot request (XEP-0363 §4, errors §5).
func (s *Service) requestSlot(st *xmpp.Stanza, req *etree.Element) {
	owner := st.From.Bare()
	if owner.Local() == "" || !slices.Contains(s.allowed, owner.Domain()) {
		s.metrics.refused("not_allowed")
		s.router.Bounce(st, xmpp.NewStanzaError(xmpp.NotAllowed,
			"only users of "+strings.Join(s.allowed, ", ")+" may upload files here"))
		return
	}
	filename := req.SelectAttrValue("filename", "")
	if !validFilename(filename) {
		s.metrics.refused("bad_request")
		s.router.Bounce(st, xmpp.NewStanzaError(xmpp.BadRequest,
			"the filename must be 1 to 255 bytes of UTF-8 with no /, \\ or control characters, and not . or .."))
		return
	}
	size, err := strconv.ParseInt(req.SelectAttrValue("size", ""), 10, 64)
	if err != nil || size < 0 {
		s.metrics.refused("bad_request")
		s.router.Bounce(st, xmpp.NewStanzaError(xmpp.BadRequest, "the size must be a number of bytes"))
		return
	}
	contentType := "application/octet-stream" // XEP-0363 §6: MAY assume
	if ct := req.SelectAttrValue("content-type", ""); ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil || !strings.Contains(mt, "/") {
			s.metrics.refused("bad_request")
			s.router.Bounce(st, xmpp.NewStanzaError(xmpp.BadRequest, "the content-type is not a media type like image/jpeg"))
			return
		}
		contentType = mime.FormatMediaType(mt, params)
	}
	if size > int64(s.opts.MaxFileSize) {
		s.metrics.refused("too_large")
		max := strconv.FormatInt(int64(s.opts.MaxFileSize), 10)
		reply := st.ErrorReply(xmpp.NewStanzaError(xmpp.NotAcceptable, "File too large. The maximum file size is "+max+" bytes"))
		tooLarge := reply.El.SelectElement("error").CreateElement("file-too-large")
		tooLarge.CreateAttr("xmlns", NS)
		tooLarge.CreateElement("max-file-size").SetText(max)
		s.router.Route(reply)
		return
	}

	now := s.now()
	slot := storage.UploadSlot{
		ID: newSlotID(), Host: s.domain, Owner: owner.String(), Filename: filename, Size: size,
		ContentType: contentType, Created: now,
	}
	ctx, cancel := s.router.StoreContext()
	defer cancel()
	usage, err := s.store.CreateUploadSlot(ctx, slot, int64(s.opts.QuotaPerUser), now.Add(-s.opts.SlotLifetime.Duration))
	switch {
	case errors.Is(err, storage.ErrUploadQuota):
		s.metrics.refused("quota")
		s.router.Route(s.quotaError(st, usage))
		return
	case err != nil:
		s.log.Error("upload: slot not recorded", "host", s.domain, "owner", slot.Owner, "err", err)
		s.router.Bounce(st, xmpp.NewStanzaError(xmpp.InternalServerError, "the slot could not be recorded; try again"))
		return
	}
	s.metrics.slots.Add(1)

	el := xmpp.NewElementNS(NS, "slot")
	put := el.CreateElement("put")
	put.CreateAttr("url", s.fileURL(&slot))
	// XEP-0363 §4 allows Authorization, Cookie and Expires headers.
	auth := put.CreateElement("header")
	auth.CreateAttr("name", "Authorization")
	auth.SetText("Bearer " + token(s.key, &slot, now.Add(s.opts.SlotLifetime.Duration)))
	el.CreateElement("get").CreateAttr("url", s.fileURL(&slot))
	s.router.Route(st.Result(el))
}

// quotaError is the answer to a slot request past the quota: a wait
// error with XEP-0363 §5's <retry/>, stamped when the oldest counted
// upload expires or the oldest counted slot stops counting.
func (s *Service) quotaError(st *xmpp.Stanza, u storage.UploadUsage) *xmpp.Stanza {
	reply := st.ErrorReply(xmpp.NewStanzaError(xmpp.ResourceConstraint, fmt.Sprintf(
		"Quota reached: you have %d of %d bytes stored; files are deleted %v after their upload",
		u.Bytes, int64(s.opts.QuotaPerUser), s.opts.ExpiresAfter.Duration)))
	var at time.Time
	if !u.OldestUploaded.IsZero() {
		at = u.OldestUploaded.Add(s.opts.ExpiresAfter.Duration)
	}
	if p := u.OldestPending; !p.IsZero() && (at.IsZero() || p.Add(s.opts.SlotLifetime.Duration).Before(at)) {
		at = p.Add(s.opts.SlotLifetime.Duration)
	}
	if !at.IsZero() {
		retry := reply.El.SelectElement("error").CreateElement("retry")
		retry.CreateAttr("xmlns", NS)
		retry.CreateAttr("stamp", at.UTC().Format(time.RFC3339)) // XEP-0082 DateTime
	}
	return reply
}

// validFilename reports whether name may be a slot's file name: one path
// segment, printable, not a dot segment. The name never reaches the file
// system (files are named by slot), but it goes into URLs and headers.
func validFilename(name string) bool {
	if name == "" || len(name) > maxFilename || name == "." || name == ".." || !utf8.ValidString(name) {
		return false
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || r == '/' || r == '\\' {
			return false
		}
	}
	return true
}
