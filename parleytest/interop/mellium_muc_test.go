package interop

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/parley-im/parley/parleytest"
	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/muc"
	"mellium.im/xmpp/mux"
	"mellium.im/xmpp/stanza"
)

// melliumGroupchat is a group-chat message a mellium client received.
type melliumGroupchat struct {
	stanza.Message
	Body     string `xml:"body"`
	StanzaID struct {
		ID string `xml:"id,attr"`
		By string `xml:"by,attr"`
	} `xml:"urn:xmpp:sid:0 stanza-id"`
}

// TestMelliumMUC joins the muc host's room with mellium.im/xmpp/muc
// (v0.22.0: Client.Join, which waits for the self-presence, and
// Channel.Leave, which waits for the unavailable one), sends a groupchat
// message that comes back with the room's stanza-id, gets the answer of
// bob, a raw occupant, and leaves.
//
// The client runs in the re-executed test binary, as go-xmpp's does, with
// the race detector's exit code off there: Channel.JoinPresence in
// v0.22.0 reads its join channel field without the lock under which
// Client.HandlePresence sets it to nil, a race of mellium's own that
// would fail every run under `make test`. The server, in this process,
// stays under the detector.
func TestMelliumMUC(t *testing.T) {
	t.Parallel()
	s := parleytest.Start(t, withMUCService())
	s.AddUser(aliceJID, clientPassword)
	s.AddUser(bobJID, bobPassword)
	bob := s.Login(bobJID, bobPassword, "desk")
	bob.Send("<presence/>")
	bob.Sync()
	rawJoin(t, bob, teamRoom, "Bob")
	bob.ExpectResult(bob.IQ("set", teamRoom, "<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query>"),
		"the instant config")
	p := startRoomPeer(bob, teamRoom, "Mel")

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(s.DirectTLSAddr)
	pn, _ := strconv.Atoi(port)
	cfg := goxmppMUCConfig{clientConfig: clientConfig{Host: host, Port: pn, TLS: "direct", Domain: s.Domain,
		JID: aliceJID, Password: clientPassword, CAFile: writeCA(t, s), Body: clientBody, Reply: peerReply,
		StepTimeout: stepTimeout.Seconds()}, Room: teamRoom, Nick: "Mel"}
	lib := library{name: "mellium", command: func(clientConfig) (*exec.Cmd, error) {
		b, err := json.Marshal(cfg)
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(self, "-test.run=^$")
		cmd.Env = append(os.Environ(), envClient+"=mellium-muc", envConfig+"="+string(b), "GORACE=exitcode=0")
		return cmd, nil
	}}
	results, runErr, stderr := run(t, lib, cfg.clientConfig)
	p.stop()
	byStep := map[string]stepResult{}
	for _, r := range results {
		byStep[r.Step] = r
	}
	for _, step := range []string{"login", "join", "message", "leave"} {
		if r, ok := byStep[step]; !ok || !r.OK {
			t.Fatalf("mellium: step %q: %+v (client: %v)\n%s", step, r, runErr, stderr)
		}
	}
	if me := byStep["join"].Detail["me"]; me != teamRoom+"/Mel" {
		t.Errorf("mellium: joined as %v; want %s/Mel", me, teamRoom)
	}
	m := byStep["message"].Detail
	if m["stanza_id"] == "" || m["by"] != teamRoom {
		t.Errorf("mellium: the echo's stanza-id is %v by %v; want one by %s", m["stanza_id"], m["by"], teamRoom)
	}
	if n, sid := p.seen(); n != 1 || sid != m["stanza_id"] {
		t.Errorf("bob saw %d messages from Mel (stanza-id %q); want 1 with %v", n, sid, m["stanza_id"])
	}
	if runErr != nil {
		t.Errorf("mellium: every step passed but the client failed: %v\n%s", runErr, stderr)
	}
}

// melliumMUCMain is the mellium group-chat client, in the re-executed test
// binary: steps login, join, message, leave.
func melliumMUCMain(config string) int {
	var cfg goxmppMUCConfig
	if err := json.Unmarshal([]byte(config), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bad config:", err)
		return 2
	}
	out := json.NewEncoder(os.Stdout)
	emit := func(step string, err error, detail map[string]any) int {
		r := stepResult{Step: step, OK: err == nil, Detail: detail}
		if err != nil {
			r.Error = err.Error()
		}
		_ = out.Encode(r)
		if err != nil {
			return 1
		}
		return 0
	}
	timeout := time.Duration(cfg.StepTimeout * float64(time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 4*timeout)
	defer cancel()
	step := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, timeout) }

	pem, err := os.ReadFile(cfg.CAFile)
	if err != nil {
		return emit("login", err, nil)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	sctx, scancel := step()
	defer scancel()
	nc, err := (&tls.Dialer{Config: &tls.Config{ServerName: cfg.Domain, RootCAs: roots, MinVersion: tls.VersionTLS12}}).
		DialContext(sctx, "tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)))
	if err != nil {
		return emit("login", err, nil)
	}
	defer nc.Close()
	sess, err := xmpp.NewClientSession(sctx, jid.MustParse(cfg.JID), nc,
		xmpp.SASL("", cfg.Password, sasl.ScramSha256), xmpp.BindResource())
	if err != nil {
		return emit("login", err, nil)
	}
	emit("login", nil, map[string]any{"jid": sess.LocalAddr().String()})

	msgs := make(chan melliumGroupchat, 16)
	mc := &muc.Client{}
	m := mux.New(stanza.NSClient,
		muc.HandleClient(mc),
		mux.MessageFunc(stanza.GroupChatMessage, xml.Name{Local: "body"}, func(_ stanza.Message, r xmlstream.TokenReadEncoder) error {
			var gc melliumGroupchat
			if err := xml.NewTokenDecoder(r).Decode(&gc); err != nil {
				return err
			}
			select {
			case msgs <- gc:
			default:
			}
			return nil
		}),
	)
	go func() { _ = sess.Serve(m) }()

	me := jid.MustParse(cfg.Room + "/" + cfg.Nick)
	jctx, jcancel := step()
	defer jcancel()
	ch, err := mc.Join(jctx, me, sess)
	if err != nil {
		return emit("join", fmt.Errorf("join %s: %w", me, err), nil)
	}
	emit("join", nil, map[string]any{"me": ch.Me().String()})

	body := xmlstream.Wrap(xmlstream.Token(xml.CharData(cfg.Body)), xml.StartElement{Name: xml.Name{Local: "body"}})
	mctx, mcancel := step()
	defer mcancel()
	if err := sess.Send(mctx, stanza.Message{To: ch.Addr(), Type: stanza.GroupChatMessage}.Wrap(body)); err != nil {
		return emit("message", err, nil)
	}
	var echo *melliumGroupchat
	for replied := false; echo == nil || !replied; {
		select {
		case gc := <-msgs:
			switch {
			case gc.From.Equal(me) && gc.Body == cfg.Body:
				echo = &gc
			case gc.From.Resourcepart() == "Bob" && gc.Body == cfg.Reply:
				replied = true
			}
		case <-mctx.Done():
			return emit("message", fmt.Errorf("echo %v, bob's answer %v: %w", echo != nil, replied, mctx.Err()), nil)
		}
	}
	emit("message", nil, map[string]any{"stanza_id": echo.StanzaID.ID, "by": echo.StanzaID.By})

	// Leave returns when the room's unavailable self-presence came (or an
	// error, or the context's end). Not checked: Channel.Joined, which in
	// v0.22.0 looks the room up by its bare JID where Join keyed it by
	// the occupant JID, and so is false from the start.
	lctx, lcancel := step()
	defer lcancel()
	if err := ch.Leave(lctx, "bye"); err != nil {
		return emit("leave", err, nil)
	}
	emit("leave", nil, nil)
	if err := sess.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "close:", err)
	}
	return 0
}
