package external_test

import (
	"context"
	"encoding/xml"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/xmpp"
	"mellium.im/xmlstream"
	mxmpp "mellium.im/xmpp"
	"mellium.im/xmpp/component"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"
)

// stanzaIn is what the echo component reads of a stanza.
type stanzaIn struct {
	XMLName xml.Name
	From    string    `xml:"from,attr"`
	To      string    `xml:"to,attr"`
	ID      string    `xml:"id,attr"`
	Type    string    `xml:"type,attr"`
	Body    string    `xml:"body"`
	Query   *xml.Name `xml:"query"`
}

// echo is a mellium component: it answers a message with "echo: " and
// its body, and an iq get with a jabber:iq:version result.
func echo(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	var in stanzaIn
	d := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), xmlstream.Inner(t), xmlstream.Token(start.End())))
	if err := d.Decode(&in); err != nil {
		return err
	}
	attrs := []xml.Attr{{Name: xml.Name{Local: "from"}, Value: in.To}, {Name: xml.Name{Local: "to"}, Value: in.From}, {Name: xml.Name{Local: "id"}, Value: in.ID}}
	switch in.XMLName.Local {
	case "message":
		return t.Encode(struct {
			XMLName xml.Name   `xml:"message"`
			Attrs   []xml.Attr `xml:",any,attr"`
			Body    string     `xml:"body"`
		}{Attrs: append(attrs, xml.Attr{Name: xml.Name{Local: "type"}, Value: "chat"}), Body: "echo: " + in.Body})
	case "iq":
		if in.Type != "get" {
			return nil
		}
		return t.Encode(struct {
			XMLName xml.Name   `xml:"iq"`
			Attrs   []xml.Attr `xml:",any,attr"`
			Query   struct {
				XMLName xml.Name `xml:"jabber:iq:version query"`
				Name    string   `xml:"name"`
			}
		}{Attrs: append(attrs, xml.Attr{Name: xml.Name{Local: "type"}, Value: "result"}), Query: struct {
			XMLName xml.Name `xml:"jabber:iq:version query"`
			Name    string   `xml:"name"`
		}{Name: "mellium echo"}})
	}
	return nil
}

// connectMellium connects mellium's component package as gw with key.
func connectMellium(t *testing.T, addr, key string) (*mxmpp.Session, error) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), parleytest.Timeout)
	defer cancel()
	return component.NewSession(ctx, jid.MustParse(gw), []byte(key), nc)
}

// TestMelliumComponent: mellium's XEP-0114 implementation connects,
// gets a message and an iq for its domain and answers both; sending from
// a foreign domain ends its stream; a wrong secret is refused.
func TestMelliumComponent(t *testing.T) {
	s, addr := start(t)
	s.AddUser("alice@localhost", "a")
	alice := s.Login("alice@localhost", "a", "phone")

	if _, err := connectMellium(t, addr, "wrong"); err == nil {
		t.Fatal("mellium connected with a wrong secret")
	}

	sess, err := connectMellium(t, addr, secret)
	if err != nil {
		t.Fatalf("mellium's component: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- sess.Serve(mxmpp.HandlerFunc(echo)) }()

	alice.Send("<message to='bot@%s' id='e1' type='chat'><body>ping</body></message>", gw)
	got, _ := alice.WaitFor("the echo", func(st *xmpp.Stanza) bool { return st.ID == "e1" })
	if parleytest.Body(got) != "echo: ping" || got.From.String() != "bot@"+gw {
		t.Errorf("alice got %s", alice.String(got.El))
	}
	st := alice.IQ("get", gw, "<query xmlns='jabber:iq:version'/>")
	alice.ExpectResult(st, "the component's version")
	if n := st.El.FindElement("query/name"); n == nil || n.Text() != "mellium echo" {
		t.Errorf("the version answer is %s", alice.String(st.El))
	}

	// A stanza from a foreign domain: the server ends the stream.
	ctx, cancel := context.WithTimeout(context.Background(), parleytest.Timeout)
	defer cancel()
	spoof := xml.NewDecoder(strings.NewReader("<message from='mallory@localhost' to='alice@localhost' id='spoof'><body>x</body></message>"))
	if err := sess.Send(ctx, spoof); err != nil {
		t.Fatalf("send: %v", err)
	}
	select {
	case err := <-served:
		var se stream.Error
		if !errors.As(err, &se) || se.Err != string(xmpp.InvalidFrom) {
			t.Errorf("mellium's Serve ended with %v, want the invalid-from stream error", err)
		}
	case <-time.After(parleytest.Timeout):
		t.Fatal("the spoofing component's stream did not end")
	}
	alice.Send("<iq type='get' id='sync'/>")
	for _, st := range alice.UntilSync() {
		if st.ID == "spoof" {
			t.Errorf("alice got the spoofed message")
		}
	}
}
