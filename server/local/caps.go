package local

import (
	"crypto/sha1"
	"encoding/base64"
	"sort"
	"strings"

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
// disco#info <query/>: identities, features and extended forms, sorted,
// hashed with SHA-1, base64.
func capsVer(info *etree.Element) string {
	var b strings.Builder
	var ids []string
	for _, id := range info.SelectElements("identity") {
		ids = append(ids, id.SelectAttrValue("category", "")+"/"+id.SelectAttrValue("type", "")+"/"+
			id.SelectAttrValue("xml:lang", "")+"/"+id.SelectAttrValue("name", ""))
	}
	sort.Strings(ids)
	for _, id := range ids {
		b.WriteString(id + "<")
	}
	var feats []string
	for _, f := range info.SelectElements("feature") {
		feats = append(feats, f.SelectAttrValue("var", ""))
	}
	sort.Strings(feats)
	for _, f := range feats {
		b.WriteString(f + "<")
	}
	type form struct {
		formType string
		fields   [][]string // var, then sorted values
	}
	var forms []form
	for _, x := range info.ChildElements() {
		if x.Tag != "x" || xmpp.NS(x) != "jabber:x:data" {
			continue
		}
		var f form
		for _, field := range x.SelectElements("field") {
			v := field.SelectAttrValue("var", "")
			var vals []string
			for _, val := range field.SelectElements("value") {
				vals = append(vals, val.Text())
			}
			if v == "FORM_TYPE" {
				if len(vals) > 0 {
					f.formType = vals[0]
				}
				continue
			}
			sort.Strings(vals)
			f.fields = append(f.fields, append([]string{v}, vals...))
		}
		sort.Slice(f.fields, func(i, j int) bool { return f.fields[i][0] < f.fields[j][0] })
		forms = append(forms, f)
	}
	sort.Slice(forms, func(i, j int) bool { return forms[i].formType < forms[j].formType })
	for _, f := range forms {
		b.WriteString(f.formType + "<")
		for _, field := range f.fields {
			for _, v := range field {
				b.WriteString(v + "<")
			}
		}
	}
	sum := sha1.Sum([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(sum[:])
}
