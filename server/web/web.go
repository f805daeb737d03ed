package web

import (
	"encoding/json"
	"encoding/xml"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/parley-im/parley/c2s"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/server"
	"github.com/parley-im/parley/xmpp"
)

// The web side of the HTTP listener: XMPP over WebSocket (RFC 7395) at
// /xmpp-websocket, served by the same c2s sessions as TCP, and host-meta
// (XEP-0156), which tells web clients where that endpoint is.

// WebSocketPath is where the listener serves XMPP over WebSocket.
const WebSocketPath = "/xmpp-websocket"

// nsAltWebSocket is XEP-0156's link relation of a WebSocket endpoint.
const nsAltWebSocket = "urn:xmpp:alt-connections:websocket"

func init() { server.RegisterRoutes("web", routes) }

// endpoints serves the web routes of one server's HTTP listener.
type endpoints struct {
	api *server.HTTPAPI
	cfg *conf.HTTP
	log *slog.Logger
}

// routes adds the WebSocket endpoint, host-meta and the web client to a
// server's HTTP listener.
func routes(mux *http.ServeMux, api *server.HTTPAPI) {
	e := &endpoints{api: api, cfg: &api.Config().HTTP, log: api.Logger()}
	mux.HandleFunc("GET "+WebSocketPath, e.handleWebSocket)
	mux.HandleFunc("GET /.well-known/host-meta", e.handleHostMeta)
	mux.HandleFunc("GET /.well-known/host-meta.json", e.handleHostMeta)
	e.webClientRoutes(mux)
}

// handleWebSocket hands the request to c2s, which upgrades it. The stream
// counts as secure over HTTPS, from a loopback client (where nobody else
// is on the path) or when websocket_insecure says so; elsewhere c2s
// refuses to authenticate it. A loopback peer that forwards for someone
// (a reverse proxy on the same host, whose headers are not trusted) is no
// loopback client: the proxy may take passwords over plain HTTP from
// anywhere, and the server cannot tell, so it refuses until the operator
// sets trust_forwarded and the proxy says https. Over HTTPS to the
// listener itself, with no proxy in between, SASL binds to the request's
// TLS connection (SCRAM-*-PLUS, PLAIN) as on c2s TLS.
func (e *endpoints) handleWebSocket(w http.ResponseWriter, r *http.Request) {
	addr, https := e.api.Client(r)
	cfg := e.cfg
	localClient := isLoopback(addr) && (cfg.TrustForwarded || !forwarded(r))
	opts := c2s.WebSocketOptions{
		Secure:         https || localClient || cfg.WebSocketInsecure,
		RemoteAddr:     addr,
		OriginPatterns: cfg.WebSocketOrigins,
	}
	if r.TLS != nil && !forwarded(r) {
		// The client's own TLS connection, which SASL may bind to
		// (-PLUS). Through a proxy the TLS here is the proxy's, and a
		// binding to it would fail every client that tried one.
		opts.TLS = r.TLS
	}
	if err := e.api.ServeWebSocket(w, r, opts); err != nil {
		e.log.Debug("web: websocket refused", "remote", addr, "err", err)
	}
}

// forwarded reports whether r came through a proxy that says so in one of
// the usual headers.
func forwarded(r *http.Request) bool {
	for _, h := range []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Real-Ip"} {
		if r.Header.Get(h) != "" {
			return true
		}
	}
	return false
}

// isLoopback reports whether addr (ip:port or ip) is a loopback address.
func isLoopback(addr string) bool {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return ap.Addr().Unmap().IsLoopback()
	}
	ip, err := netip.ParseAddr(addr)
	return err == nil && ip.Unmap().IsLoopback()
}

// xrd is host-meta's XML form (XEP-0156 §3.1, RFC 6415).
type xrd struct {
	XMLName xml.Name  `xml:"http://docs.oasis-open.org/ns/xri/xrd-1.0 XRD"`
	Links   []xrdLink `xml:"Link"`
}

type xrdLink struct {
	Rel  string `xml:"rel,attr" json:"rel"`
	Href string `xml:"href,attr" json:"href"`
}

// handleHostMeta answers /.well-known/host-meta (XRD) and
// host-meta.json for a domain the server serves, named by the request's
// Host, with the WebSocket endpoint: websocket_url, or built from the
// request. Browsers read it from other origins, so it carries CORS's
// Access-Control-Allow-Origin: * (it holds nothing private).
func (e *endpoints) handleHostMeta(w http.ResponseWriter, r *http.Request) {
	if e.requestDomain(r) == "" {
		http.Error(w, "no XMPP domain is served under this name", http.StatusNotFound)
		return
	}
	doc := xrd{Links: []xrdLink{{Rel: nsAltWebSocket, Href: e.webSocketURL(r)}}}
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if strings.HasSuffix(r.URL.Path, ".json") {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"links": doc.Links})
		return
	}
	w.Header().Set("Content-Type", "application/xrd+xml; charset=utf-8")
	_, _ = w.Write([]byte(xml.Header))
	_ = xml.NewEncoder(w).Encode(doc)
}

// webSocketURL is the WebSocket endpoint a web client reached by r should
// use: websocket_url, or built from the request's scheme and Host. Both
// host-meta and /chat announce it.
func (e *endpoints) webSocketURL(r *http.Request) string {
	if u := e.cfg.WebSocketURL; u != "" {
		return u
	}
	scheme := "ws"
	if _, https := e.api.Client(r); https {
		scheme = "wss"
	}
	return scheme + "://" + r.Host + WebSocketPath
}

// requestDomain is the served domain the request's Host names, or "".
func (e *endpoints) requestDomain(r *http.Request) string {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	domain, err := xmpp.NormalizeDomain(host)
	if err != nil || !e.api.ServesLogins(domain) {
		return ""
	}
	return domain
}
