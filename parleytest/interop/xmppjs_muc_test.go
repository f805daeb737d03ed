package interop

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/parley-im/parley/components/muc"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/xmpp"
)

// xmppjsMUCConfig is what testdata/interop/node/muc.mjs gets: the
// group-chat client's config and the nick it changes to.
type xmppjsMUCConfig struct {
	goxmppMUCConfig
	NewNick string `json:"new_nick"`
}

// TestXMPPJSMUC runs xmpp.js (npm @xmpp/client 0.14.0, which has no MUC
// plugin: the stanzas of XEP-0045 as an application sends them) against
// the muc host, in a room bob (a raw connection) made and spoke in. The
// client joins with history and gets the occupants, its self-presence
// with status 110, bob's message, delayed, and the subject; its groupchat
// message comes back with the room's stanza-id and reaches bob, and bob's
// answer reaches it with a stanza-id and bob's occupant-id; it changes
// its nick (303, then the new occupant JID, both with 110), and leaves.
func TestXMPPJSMUC(t *testing.T) {
	t.Parallel()
	node, dir := xmppjs(t)
	s := parleytest.Start(t, withMUCService())
	s.AddUser(aliceJID, clientPassword)
	s.AddUser(bobJID, bobPassword)
	bob := s.Login(bobJID, bobPassword, "desk")
	bob.Send("<presence/>")
	bob.Sync()
	bobOID := ""
	for _, st := range rawJoin(t, bob, teamRoom, "Bob") {
		if st.Kind == xmpp.KindPresence && st.From.String() == teamRoom+"/Bob" {
			if oid := xmpp.Child(st.El, muc.NSOccupantID, "occupant-id"); oid != nil {
				bobOID = oid.SelectAttrValue("id", "")
			}
		}
	}
	if bobOID == "" {
		t.Fatal("bob's self-presence has no occupant-id")
	}
	bob.ExpectResult(bob.IQ("set", teamRoom, "<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query>"),
		"the instant config")
	bob.Send("<message to='%s' type='groupchat'><subject>xmpp.js &lt;&amp;&gt;</subject></message>", teamRoom)
	rawSay(t, bob, teamRoom, "said before")
	const nick, newNick = "Jules", "Jülie ☃"
	p := startRoomPeer(bob, teamRoom, nick)

	host, port, _ := net.SplitHostPort(s.DirectTLSAddr)
	pn, _ := strconv.Atoi(port)
	cfg := xmppjsMUCConfig{goxmppMUCConfig: goxmppMUCConfig{clientConfig: clientConfig{Host: host, Port: pn, TLS: "direct",
		Domain: s.Domain, JID: aliceJID, Password: clientPassword, CAFile: writeCA(t, s), Body: clientBody, Reply: peerReply,
		StepTimeout: stepTimeout.Seconds()}, Room: teamRoom, Nick: nick}, NewNick: newNick}
	lib := library{name: "xmpp.js", command: func(clientConfig) (*exec.Cmd, error) {
		b, err := json.Marshal(cfg)
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(node, filepath.Join(dir, "muc.mjs"), string(b))
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "NODE_EXTRA_CA_CERTS="+cfg.CAFile)
		return cmd, nil
	}}
	results, runErr, stderr := run(t, lib, cfg.clientConfig)
	p.stop()
	byStep := map[string]stepResult{}
	for _, r := range results {
		byStep[r.Step] = r
	}
	for _, step := range []string{"login", "join", "message", "nick", "leave"} {
		if r, ok := byStep[step]; !ok || !r.OK {
			t.Fatalf("xmpp.js: step %q: %+v (client: %v)\n%s", step, r, runErr, stderr)
		}
	}

	j := byStep["join"].Detail
	if c := codes(j["codes"]); !slices.Contains(c, "110") {
		t.Errorf("xmpp.js: its self-presence has status codes %v; want 110", c)
	}
	if o := codes(j["occupants"]); !slices.Contains(o, teamRoom+"/Bob") {
		t.Errorf("xmpp.js: the occupants before its self-presence are %v; want %s/Bob among them", o, teamRoom)
	}
	if h := codes(j["history"]); fmt.Sprint(h) != fmt.Sprint([]string{"said before"}) || j["stamped"] != true {
		t.Errorf("xmpp.js: the history is %q (all delayed: %v); want [said before], delayed", h, j["stamped"])
	}

	m := byStep["message"].Detail
	if m["stanza_id"] == "" || m["by"] != teamRoom {
		t.Errorf("xmpp.js: the echo had stanza-id %v by %v; want one by %s", m["stanza_id"], m["by"], teamRoom)
	}
	if m["reply_stanza_id"] == "" || m["reply_stanza_id"] == m["stanza_id"] || m["reply_by"] != teamRoom {
		t.Errorf("xmpp.js: bob's answer had stanza-id %v by %v; want one of its own by %s", m["reply_stanza_id"], m["reply_by"], teamRoom)
	}
	if m["reply_occupant_id"] != bobOID {
		t.Errorf("xmpp.js: bob's answer had occupant-id %q; want bob's, %q", m["reply_occupant_id"], bobOID)
	}
	if got, sid := p.seen(); got != 1 || sid != m["stanza_id"] {
		t.Errorf("bob saw %d messages of the client's (stanza-id %q); want 1 with the echo's stanza-id %v", got, sid, m["stanza_id"])
	}

	n := byStep["nick"].Detail
	if c := codes(n["unavailable_codes"]); !slices.Contains(c, "303") || !slices.Contains(c, "110") || n["new_nick"] != newNick {
		t.Errorf("xmpp.js: the nick change's unavailable presence has codes %v and nick %v; want 303, 110 and %q", c, n["new_nick"], newNick)
	}
	if c := codes(n["codes"]); !slices.Contains(c, "110") || n["type"] != "" {
		t.Errorf("xmpp.js: the presence of the new nick has type %q and codes %v; want available with 110", n["type"], c)
	}
	if c := codes(byStep["leave"].Detail["codes"]); !slices.Contains(c, "110") {
		t.Errorf("xmpp.js: the unavailable self-presence of its leave has codes %v; want 110", c)
	}
	if runErr != nil {
		t.Errorf("xmpp.js: every step passed but the client failed: %v\n%s", runErr, stderr)
	}
}
