package interop

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// slixmppPython is Debian's interpreter: python3-slixmpp installs the
// library for it, not for a python3 earlier on PATH (pyenv, venvs).
const slixmppPython = "/usr/bin/python3"

var slixmppCheck = sync.OnceValue(func() error {
	out, err := exec.Command(slixmppPython, "-c", "import slixmpp; print(slixmpp.__version__)").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s cannot import slixmpp: %v: %s", slixmppPython, err, out)
	}
	return nil
})

// TestSlixmpp logs in with slixmpp 1.8 (Debian's python3-slixmpp) with
// its default choice and with every mechanism it and Parley share, over
// STARTTLS and direct TLS, and runs the common steps.
func TestSlixmpp(t *testing.T) {
	if err := slixmppCheck(); err != nil {
		missing(t, "slixmpp for "+slixmppPython+" ("+err.Error()+")", "apt-get install python3-slixmpp")
	}
	script, err := filepath.Abs("../../testdata/interop/python/slixmpp_client.py")
	if err != nil {
		t.Fatal(err)
	}
	lib := library{name: "slixmpp", command: func(cfg clientConfig) (*exec.Cmd, error) {
		b, err := json.Marshal(cfg)
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(slixmppPython, script, string(b))
		cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1")
		return cmd, nil
	}}
	var cases []clientCase
	for _, tr := range []string{"starttls", "direct"} {
		// slixmpp's mechanisms: SCRAM-SHA-* and their -PLUS variants
		// (tls-unique only), PLAIN, and more that Parley does not offer.
		for _, m := range []string{"", "SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN"} {
			cases = append(cases, clientCase{tls: tr, mechanism: m})
		}
	}
	runLibrary(t, lib, cases)
}
