package muc_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/components/muc"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/xmpp"
)

// service is the muc host of the test servers.
const service = "muc.localhost"

// withMUC adds the muc host; edit changes its options (may be nil).
func withMUC(edit func(*muc.Options)) parleytest.Option {
	return parleytest.WithConfig(func(c *conf.Config) {
		o := &muc.Options{RestrictRoomCreation: muc.CreateLocal, HistoryLength: 20, AvatarMaxBytes: 64 * conf.KiB}
		if edit != nil {
			edit(o)
		}
		c.Hosts = append(c.Hosts, conf.Host{Name: service, Type: muc.HostType, Options: o})
	})
}

// startMUC starts a server with a muc host and the users named, each
// with password "pw".
func startMUC(t testing.TB, users []string, opts ...parleytest.Option) *parleytest.Server {
	t.Helper()
	s := parleytest.Start(t, append([]parleytest.Option{withMUC(nil)}, opts...)...)
	for _, u := range users {
		s.AddUser(u+"@localhost", "pw")
	}
	return s
}

// login logs user in with resource res and sends initial presence.
func login(t testing.TB, s *parleytest.Server, user, res string) *parleytest.Conn {
	t.Helper()
	c := s.Login(user+"@localhost", "pw", res)
	c.Send("<presence/>")
	c.UntilSync()
	return c
}

// roomJID is room@service, or room@service/nick.
func roomJID(room, nick string) string {
	if nick == "" {
		return room + "@" + service
	}
	return room + "@" + service + "/" + nick
}

// isSelf reports whether st is a self-presence (status 110).
func isSelf(st *xmpp.Stanza) bool {
	return st.Kind == xmpp.KindPresence && slices.Contains(statusCodes(st), "110")
}

// statusCodes returns the muc#user status codes of st.
func statusCodes(st *xmpp.Stanza) []string {
	x := xmpp.Child(st.El, muc.NSMUCUser, "x")
	if x == nil {
		return nil
	}
	var out []string
	for _, s := range x.SelectElements("status") {
		out = append(out, s.SelectAttrValue("code", ""))
	}
	return out
}

// item returns the muc#user item of st, or nil.
func item(st *xmpp.Stanza) *etree.Element {
	x := xmpp.Child(st.El, muc.NSMUCUser, "x")
	if x == nil {
		return nil
	}
	return x.SelectElement("item")
}

// occupantID returns the occupant-id of st, "" when it has none.
func occupantID(st *xmpp.Stanza) string {
	if o := xmpp.Child(st.El, muc.NSOccupantID, "occupant-id"); o != nil {
		return o.SelectAttrValue("id", "")
	}
	return ""
}

// join sends a join of room as nick with extra inside the MUC <x/>, and
// returns what came up to and including the subject (a join's last
// stanza), or up to an error presence.
func join(t testing.TB, c *parleytest.Conn, room, nick, extra string) []*xmpp.Stanza {
	t.Helper()
	c.Send("<presence to='%s'><x xmlns='%s'>%s</x></presence>", roomJID(room, nick), muc.NSMUC, extra)
	last, before := c.WaitFor("the end of the join of "+room, func(st *xmpp.Stanza) bool {
		if st.Kind == xmpp.KindPresence && st.Type == "error" && st.From.Bare().String() == roomJID(room, "") {
			return true
		}
		return st.Kind == xmpp.KindMessage && st.Type == "groupchat" && xmpp.Child(st.El, "", "subject") != nil &&
			xmpp.Child(st.El, "", "body") == nil
	})
	return append(before, last)
}

// create makes room as nick from c and accepts the default
// configuration (an instant room).
func create(t testing.TB, c *parleytest.Conn, room, nick string) {
	t.Helper()
	join(t, c, room, nick, "")
	c.ExpectResult(c.IQ("set", roomJID(room, ""), instant), "the instant room's config")
}

// instant is the owner query that accepts the default configuration.
const instant = "<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query>"

// configure submits fields (var → value) to room's config form.
func configure(c *parleytest.Conn, room string, fields map[string]string) *xmpp.Stanza {
	var b strings.Builder
	for k, v := range fields {
		fmt.Fprintf(&b, "<field var='%s'><value>%s</value></field>", k, v)
	}
	return c.IQ("set", roomJID(room, ""), "<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>"+
		"<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>"+b.String()+"</x></query>")
}

// say sends a groupchat body to room.
func say(c *parleytest.Conn, room, id, body string) {
	c.Send("<message to='%s' type='groupchat' id='%s'><body>%s</body></message>", roomJID(room, ""), id, body)
}

// nextGroupchat reads until a groupchat message with a body.
func nextGroupchat(t testing.TB, c *parleytest.Conn) *xmpp.Stanza {
	t.Helper()
	st, _ := c.WaitFor("a groupchat message", func(st *xmpp.Stanza) bool {
		return st.Kind == xmpp.KindMessage && st.Type == "groupchat" && parleytest.Body(st) != ""
	})
	return st
}

// describe lists stanzas briefly: kind, from's resource, codes, body.
func describe(sts []*xmpp.Stanza) string {
	var out []string
	for _, st := range sts {
		d := st.Kind.String() + ":" + st.From.Resource()
		if st.Type != "" {
			d += "/" + st.Type
		}
		if c := statusCodes(st); len(c) > 0 {
			d += "[" + strings.Join(c, ",") + "]"
		}
		if b := parleytest.Body(st); b != "" {
			d += "=" + b
		}
		if st.Kind == xmpp.KindMessage && xmpp.Child(st.El, "", "subject") != nil && parleytest.Body(st) == "" {
			d += "(subject)"
		}
		out = append(out, d)
	}
	return strings.Join(out, " ")
}
