package pep_test

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/parley-im/parley/server/mod/pep"
	"github.com/parley-im/parley/xmpp"
)

// picture is an avatar's bytes, its base64 and its SHA-1 (the item id of
// XEP-0084 and the hash of XEP-0153).
type picture struct{ raw, b64, hash string }

func newPicture(raw string) picture {
	sum := sha1.Sum([]byte(raw))
	return picture{raw, base64.StdEncoding.EncodeToString([]byte(raw)), hex.EncodeToString(sum[:])}
}

// publishAvatar publishes p by XEP-0084 §4.1: the data, then the metadata.
func publishAvatar(t *testing.T, c *client, p picture) {
	t.Helper()
	c.ExpectResult(c.IQ("set", "", publish(pep.NSAvatarData, p.hash, fmt.Sprintf("<data xmlns='%s'>%s</data>", pep.NSAvatarData, p.b64))), "avatar data")
	c.ExpectResult(c.IQ("set", "", publish(pep.NSAvatarMetadata, p.hash,
		fmt.Sprintf("<metadata xmlns='%s'><info bytes='%d' id='%s' type='image/png'/></metadata>", pep.NSAvatarMetadata, len(p.raw), p.hash))), "avatar metadata")
}

// vcardPhoto returns the TYPE and BINVAL of the PHOTO of who's vCard as
// c reads it, "" when it has none.
func vcardPhoto(t *testing.T, c *client, who string) (typ, binval string) {
	t.Helper()
	st := c.IQ("get", who, "<vCard xmlns='vcard-temp'/>")
	c.ExpectResult(st, "vCard get")
	photo := st.El.FindElement("vCard/PHOTO")
	if photo == nil {
		return "", ""
	}
	if e := photo.SelectElement("TYPE"); e != nil {
		typ = e.Text()
	}
	if e := photo.SelectElement("BINVAL"); e != nil {
		binval = e.Text()
	}
	return typ, binval
}

// presencePhotos returns what the XEP-0153 <photo/> elements of the
// presence from from among got say, one entry per presence ("-" for a
// presence without one).
func presencePhotos(got []*xmpp.Stanza, from string) []string {
	var out []string
	for _, st := range got {
		if st.Kind != xmpp.KindPresence || st.From.String() != from {
			continue
		}
		x := xmpp.Child(st.El, pep.NSVCardUpdate, "x")
		if x == nil {
			out = append(out, "-")
			continue
		}
		for _, p := range x.SelectElements("photo") {
			out = append(out, p.Text())
		}
	}
	return out
}

// TestAvatarBridge: an avatar published by XEP-0084 becomes the vCard's
// PHOTO and the hash in the user's presence (XEP-0153); a vCard set with
// a PHOTO publishes the avatar; a vCard without one disables it.
func TestAvatarBridge(t *testing.T) {
	s := setup(t)
	alice := login(s, "alice@localhost", "phone", features(pep.NSAvatarMetadata), false)
	alice.available(t, true)
	bob := login(s, "bob@localhost", "desk", features(pep.NSAvatarMetadata), false)
	bob.available(t, false)
	alice.UntilSync()
	bob.UntilSync()

	// presence sends alice's available presence with extra inside and
	// returns the photos bob sees in it.
	presence := func(t *testing.T, c *client, extra string) string {
		t.Helper()
		c.Send("<presence><c xmlns='%s' hash='sha-1' node='%s' ver='%s'/>%s</presence>", nsCaps, ourNode, c.ver, extra)
		c.UntilSync()
		return strings.Join(presencePhotos(bob.UntilSync(), c.JID.String()), ",")
	}
	// A user who never published an avatar gets no <x/> from the server
	// (nothing for contacts to drop; it saves idle sessions memory); one
	// who removed it gets an empty <photo/> (below).
	if got := presence(t, alice, ""); got != "-" {
		t.Errorf("with no avatar ever, bob sees photo %q in alice's presence, want no <x/>", got)
	}

	one := newPicture("\x89PNG\r\n\x1a\nthe first picture")
	two := newPicture("\x89PNG\r\n\x1a\nthe second picture")
	t.Run("0084 to the vCard and presence", func(t *testing.T) {
		publishAvatar(t, alice, one)
		if e := strings.Join(events(bob.UntilSync()), " "); e != pep.NSAvatarMetadata+":item:"+one.hash+"=" {
			t.Errorf("bob heard %q", e)
		}
		if typ, bin := vcardPhoto(t, bob, "alice@localhost"); typ != "image/png" || bin != one.b64 {
			t.Errorf("alice's vCard PHOTO is %q %q, want image/png %q", typ, bin, one.b64)
		}
		if got := presence(t, alice, ""); got != one.hash {
			t.Errorf("bob sees photo %q in alice's presence, want %q", got, one.hash)
		}
		// A new session reads the hash from the store.
		desk := login(s, "alice@localhost", "desk", features(pep.NSAvatarMetadata), false)
		desk.available(t, false)
		if got := strings.Join(presencePhotos(bob.UntilSync(), desk.JID.String()), ","); got != one.hash {
			t.Errorf("bob sees photo %q in the new session's presence, want %q", got, one.hash)
		}
		// XEP-0153 §4.1: a client's own <photo/> is left alone.
		if got := presence(t, alice, "<x xmlns='vcard-temp:x:update'><photo>abc</photo></x>"); got != "abc" {
			t.Errorf("bob sees photo %q, want the client's own abc", got)
		}
	})

	t.Run("vCard to 0084", func(t *testing.T) {
		// BINVAL folded over lines, as vCard clients send it.
		folded := two.b64[:10] + "\n " + two.b64[10:]
		vc := fmt.Sprintf("<vCard xmlns='vcard-temp'><FN>Alice</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>%s</BINVAL></PHOTO></vCard>", folded)
		alice.ExpectResult(alice.IQ("set", "", vc), "vCard set")
		if e := strings.Join(events(bob.UntilSync()), " "); e != pep.NSAvatarMetadata+":item:"+two.hash+"=" {
			t.Errorf("bob heard %q, want the new metadata", e)
		}
		st := bob.IQ("get", "alice@localhost", items(pep.NSAvatarData, ""))
		bob.ExpectResult(st, "avatar data")
		if d := st.El.FindElement("pubsub/items/item/data"); itemIDs(st) != two.hash || d == nil || d.Text() != two.b64 {
			t.Errorf("the data node holds %s", bob.String(st.El))
		}
		st = bob.IQ("get", "alice@localhost", items(pep.NSAvatarMetadata, ""))
		info := st.El.FindElement("pubsub/items/item/metadata/info")
		if info == nil || info.SelectAttrValue("id", "") != two.hash || info.SelectAttrValue("bytes", "") != fmt.Sprint(len(two.raw)) ||
			info.SelectAttrValue("type", "") != "image/png" {
			t.Errorf("the metadata node holds %s", bob.String(st.El))
		}
		if got := presence(t, alice, ""); got != two.hash {
			t.Errorf("bob sees photo %q, want %q", got, two.hash)
		}
		// The same PHOTO again publishes nothing.
		alice.ExpectResult(alice.IQ("set", "", strings.Replace(vc, "Alice", "Alice L.", 1)), "vCard set")
		if e := events(bob.UntilSync()); len(e) > 0 {
			t.Errorf("an unchanged PHOTO was published again: %q", e)
		}
	})

	t.Run("a vCard without PHOTO disables the avatar", func(t *testing.T) {
		alice.ExpectResult(alice.IQ("set", "", "<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>"), "vCard set")
		if e := strings.Join(events(bob.UntilSync()), " "); e != pep.NSAvatarMetadata+":item:current=" {
			t.Errorf("bob heard %q, want the empty metadata", e)
		}
		if got := presence(t, alice, ""); got != "" {
			t.Errorf("bob sees photo %q, want an empty one", got)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		st := alice.IQ("set", "", "<vCard xmlns='vcard-temp'><PHOTO><BINVAL>not base64!</BINVAL></PHOTO></vCard>")
		alice.ExpectError(st, xmpp.BadRequest, "a PHOTO that is not base64")
		if st := bob.IQ("get", "alice@localhost", "<vCard xmlns='vcard-temp'/>"); st.El.FindElement("vCard/FN") == nil {
			t.Errorf("the refused vCard replaced the stored one: %s", bob.String(st.El))
		}
		// An avatar over the vCard's 64 KiB: published, but the vCard
		// has no PHOTO rather than a stale one.
		publishAvatar(t, alice, one)
		big := newPicture(string(bytes.Repeat([]byte{0xAB}, 60<<10)))
		publishAvatar(t, alice, big)
		if _, bin := vcardPhoto(t, bob, "alice@localhost"); bin != "" {
			t.Errorf("the vCard kept a PHOTO of %d bytes", len(bin))
		}
		if got := presence(t, alice, ""); got != big.hash {
			t.Errorf("bob sees photo %q, want %q", got, big.hash)
		}
	})
}

// TestNick: a nickname (XEP-0172) published with presence access reaches
// a contact with +notify, who may read it; a stranger may not.
func TestNick(t *testing.T) {
	const nsNick = "http://jabber.org/protocol/nick"
	s := setup(t)
	alice := login(s, "alice@localhost", "phone", features(), false)
	alice.available(t, true)
	bob := login(s, "bob@localhost", "desk", features(nsNick), false)
	bob.available(t, true)
	dave := login(s, "dave@localhost", "x", features(nsNick), false)
	alice.ExpectResult(alice.IQ("set", "", publish(nsNick, "current", fmt.Sprintf("<nick xmlns='%s'>Ali</nick>", nsNick),
		"pubsub#access_model", "presence")), "nick publish")
	if e := strings.Join(events(bob.UntilSync()), " "); e != nsNick+":item:current=Ali" {
		t.Errorf("bob heard %q", e)
	}
	st := bob.IQ("get", "alice@localhost", items(nsNick, ""))
	if n := st.El.FindElement("pubsub/items/item/nick"); n == nil || n.Text() != "Ali" {
		t.Errorf("bob reads %s", bob.String(st.El))
	}
	dave.ExpectError(dave.IQ("get", "alice@localhost", items(nsNick, "")), xmpp.NotAuthorized, "a stranger reads the nick")
}
