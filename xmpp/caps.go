package xmpp

import (
	"sort"
	"strings"

	"github.com/beevik/etree"
)

// CapsString is the string XEP-0115 §5.1 hashes into an entity's ver,
// from its disco#info <query/>: identities, features and extended forms
// (those with a hidden FORM_TYPE), each sorted. ok is false for an
// answer §5.4 calls ill-formed (a repeated identity, feature or form
// type, a FORM_TYPE with several values): such a ver is not trusted.
func CapsString(info *etree.Element) (string, bool) {
	var b strings.Builder
	var ids []string
	seen := map[string]bool{}
	for _, id := range info.SelectElements("identity") {
		s := id.SelectAttrValue("category", "") + "/" + id.SelectAttrValue("type", "") + "/" +
			id.SelectAttrValue("xml:lang", "") + "/" + id.SelectAttrValue("name", "")
		if seen[s] {
			return "", false
		}
		seen[s] = true
		ids = append(ids, s)
	}
	sort.Strings(ids)
	for _, s := range ids {
		b.WriteString(s + "<")
	}
	var feats []string
	seen = map[string]bool{}
	for _, f := range info.SelectElements("feature") {
		v := f.SelectAttrValue("var", "")
		if seen[v] {
			return "", false
		}
		seen[v] = true
		feats = append(feats, v)
	}
	sort.Strings(feats)
	for _, f := range feats {
		b.WriteString(f + "<")
	}
	type form struct {
		typ    string
		fields [][]string // var, then its sorted values
	}
	var forms []form
	types := map[string]bool{}
	for _, x := range info.ChildElements() {
		if x.Tag != "x" || NS(x) != "jabber:x:data" {
			continue
		}
		var f form
		hidden := false
		for _, field := range x.SelectElements("field") {
			v := field.SelectAttrValue("var", "")
			var vals []string
			for _, val := range field.SelectElements("value") {
				vals = append(vals, val.Text())
			}
			if v == "FORM_TYPE" {
				for _, val := range vals {
					if val != vals[0] {
						return "", false
					}
				}
				if len(vals) > 0 {
					f.typ = vals[0]
				}
				hidden = field.SelectAttrValue("type", "") == "hidden"
				continue
			}
			sort.Strings(vals)
			f.fields = append(f.fields, append([]string{v}, vals...))
		}
		if !hidden || f.typ == "" {
			// §5.4 3.6: ignored.
			continue
		}
		if types[f.typ] {
			return "", false
		}
		types[f.typ] = true
		sort.Slice(f.fields, func(i, j int) bool { return f.fields[i][0] < f.fields[j][0] })
		forms = append(forms, f)
	}
	sort.Slice(forms, func(i, j int) bool { return forms[i].typ < forms[j].typ })
	for _, f := range forms {
		b.WriteString(f.typ + "<")
		for _, field := range f.fields {
			for _, v := range field {
				b.WriteString(v + "<")
			}
		}
	}
	return b.String(), true
}
