package interop

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/parley-im/parley/conf"
)

// xmppjs returns the node binary and the directory of the xmpp.js
// scripts, with their node_modules; it skips the test when either is
// missing, or fails it under CI.
func xmppjs(t *testing.T) (node, dir string) {
	t.Helper()
	dir, err := filepath.Abs("../../testdata/interop/node")
	if err != nil {
		t.Fatal(err)
	}
	node, err = exec.LookPath("node")
	if err != nil {
		missing(t, "node", "install Node.js 20 or later")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@xmpp", "client")); err != nil {
		missing(t, "@xmpp/client", "npm ci --prefix testdata/interop/node")
	}
	return node, dir
}

// TestXMPPJS logs in with xmpp.js (npm @xmpp/client 0.14.0) with its
// default choice and with each mechanism it has that Parley offers, over
// STARTTLS and direct TLS, and runs the common steps. Its mechanisms are
// SCRAM-SHA-1 (no -PLUS, no channel binding), PLAIN and ANONYMOUS, and the
// default is the first of those the server offers.
func TestXMPPJS(t *testing.T) {
	node, dir := xmppjs(t)
	lib := library{name: "xmpp.js", command: func(cfg clientConfig) (*exec.Cmd, error) {
		b, err := json.Marshal(cfg)
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(node, filepath.Join(dir, "client.mjs"), string(b))
		cmd.Dir = dir
		// Node reads extra trust anchors only from here, at startup.
		cmd.Env = append(os.Environ(), "NODE_EXTRA_CA_CERTS="+cfg.CAFile)
		return cmd, nil
	}}
	var cases []clientCase
	for _, tr := range []string{"starttls", "direct"} {
		cases = append(cases,
			clientCase{tls: tr, wantMechanism: "SCRAM-SHA-1"},
			clientCase{tls: tr, mechanism: "SCRAM-SHA-1"},
			// xmpp.js 0.14 encodes the PLAIN message as Latin-1, not
			// UTF-8 (RFC 4616 §2): "pässword" goes out as p\xe4ssword,
			// which the server rightly refuses as malformed-request.
			// Its SCRAM-SHA-1 gets it right.
			clientCase{tls: tr, mechanism: "PLAIN", password: "alice password"},
			// With -PLUS offered it still picks SCRAM-SHA-1, flag "n".
			clientCase{binding: conf.ChannelBindingStrict, tls: tr, wantMechanism: "SCRAM-SHA-1"},
			// Classic SASL (RFC 6120 <auth/>): 0.14 prefers SASL2 when
			// offered and has no option against it; client.mjs composes
			// the client from its packages without @xmpp/sasl2 (cfg.sasl
			// "classic"), as xmpp.js's packages allow.
			clientCase{tls: tr, classic: true, wantMechanism: "SCRAM-SHA-1"},
			clientCase{tls: tr, classic: true, mechanism: "PLAIN", password: "alice password"},
		)
	}
	runLibrary(t, lib, cases)
}
