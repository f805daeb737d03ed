package pep

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/server/local"
	"github.com/parley-im/parley/server/mod/vcard"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// Avatars both ways, as Prosody's mod_vcard_legacy does it: a published
// avatar (XEP-0084) becomes the vCard's PHOTO (XEP-0054), a vCard set
// with a PHOTO publishes the avatar, and the user's available presence
// carries the avatar's hash (XEP-0153) unless the client put one there.
const (
	// NSAvatarData and NSAvatarMetadata are XEP-0084's nodes.
	NSAvatarData     = "urn:xmpp:avatar:data"
	NSAvatarMetadata = "urn:xmpp:avatar:metadata"
	// NSVCardUpdate is XEP-0153's presence extension.
	NSVCardUpdate = "vcard-temp:x:update"
	// NSVCardConversion is XEP-0398's feature: the avatar and the
	// vCard's PHOTO are converted both ways (Prosody lists it too).
	NSVCardConversion = "urn:xmpp:pep-vcard-conversion:0"
)

// avatarConfig is the avatar nodes' configuration when a vCard set makes
// them: open, as Prosody's, so that anyone who may read the vCard sees
// the same picture.
var avatarConfig = storage.PubsubConfig{
	AccessModel: "open", PublishModel: "publishers", MaxItems: 1, PersistItems: true,
	NotifyRetract: true, NotifyDelete: true, SendLast: "on_sub_and_presence",
}

// hashReadTimeout bounds the store read of a session's first presence.
const hashReadTimeout = 2 * time.Second

// noAvatar is the hash of a user without an avatar, shared by all their
// sessions: a session's hash is a pointer (nil: not read yet), so that
// keeping it costs an idle session no allocation of its own.
var noAvatar = new(string)

// neverAvatar is the hash of a user who never published avatar
// metadata: their presence gets no <x/> from the server. An empty
// <photo/> tells contacts to drop an avatar they show (XEP-0153 §4.2),
// which a user who never had one does not need, and every available
// presence is kept for probes: two elements cost each idle session
// about a kilobyte of the server's memory (SCENARIOS=idle make loadtest).
var neverAvatar = new(string)

// hashOf returns the shared pointer for hash.
func hashOf(hash string) *string {
	if hash == "" {
		return noAvatar
	}
	return &hash
}

// hookAvatars registers the presence hash and the vCard observer.
func (m *module) hookAvatars(h *local.Host) {
	m.hashes = local.NewSessionValue[*string](h)
	h.Hook(local.FromClient, xmpp.KindPresence, 0, m.presenceHash)
	vcard.OnSet(h, m.vcardSet)
	h.AccountFeature(NSVCardConversion)
}

// published follows what a client published: an avatar's metadata
// changes the vCard and the presence hash; a bookmark, what the legacy
// bookmarks node says.
func (m *module) published(ctx context.Context, from xmpp.JID, node, id string, payload *etree.Element) {
	switch node {
	case NSAvatarMetadata:
		m.avatarChanged(ctx, from, payload)
	case NSBookmarks:
		m.legacyBookmarksChanged(ctx, from.Bare())
	}
}

// retracted follows a retract (or, with id "", a node's deletion): the
// avatar is then the newest metadata left, or none.
func (m *module) retracted(ctx context.Context, from xmpp.JID, node, id string) {
	if node == NSBookmarks {
		m.legacyBookmarksChanged(ctx, from.Bare())
	}
	if node != NSAvatarMetadata {
		return
	}
	meta, err := m.lastMetadata(ctx, from.Local())
	if err != nil {
		m.h.Logger().Error("pep: avatar metadata", "user", from.Bare().String(), "err", err)
		return
	}
	m.avatarChanged(ctx, from, meta)
}

// lastMetadata returns the newest avatar metadata of user, or nil.
func (m *module) lastMetadata(ctx context.Context, user string) (*etree.Element, error) {
	_, items, err := m.store.PubsubItems(ctx, m.h.Name(), user, NSAvatarMetadata, nil, 1)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && len(items) == 0) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return xmpp.ParseElement(string(items[0].Payload), m.h.StoredLimits())
}

// avatarInfo picks the <info/> of metadata that names the picture: the
// one kept in the data node (no url), else the first; nil when the
// metadata has none (no avatar, XEP-0084 §4.2).
func avatarInfo(meta *etree.Element) *etree.Element {
	if meta == nil {
		return nil
	}
	infos := meta.SelectElements("info")
	for _, i := range infos {
		if i.SelectAttr("url") == nil {
			return i
		}
	}
	if len(infos) > 0 {
		return infos[0]
	}
	return nil
}

// avatarChanged makes meta, the user's newest avatar metadata (nil: none),
// the vCard's PHOTO and the hash of the user's sessions' presence.
func (m *module) avatarChanged(ctx context.Context, from xmpp.JID, meta *etree.Element) {
	user := from.Local()
	log := m.h.Logger().With("user", from.Bare().String())
	info := avatarInfo(meta)
	hash := ""
	var photo *etree.Element
	if info != nil {
		hash = info.SelectAttrValue("id", "")
		photo = etree.NewElement("PHOTO")
		if t := info.SelectAttrValue("type", ""); t != "" {
			photo.CreateElement("TYPE").SetText(t)
		}
		if url := info.SelectAttrValue("url", ""); url != "" {
			photo.CreateElement("EXTVAL").SetText(url)
		} else {
			_, items, err := m.store.PubsubItems(ctx, m.h.Name(), user, NSAvatarData, []string{hash}, 0)
			var data *etree.Element
			if err == nil && len(items) == 1 {
				data, err = xmpp.ParseElement(string(items[0].Payload), m.h.StoredLimits())
			}
			if err != nil && !errors.Is(err, storage.ErrNotFound) {
				log.Error("pep: avatar data", "id", hash, "err", err)
			}
			if data == nil {
				// XEP-0084 §4.1 publishes the data first: metadata
				// without it names nothing the vCard can hold.
				photo = nil
			} else {
				photo.CreateElement("BINVAL").SetText(strings.TrimSpace(data.Text()))
			}
		}
	}
	m.avatarHashes(user, hash)
	err := vcard.SetPhoto(ctx, m.h, user, photo)
	if errors.Is(err, vcard.ErrTooLarge) {
		// The vCard's 64 KiB bound: a PHOTO that names another picture
		// is worse than none.
		log.Warn("pep: the avatar does not fit in the vCard; its PHOTO is removed", "id", hash)
		err = vcard.SetPhoto(ctx, m.h, user, nil)
	}
	if err != nil {
		log.Error("pep: the vCard's PHOTO", "err", err)
	}
}

// vcardSet publishes the PHOTO of a vCard a user sets as the user's
// avatar, unless it is the avatar already; a vCard without a PHOTO
// disables the avatar (XEP-0084 §4.2), as Prosody's conversion does.
func (m *module) vcardSet(ctx context.Context, from xmpp.JID, v *etree.Element) error {
	user := from.Local()
	meta, err := m.lastMetadata(ctx, user)
	if err != nil {
		return err
	}
	cur := ""
	if info := avatarInfo(meta); info != nil {
		cur = info.SelectAttrValue("id", "")
	}
	photo := v.SelectElement("PHOTO")
	var binval string
	if photo != nil {
		if photo.SelectElement("EXTVAL") != nil {
			return nil // no bytes to hash: the avatar stays as it is
		}
		if b := photo.SelectElement("BINVAL"); b != nil {
			// vCard BINVAL is often folded over lines.
			binval = strings.Join(strings.Fields(b.Text()), "")
		}
	}
	if binval == "" {
		if cur == "" {
			return nil
		}
		if err := m.put(ctx, from, NSAvatarMetadata, "current", xmpp.NewElementNS(NSAvatarMetadata, "metadata"), avatarConfig); err != nil {
			return err
		}
		m.avatarHashes(user, "")
		return nil
	}
	raw, err := base64.StdEncoding.DecodeString(binval)
	if err != nil || len(raw) == 0 {
		return xmpp.NewStanzaError(xmpp.BadRequest, "the PHOTO's BINVAL is not base64")
	}
	sum := sha1.Sum(raw)
	hash := hex.EncodeToString(sum[:])
	if hash == cur {
		return nil
	}
	typ := ""
	if t := photo.SelectElement("TYPE"); t != nil {
		typ = strings.TrimSpace(t.Text())
	}
	if typ == "" {
		typ = http.DetectContentType(raw)
	}
	data := xmpp.NewElementNS(NSAvatarData, "data")
	data.SetText(base64.StdEncoding.EncodeToString(raw))
	if err := m.put(ctx, from, NSAvatarData, hash, data, avatarConfig); err != nil {
		return err
	}
	md := xmpp.NewElementNS(NSAvatarMetadata, "metadata")
	info := md.CreateElement("info")
	info.CreateAttr("bytes", strconv.Itoa(len(raw)))
	info.CreateAttr("id", hash)
	info.CreateAttr("type", typ)
	if err := m.put(ctx, from, NSAvatarMetadata, hash, md, avatarConfig); err != nil {
		return err
	}
	m.avatarHashes(user, hash)
	return nil
}

// avatarHashes sets the hash the presence of user's sessions carries.
func (m *module) avatarHashes(user, hash string) {
	p := hashOf(hash)
	for _, s := range m.h.Sessions(user) {
		m.hashes.Set(s, p)
	}
}

// presenceHash adds XEP-0153's <x><photo>hash</photo></x> to what a
// session sends as available presence, unless the client says itself
// (a <photo/> there is left alone, XEP-0153 §4.1).
func (m *module) presenceHash(s local.Session, st *xmpp.Stanza) bool {
	if s == nil || st.Type != "" {
		return false
	}
	x := xmpp.Child(st.El, NSVCardUpdate, "x")
	if x != nil && x.SelectElement("photo") != nil {
		return false
	}
	h := m.hashes.Get(s)
	if h == nil {
		// Once a session: on the sender's own goroutine, which this read
		// delays alone.
		ctx, cancel := context.WithTimeout(context.Background(), hashReadTimeout)
		meta, err := m.lastMetadata(ctx, s.JID().Local())
		cancel()
		if err != nil {
			m.h.Logger().Error("pep: avatar metadata", "user", s.JID().Bare().String(), "err", err)
			return false
		}
		h = neverAvatar
		if meta != nil {
			hash := ""
			if info := avatarInfo(meta); info != nil {
				hash = info.SelectAttrValue("id", "")
			}
			h = hashOf(hash)
		}
		m.hashes.Set(s, h)
	}
	if h == neverAvatar && x == nil {
		return false
	}
	if x == nil {
		x = xmpp.NewElementNS(NSVCardUpdate, "x")
		st.El.AddChild(x)
	}
	photo := x.CreateElement("photo")
	if *h != "" {
		// No text node for an empty hash: every available presence is
		// kept for probes, and an idle session's bytes count.
		photo.SetText(*h)
	}
	return false
}
