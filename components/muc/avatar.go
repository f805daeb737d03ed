package muc

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/server/local"
	"github.com/parley-im/parley/xmpp"
)

// A room's vCard and avatar (XEP-0054 on the room's JID, XEP-0486): an
// owner sets it, anyone reads it, and the XEP-0153 hash of its PHOTO is
// in the room's disco#info (muc#roominfo_avatarhash) and in a presence
// from the room to each occupant who joins, as Prosody's mod_vcard_muc
// does.
const (
	// NSVCard is vcard-temp's namespace, and its disco#info feature.
	NSVCard = "vcard-temp"
	// NSVCardUpdate carries the avatar's hash in presence (XEP-0153).
	NSVCardUpdate = "vcard-temp:x:update"
)

// vcardLimits bound the parse of a room's stored vCard: at most
// maxAvatarBytes was let in, and what the server wrote itself.
var vcardLimits = xmpp.Limits{MaxStanza: 2 * int64(maxAvatarBytes)}

// vcard handles a vcard-temp iq to the room; r.mu is held. It returns
// true when it released r.mu itself.
func (r *room) vcard(st *xmpp.Stanza, v *etree.Element) bool {
	if r.svc.opts.AvatarMaxBytes == 0 {
		r.bounce(st, xmpp.ServiceUnavailable, "rooms have no vCards on this service")
		return false
	}
	if st.Type == "get" {
		res := xmpp.NewElementNS(NSVCard, "vCard")
		if r.vcardXML != nil {
			el, err := xmpp.ParseElement(string(r.vcardXML), vcardLimits)
			if err != nil {
				r.svc.log.Error("muc: room vCard unreadable", "room", r.name, "err", err)
				r.bounce(st, xmpp.InternalServerError, "the room's vCard cannot be read")
				return false
			}
			res = el
		}
		r.send(st.Result(res))
		return false
	}
	// XEP-0486 §6: only owners, or anyone could put any picture in
	// front of every occupant under the room's name.
	if r.affiliation(st.From.Bare()) != affOwner {
		r.bounce(st, xmpp.Forbidden, "only the room's owners may set its vCard")
		return false
	}
	data := local.Serialize(v)
	if int64(len(data)) > int64(r.svc.opts.AvatarMaxBytes) {
		r.bounce(st, xmpp.NotAcceptable, "the vCard is larger than "+r.svc.opts.AvatarMaxBytes.String())
		return false
	}
	hash, err := photoHash(v)
	if err != nil {
		r.bounce(st, xmpp.BadRequest, err.Error())
		return false
	}
	if len(v.ChildElements()) == 0 {
		data = nil // XEP-0486 §3.2: an empty vCard unpublishes the avatar
	}
	r.vcardXML = data
	if hash != r.avatarHash {
		r.avatarHash = hash
		r.announceAvatar()
	}
	return r.saveAndAnswer(st, "vCard")
}

// photoHash is the XEP-0153 hash of the vCard's PHOTO: the SHA-1 of its
// decoded BINVAL, in hex; "" when it has none.
func photoHash(v *etree.Element) (string, error) {
	p := v.SelectElement("PHOTO")
	if p == nil {
		return "", nil
	}
	b := p.SelectElement("BINVAL")
	if b == nil {
		return "", nil // an EXTVAL: no bytes to hash
	}
	img, err := base64.StdEncoding.DecodeString(strings.Map(dropSpace, b.Text()))
	if err != nil || len(img) == 0 {
		return "", errors.New("the PHOTO's BINVAL is not base64 of an image")
	}
	sum := sha1.Sum(img)
	return hex.EncodeToString(sum[:]), nil
}

// dropSpace removes the white space base64 in XML may be wrapped with.
func dropSpace(c rune) rune {
	switch c {
	case ' ', '\t', '\r', '\n':
		return -1
	}
	return c
}

// avatarPresence is the room's presence that carries its avatar's hash
// (XEP-0153's update element, empty when there is no avatar).
func (r *room) avatarPresence() *etree.Element {
	p := newEl("presence", r.jid, "")
	x := p.CreateElement("x")
	x.CreateAttr("xmlns", NSVCardUpdate)
	x.CreateElement("photo").SetText(r.avatarHash)
	p.Child = p.Child[:len(p.Child):len(p.Child)]
	return p
}

// sendAvatar tells a session that joined of the room's avatar, when it
// has one.
func (r *room) sendAvatar(s *session) {
	if r.avatarHash != "" {
		r.send(to(r.avatarPresence(), xmpp.KindPresence, s, nil))
	}
}

// announceAvatar tells the occupants that the avatar changed: the new
// hash in presence, and status 104 (XEP-0486 §3.2: the room's
// configuration changed), as Prosody sends both.
func (r *room) announceAvatar() {
	p := r.avatarPresence()
	for _, o := range r.occupants {
		for _, s := range o.sessions {
			r.send(to(p, xmpp.KindPresence, s, nil))
		}
	}
	r.configChanged()
}

// configChanged tells the occupants that the room's configuration
// changed (XEP-0045 §10.2.1, status 104), so that their clients ask its
// disco#info again.
func (r *room) configChanged(more ...string) {
	m := newEl("message", r.jid, "groupchat")
	ux := m.CreateElement("x")
	ux.CreateAttr("xmlns", NSMUCUser)
	ux.CreateElement("status").CreateAttr("code", statusConfigChange)
	for _, c := range more {
		ux.CreateElement("status").CreateAttr("code", c)
	}
	m.Child = m.Child[:len(m.Child):len(m.Child)]
	r.fanOut(m)
}

// moreRoomInfo adds to the muc#roominfo form x of the room's disco#info
// what this file and config.go's later fields add: who may invite (as
// Prosody says it: anyone in an open room), who may send private
// messages, and the avatar's hash when there is one (XEP-0486 §3.3).
func (r *room) moreRoomInfo(x *etree.Element) {
	field(x, fAllowInvites, "", "Occupants may invite others", nil, boolStr(r.mayInvite(affMember)))
	field(x, fAllowPM, "", "Who may send private messages", nil, r.cfg.AllowPM)
	if r.avatarHash != "" {
		field(x, "muc#roominfo_avatarhash", "text-multi", "Avatar hash", nil, r.avatarHash)
	}
}

// loadVCard sets the room's stored vCard and its avatar's hash; one that
// cannot be read is logged and dropped.
func (r *room) loadVCard(data []byte) {
	el, err := xmpp.ParseElement(string(data), vcardLimits)
	if err == nil {
		r.avatarHash, err = photoHash(el)
	}
	if err != nil {
		r.svc.log.Warn("muc: stored room vCard unreadable, dropped", "room", r.name, "err", err)
		return
	}
	r.vcardXML = data
}
