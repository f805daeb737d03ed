// Command go-bot is a minimal Parley bot: an HTTP server that Parley's
// http_component host POSTs each stanza to, as JSON, and whose JSON answer
// becomes the reply. It answers "You said: <body>" to every message with
// a body, a short help text to "help", and nothing (204) to the rest.
//
//	PARLEY_WEBHOOK_SECRET=whsec_... go run ./examples/go-bot -addr 127.0.0.1:8080
//
// With PARLEY_WEBHOOK_SECRET set (the host's secret), unsigned or badly
// signed requests get 401. PORT, when set, is the port of the default
// address. See examples/README.md.
package main

import (
	"encoding/json"
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// maxBody bounds a request; Parley posts one stanza at a time.
const maxBody = 1 << 20

const helpText = "I am an echo bot: send me any text and I say it back. Send \"help\" for this message."

// request is what Parley posts for each stanza. Body is set only for a
// message with a body; Stanza is the whole stanza as XML.
type request struct {
	To     string `json:"to"`
	From   string `json:"from"`
	Kind   string `json:"kind"` // message, presence or iq
	Stanza string `json:"stanza"`
	Body   string `json:"body"`
	ID     string `json:"id"`
	Type   string `json:"type"`
}

// reply is one answer. Parley fills in what is left out: to and from are
// the request's swapped, kind is message, type is the incoming message's.
type reply struct {
	Body string `json:"body"`
}

func main() {
	addr := "127.0.0.1:8080"
	if port := os.Getenv("PORT"); port != "" {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	flag.StringVar(&addr, "addr", addr, "the `address` to listen on")
	flag.Parse()
	secret := os.Getenv("PARLEY_WEBHOOK_SECRET")
	if secret == "" {
		log.Print("PARLEY_WEBHOOK_SECRET is not set: anyone who can reach this bot can speak to it")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("listening on %s", ln.Addr())
	srv := &http.Server{Handler: handler(secret), ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.Serve(ln))
}

// handler answers Parley's requests, verifying them when secret is set.
func handler(secret string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "Parley posts stanzas here", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
			return
		}
		// Verify the raw bytes, before parsing them.
		if secret != "" {
			if err := verify(secret, r.Header, body, time.Now()); err != nil {
				log.Printf("refused a request: %v", err)
				http.Error(w, "bad signature", http.StatusUnauthorized)
				return
			}
		}
		var req request
		if err := json.Unmarshal(body, &req); err != nil {
			http.Error(w, "not a Parley request", http.StatusBadRequest)
			return
		}
		if req.Kind != "message" || req.Body == "" {
			w.WriteHeader(http.StatusNoContent) // no reply
			return
		}
		text := "You said: " + req.Body
		if strings.EqualFold(strings.TrimSpace(req.Body), "help") {
			text = helpText
		}
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(w).Encode(reply{Body: text}); err != nil {
			log.Printf("writing the reply: %v", err)
		}
	})
}
