package interop

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"testing"

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
func TestMelliumMUC(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), runTimeout)
	defer cancel()
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
	defer p.stop()

	nc, err := (&tls.Dialer{Config: s.TLSConfig(s.Domain)}).DialContext(ctx, "tcp", s.DirectTLSAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sess, err := xmpp.NewClientSession(ctx, jid.MustParse(aliceJID), nc,
		xmpp.SASL("", clientPassword, sasl.ScramSha256), xmpp.BindResource())
	if err != nil {
		t.Fatalf("mellium: log in: %v", err)
	}
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
	served := make(chan error, 1)
	go func() { served <- sess.Serve(m) }()
	defer func() {
		if err := sess.Close(); err != nil {
			t.Errorf("mellium: close: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("mellium: Serve: %v", err)
		}
	}()

	me := jid.MustParse(teamRoom + "/Mel")
	ch, err := mc.Join(ctx, me, sess)
	if err != nil {
		t.Fatalf("mellium: join %s: %v", me, err)
	}
	if !ch.Me().Equal(me) {
		t.Errorf("mellium: joined as %s; want %s", ch.Me(), me)
	}
	body := xmlstream.Wrap(xmlstream.Token(xml.CharData(clientBody)), xml.StartElement{Name: xml.Name{Local: "body"}})
	if err := sess.Send(ctx, stanza.Message{To: ch.Addr(), Type: stanza.GroupChatMessage}.Wrap(body)); err != nil {
		t.Fatalf("mellium: send: %v", err)
	}
	var echo, reply *melliumGroupchat
	for echo == nil || reply == nil {
		select {
		case gc := <-msgs:
			switch {
			case gc.From.Equal(me) && gc.Body == clientBody:
				echo = &gc
			case gc.From.Resourcepart() == "Bob" && gc.Body == peerReply:
				reply = &gc
			}
		case <-ctx.Done():
			t.Fatalf("mellium: echo %v, bob's answer %v: %v", echo != nil, reply != nil, ctx.Err())
		}
	}
	if echo.StanzaID.ID == "" || echo.StanzaID.By != teamRoom {
		t.Errorf("mellium: the echo's stanza-id is %+v; want one by %s", echo.StanzaID, teamRoom)
	}
	// Leave returns when the room's unavailable self-presence came (or an
	// error, or ctx's end). Not checked: Channel.Joined, which in v0.22.0
	// looks the room up by its bare JID where Join keyed it by the
	// occupant JID, and so is false from the start.
	if err := ch.Leave(ctx, "bye"); err != nil {
		t.Errorf("mellium: leave: %v", err)
	}
	if n, sid := p.seen(); n != 1 || sid != echo.StanzaID.ID {
		t.Errorf("bob saw %d messages from Mel (stanza-id %q); want 1 with %q", n, sid, echo.StanzaID.ID)
	}
}
