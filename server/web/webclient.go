package web

import (
	"encoding/json"
	"html/template"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/parley-im/parley/xmpp"
)

// The web client: Converse.js, fetched by `make webclient` (it is not
// built into the binary), served at /chat with a page that configures it
// for the host: the WebSocket endpoint host-meta announces and the domain
// locked, so a user types a name and a password and nothing else.

// WebClientPath is where the listener serves the web client.
const WebClientPath = "/chat"

// webClientMarker is the file whose presence says the directory holds
// Converse.js's dist.
const webClientMarker = "converse.min.js"

// webClientCSP lets Converse.js run from this origin only: its scripts
// and styles, web fonts and sounds from /chat/dist, WebAssembly for OMEMO
// (libomemo's curve25519), the WebSocket, and images and media from this
// origin (files shared through an upload host on the same listener) or
// as data:/blob: (avatars). No remote images: an image URL in a message,
// or a link preview's, would otherwise be fetched by every reader's
// browser from wherever the sender chose, which tells that server who
// read it, when and from where (a tracking pixel); the page tells
// Converse the same (allowed_image_domains), so such URLs stay links. No
// inline or eval'd script: the page's configuration is a JSON data block
// that /chat/init.js reads. Inline styles are allowed because Converse's
// templates set style attributes.
const webClientCSP = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; " +
	"style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; " +
	"media-src 'self' data: blob:; font-src 'self' data:; " +
	"connect-src 'self' %s; worker-src 'self' blob:; manifest-src 'self'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"

// webClientInit starts Converse.js with the configuration in the page.
// Converse's dist is an ES module that sets window.converse; module
// scripts run in document order, so it is there when this runs. The
// "parley" plugin replaces the footer of Converse's fullscreen login
// page, which shows its sponsors' logos loaded from conversejs.org: every
// visitor's browser would tell a third party that it opened the chat
// (and the CSP, with no remote images, would block them anyway).
const webClientInit = `"use strict";
converse.plugins.add("parley", {
  initialize() {
    this._converse.api.elements.define("converse-footer", class extends HTMLElement {});
  },
});
const config = JSON.parse(document.getElementById("parley-config").textContent);
config.whitelisted_plugins = ["parley"];
converse.initialize(config);
`

var webClientPage = template.Must(template.New("chat").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Domain}} chat</title>
<link rel="stylesheet" href="` + WebClientPath + `/dist/converse.min.css">
<script type="application/json" id="parley-config">{{.Config}}</script>
<script type="module" src="` + WebClientPath + `/dist/converse.min.js"></script>
<script type="module" src="` + WebClientPath + `/init.js"></script>
</head>
<body class="converse-fullscreen"></body>
</html>
`))

var webClientChoose = template.Must(template.New("choose").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Chat</title></head>
<body><p>Which domain is yours?</p><ul>
{{range .}}<li><a href="?domain={{.}}">{{.}}</a></li>
{{end}}</ul></body></html>
`))

// webClientMissing is /chat's answer when Converse.js has not been
// fetched: what to run, and where it was looked for.
var webClientMissing = template.Must(template.New("missing").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>No web client here yet</title></head>
<body><h1>No web client here yet</h1>
<p>Parley serves Converse.js at /chat once it has been fetched: run
<code>make webclient</code> in Parley's source (it needs npm), which puts it in
<code>bin/webclient</code> beside <code>bin/parley</code>, or set
<code>[http] webclient_dir</code> to a directory holding Converse.js's
<code>dist</code> files.</p>
<p>Looked for it in <code>{{.}}</code>.</p></body></html>
`))

// webClientRoutes adds /chat to the listener.
func (e *endpoints) webClientRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+WebClientPath, e.handleWebClient)
	mux.HandleFunc("GET "+WebClientPath+"/{$}", e.handleWebClient)
	mux.HandleFunc("GET "+WebClientPath+"/init.js", func(w http.ResponseWriter, r *http.Request) {
		webClientHeaders(w, "")
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		_, _ = w.Write([]byte(webClientInit))
	})
	files := http.StripPrefix(WebClientPath+"/dist/", http.FileServer(http.Dir(e.webClientDir())))
	mux.HandleFunc("GET "+WebClientPath+"/dist/", func(w http.ResponseWriter, r *http.Request) {
		// No directory listings: the client asks for files by name.
		if strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	})
}

var executableDir = sync.OnceValue(func() string {
	exe, err := os.Executable()
	if err != nil {
		return "."
	}
	return filepath.Dir(exe)
})

// webClientDir is where Converse.js is looked for: webclient_dir, or
// "webclient" beside the binary (bin/webclient for bin/parley, where
// `make webclient` puts it).
func (e *endpoints) webClientDir() string {
	if d := e.cfg.WebClientDir; d != "" {
		return d
	}
	return filepath.Join(executableDir(), "webclient")
}

// webClientHeaders sets the headers of the web client's own answers.
func webClientHeaders(w http.ResponseWriter, csp string) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	if csp != "" {
		h.Set("Content-Security-Policy", csp)
	}
}

// handleWebClient is /chat: Converse.js configured for the domain the
// request's Host names (or ?domain=, or the only one served), or, when it
// has not been fetched, how to fetch it.
func (e *endpoints) handleWebClient(w http.ResponseWriter, r *http.Request) {
	dir := e.webClientDir()
	if _, err := os.Stat(filepath.Join(dir, webClientMarker)); err != nil {
		webClientHeaders(w, "default-src 'none'")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		_ = webClientMissing.Execute(w, dir)
		return
	}
	domain := e.requestDomain(r)
	if q := r.URL.Query().Get("domain"); q != "" {
		if d, err := xmpp.NormalizeDomain(q); err == nil {
			if e.api.ServesLogins(d) {
				domain = d
			}
		}
	}
	if domain == "" {
		// Reached by an address (like 127.0.0.1:5280), not a domain.
		domains := e.api.LoginDomains()
		switch len(domains) {
		case 0:
			http.Error(w, "this server serves no domain users log in to", http.StatusNotFound)
			return
		case 1:
			domain = domains[0]
		default:
			webClientHeaders(w, "default-src 'none'")
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_ = webClientChoose.Execute(w, domains)
			return
		}
	}
	ws := e.webSocketURL(r)
	// Media is shown inline only from this page's host, as the CSP
	// allows; elsewhere it stays a link (webClientCSP says why).
	pageHost := r.Host
	if h, _, err := net.SplitHostPort(pageHost); err == nil {
		pageHost = h
	}
	ownHost := []string{pageHost}
	cfg, err := json.Marshal(map[string]any{
		"allowed_image_domains":       ownHost,
		"allowed_video_domains":       ownHost,
		"allowed_audio_domains":       ownHost,
		"websocket_url":               ws,
		"discover_connection_methods": false,
		"locked_domain":               domain,
		"authentication":              "login",
		"auto_login":                  false,
		"allow_registration":          false,
		"view_mode":                   "fullscreen",
		"assets_path":                 WebClientPath + "/dist/",
	})
	if err != nil {
		e.log.Error("web: web client config", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	webClientHeaders(w, strings.Replace(webClientCSP, "%s", ws, 1))
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Cache-Control", "no-cache")
	// template.JS keeps html/template from quoting the JSON as a string;
	// json.Marshal already escaped <, > and & so it cannot end the block.
	_ = webClientPage.Execute(w, map[string]any{"Domain": domain, "Config": template.JS(cfg)})
}
