package local

import (
	"crypto/sha1"
	"encoding/base64"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/xmpp"
)

// NSCaps is XEP-0115's namespace; CapsNode names Parley in caps.
const (
	NSCaps   = "http://jabber.org/protocol/caps"
	CapsNode = "https://github.com/parley-im/parley"
)

// capsElement returns the <c/> stream feature for a disco#info result
// (XEP-0115 §6.3: a server announces its own capabilities).
func capsElement(info *etree.Element) *etree.Element {
	c := xmpp.NewElementNS(NSCaps, "c")
	c.CreateAttr("hash", "sha-1")
	c.CreateAttr("node", CapsNode)
	c.CreateAttr("ver", capsVer(info))
	return c
}

// capsVer computes the verification string of XEP-0115 §5.1 for a
// disco#info <query/> (xmpp.CapsString), hashed with SHA-1, base64. The
// server's own answer is well formed by construction.
func capsVer(info *etree.Element) string {
	s, _ := xmpp.CapsString(info)
	sum := sha1.Sum([]byte(s))
	return base64.StdEncoding.EncodeToString(sum[:])
}
