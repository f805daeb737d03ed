package muc_test

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/parley-im/parley/components/muc"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/xmpp"
)

// mucOptions edits the options of the muc host that startMUC added.
func mucOptions(edit func(*muc.Options)) parleytest.Option {
	return parleytest.WithConfig(func(c *conf.Config) {
		for i := range c.Hosts {
			if c.Hosts[i].Name == service {
				edit(muc.OptionsOf(&c.Hosts[i]))
			}
		}
	})
}

// avatarImage is a small "image" and the vCard that carries it.
var avatarImage = []byte("<svg xmlns='http://www.w3.org/2000/svg' width='1' height='1'/>")

func photoVCard(img []byte) string {
	return "<vCard xmlns='vcard-temp'><FN>The Team</FN><PHOTO><TYPE>image/svg+xml</TYPE><BINVAL>" +
		base64.StdEncoding.EncodeToString(img) + "</BINVAL></PHOTO></vCard>"
}

// sha1Hex is XEP-0153's hash of img.
func sha1Hex(img []byte) string {
	s := sha1.Sum(img)
	return hex.EncodeToString(s[:])
}

// avatarHash returns the muc#roominfo_avatarhash of room's disco#info
// as c asks it, and whether the room claims vcard-temp.
func avatarHash(t *testing.T, c *parleytest.Conn, room string) (string, bool) {
	t.Helper()
	info := c.IQ("get", roomJID(room, ""), "<query xmlns='http://jabber.org/protocol/disco#info'/>")
	c.ExpectResult(info, "the room's disco#info")
	v, _ := formValue(info, "muc#roominfo_avatarhash")
	return v, slices.Contains(features(info), "vcard-temp")
}

// isAvatarPresence reports whether st is the room's presence with its
// avatar's hash (XEP-0153's update element).
func isAvatarPresence(st *xmpp.Stanza) bool {
	return st.Kind == xmpp.KindPresence && st.From.Resource() == "" && xmpp.Child(st.El, muc.NSVCardUpdate, "x") != nil
}

// TestRoomAvatar: XEP-0486: an owner sets the room's vCard; the
// occupants get the new hash in the room's presence and a 104; anyone
// reads the vCard; disco#info carries the hash; a joiner gets the
// room's presence with it. A non-owner's set, one over avatar_max_bytes
// and a PHOTO that is not base64 are refused and change nothing; an
// empty vCard removes the avatar.
func TestRoomAvatar(t *testing.T) {
	_, alice, bob, carol, dave := team(t, nil, mucOptions(func(o *muc.Options) { o.AvatarMaxBytes = 2 * conf.KiB }))
	if h, ok := avatarHash(t, dave, "team"); h != "" || !ok {
		t.Fatalf("before any avatar: hash %q, vcard-temp claimed %v; want none, claimed", h, ok)
	}
	alice.ExpectResult(alice.IQ("set", roomJID("team", ""), photoVCard(avatarImage)), "the owner sets the avatar")
	want := sha1Hex(avatarImage)
	for _, c := range []*parleytest.Conn{bob, carol} {
		got := c.UntilSync()
		var pres, code *xmpp.Stanza
		for _, st := range got {
			if isAvatarPresence(st) {
				pres = st
			}
			if st.Kind == xmpp.KindMessage && slices.Contains(statusCodes(st), "104") {
				code = st
			}
		}
		if pres == nil || code == nil || pres.El.FindElement("./x/photo").Text() != want {
			t.Errorf("%s got %s; want the room's presence with photo %s and a 104", c.JID, c.Dump(got), want)
		}
	}
	if h, _ := avatarHash(t, dave, "team"); h != want {
		t.Errorf("disco#info's avatar hash %q; want %q", h, want)
	}
	v := dave.IQ("get", roomJID("team", ""), "<vCard xmlns='vcard-temp'/>")
	if bin := v.El.FindElement("./vCard/PHOTO/BINVAL"); v.Type != "result" || bin == nil ||
		bin.Text() != base64.StdEncoding.EncodeToString(avatarImage) {
		t.Errorf("a non-occupant's vCard get: %s; want the PHOTO", dave.String(v.El))
	}
	got := join(t, dave, "team", "Dave", "")
	st, _ := dave.WaitFor("the room's avatar presence", isAvatarPresence)
	if st.El.FindElement("./x/photo").Text() != want {
		t.Errorf("after the join (%s) dave got %s; want the avatar's hash", dave.Dump(got), dave.String(st.El))
	}

	big := make([]byte, 3*1024)
	refusals := []struct {
		name  string
		by    *parleytest.Conn
		vcard string
		want  xmpp.StanzaCondition
	}{
		{"a participant", bob, photoVCard([]byte("mine")), xmpp.Forbidden},
		{"over avatar_max_bytes", alice, photoVCard(big), xmpp.NotAcceptable},
		{"a BINVAL that is not base64", alice, "<vCard xmlns='vcard-temp'><PHOTO><BINVAL>**not base64**</BINVAL></PHOTO></vCard>", xmpp.BadRequest},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			tt.by.ExpectError(tt.by.IQ("set", roomJID("team", ""), tt.vcard), tt.want, tt.name)
		})
	}
	if h, _ := avatarHash(t, dave, "team"); h != want {
		t.Errorf("after the refusals the avatar hash is %q; want %q", h, want)
	}

	alice.ExpectResult(alice.IQ("set", roomJID("team", ""), "<vCard xmlns='vcard-temp'/>"), "the owner removes the avatar")
	if st, _ := carol.WaitFor("the room's presence", isAvatarPresence); st.El.FindElement("./x/photo").Text() != "" {
		t.Errorf("after the removal carol got %s; want an empty photo", carol.String(st.El))
	}
	if h, _ := avatarHash(t, dave, "team"); h != "" {
		t.Errorf("after the removal disco#info has hash %q", h)
	}
	if v := dave.IQ("get", roomJID("team", ""), "<vCard xmlns='vcard-temp'/>"); v.El.FindElement("./vCard/PHOTO") != nil {
		t.Errorf("after the removal the vCard is %s", dave.String(v.El))
	}
}

// TestRoomVCardsOff: avatar_max_bytes = 0: the room answers vCard iqs
// with service-unavailable (XEP-0486 §3.2) and claims no vcard-temp.
func TestRoomVCardsOff(t *testing.T) {
	_, alice, _, _, _ := team(t, nil, mucOptions(func(o *muc.Options) { o.AvatarMaxBytes = 0 }))
	alice.ExpectError(alice.IQ("set", roomJID("team", ""), photoVCard(avatarImage)), xmpp.ServiceUnavailable, "a set")
	if h, ok := avatarHash(t, alice, "team"); h != "" || ok {
		t.Errorf("with room vCards off: hash %q, vcard-temp claimed %v", h, ok)
	}
	info := alice.IQ("get", service, "<query xmlns='http://jabber.org/protocol/disco#info'/>")
	if slices.Contains(features(info), "vcard-temp") {
		t.Errorf("the service claims vcard-temp with room vCards off: %s", alice.String(info.El))
	}
}

// TestRegistrationAndAvatarSurviveRestart: a persistent room's
// registered nicks and vCard are stored: after a restart with the same
// file database the nick is still reserved and the avatar still there.
func TestRegistrationAndAvatarSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	onDisk := parleytest.WithConfig(func(c *conf.Config) {
		c.Database = filepath.Join(dir, "parley.db")
		c.DataDir = dir
	})
	s, alice, bob, _, _ := team(t, map[string]string{"muc#roomconfig_persistentroom": "1"}, onDisk)
	alice.ExpectResult(adminIQ1(alice, "set", "<item affiliation='member' jid='bob@localhost'/>"), "bob member")
	bob.ExpectResult(bob.IQ("set", roomJID("team", ""), regForm(formRegister, "Bobby")), "bob registers")
	alice.ExpectResult(alice.IQ("set", roomJID("team", ""), photoVCard(avatarImage)), "the avatar")
	ctx, cancel := context.WithTimeout(context.Background(), parleytest.Timeout)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	s2 := parleytest.Start(t, withMUC(nil), onDisk)
	bob, carol := login(t, s2, "bob", "b2"), login(t, s2, "carol", "c2")
	if n := roomUserItem(t, bob, "team"); n != "Bobby" {
		t.Errorf("after a restart bob's registered nick is %q; want Bobby", n)
	}
	if got := join(t, carol, "team", "Bobby", ""); parleytest.Condition(got[len(got)-1]) != xmpp.Conflict {
		t.Errorf("after a restart carol's join as Bobby got %s; want conflict", carol.Dump(got))
	}
	if h, _ := avatarHash(t, carol, "team"); h != sha1Hex(avatarImage) {
		t.Errorf("after a restart the avatar hash is %q", h)
	}
	v := carol.IQ("get", roomJID("team", ""), "<vCard xmlns='vcard-temp'/>")
	if fn := v.El.FindElement("./vCard/FN"); fn == nil || !strings.Contains(fn.Text(), "Team") || v.El.FindElement("./vCard/PHOTO/BINVAL") == nil {
		t.Errorf("after a restart the vCard is %s", carol.String(v.El))
	}
}
