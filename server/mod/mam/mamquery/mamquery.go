// Package mamquery is what every archive that answers XEP-0313 queries
// shares: reading a query's form and RSM set (XEP-0059) into a
// storage.ArchiveQuery with XEP-0313's errors, the form of the fields,
// wrapping an archived message in its <result/>, and the <fin/>. A
// user's archive (package server/mod/mam) and a room's (package
// components/muc) differ in who may ask and whose archive is read, not
// in the protocol.
//
// It is not a module and registers nothing.
package mamquery

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// The namespaces of an archive's queries.
const (
	NS         = "urn:xmpp:mam:2"
	NSExtended = "urn:xmpp:mam:2#extended"
	NSSID      = "urn:xmpp:sid:0"
	NSRSM      = "http://jabber.org/protocol/rsm"
	NSForward  = "urn:xmpp:forward:0"
	nsData     = "jabber:x:data"
)

// Full-text search (XEP-0431), for archives that index bodies.
const (
	// NSFulltext is XEP-0431's feature.
	NSFulltext = "urn:xmpp:fulltext:0"
	// FieldFulltext is XEP-0431's form field: Clark notation, as XEP-0068
	// names fields of other specifications.
	FieldFulltext = "{" + NSFulltext + "}fulltext"
)

// DefaultPage is a page's size when the query sets no max (Prosody's).
const DefaultPage = 20

// badRequest is a bad-request error with text.
func badRequest(format string, args ...any) error {
	return xmpp.NewStanzaError(xmpp.BadRequest, fmt.Sprintf(format, args...))
}

// Parse reads a query's form and RSM set into a storage query, with the
// errors XEP-0313 names: bad-request for what is malformed,
// feature-not-implemented for a field the server does not know (§4.1.5).
// A larger RSM max than maxPage is clamped to it (§4.3.1 lets the server
// return fewer), more ids are policy-violation. The full-text field is
// known only when search is on: off, it is a field like any other the
// server does not recognise, and XEP-0313 §4.1.5 says "MUST respond with
// a 'feature-not-implemented' error" (not bad-request: the form is well
// made, this server lacks the feature). flip is XEP-0313's <flip-page/>.
func Parse(q *etree.Element, maxPage int, search bool) (sq storage.ArchiveQuery, flip bool, err error) {
	sq.Max = DefaultPage
	if x := xmpp.Child(q, nsData, "x"); x != nil {
		if t := x.SelectAttrValue("type", "submit"); t != "submit" {
			return sq, false, badRequest("the form's type is %q, not submit", t)
		}
		seen := map[string]bool{}
		for _, f := range x.SelectElements("field") {
			name := f.SelectAttrValue("var", "")
			if seen[name] {
				return sq, false, badRequest("the field %q is given twice", name)
			}
			seen[name] = true
			var vals []string
			for _, v := range f.SelectElements("value") {
				vals = append(vals, v.Text())
			}
			one := func() (string, error) {
				if len(vals) != 1 {
					return "", badRequest("the field %q needs one value, it has %d", name, len(vals))
				}
				return vals[0], nil
			}
			var v string
			if name == FieldFulltext && search && len(vals) == 0 {
				// A text-single field left empty: no search (XEP-0431
				// §2.2: the text is used "if non-empty").
				vals = []string{""}
			}
			if name != "ids" {
				if v, err = one(); err != nil {
					return sq, false, err
				}
			}
			switch name {
			case "FORM_TYPE":
				if v != NS {
					return sq, false, badRequest("FORM_TYPE is %q, not %s", v, NS)
				}
			case "with":
				j, err := xmpp.Parse(v)
				if err != nil {
					return sq, false, xmpp.NewStanzaError(xmpp.JIDMalformed, "with is not a JID")
				}
				sq.With, sq.Resource = j.Bare().String(), j.Resource()
			case "start", "end":
				t, err := time.Parse(time.RFC3339Nano, v)
				if err != nil {
					return sq, false, badRequest("%s is not a XEP-0082 date and time", name)
				}
				if name == "start" {
					sq.Start = t
				} else {
					sq.End = t
				}
			case "after-id":
				sq.AfterID = v
			case "before-id":
				sq.BeforeID = v
			case "ids":
				if len(vals) == 0 {
					return sq, false, badRequest("ids has no value")
				}
				if len(vals) > maxPage {
					return sq, false, xmpp.NewStanzaError(xmpp.PolicyViolation, fmt.Sprintf("at most %d ids at once", maxPage))
				}
				sq.IDs = vals
			case FieldFulltext:
				if !search {
					return sq, false, xmpp.NewStanzaError(xmpp.FeatureNotImplemented, "full-text search is off on this server")
				}
				if sq.Search, err = searchText(v); err != nil {
					return sq, false, err
				}
			default:
				return sq, false, xmpp.NewStanzaError(xmpp.FeatureNotImplemented, fmt.Sprintf("the field %q is not supported", name))
			}
		}
	}
	if set := xmpp.Child(q, NSRSM, "set"); set != nil {
		if mx := xmpp.Child(set, NSRSM, "max"); mx != nil {
			n, err := strconv.Atoi(mx.Text())
			if err != nil || n < 0 {
				return sq, false, badRequest("RSM max is not a number of items")
			}
			sq.Max = min(n, maxPage)
		}
		if xmpp.Child(set, NSRSM, "index") != nil {
			return sq, false, xmpp.NewStanzaError(xmpp.FeatureNotImplemented, "RSM index is not supported: page by after or before")
		}
		a, b := xmpp.Child(set, NSRSM, "after"), xmpp.Child(set, NSRSM, "before")
		if a != nil && b != nil {
			return sq, false, badRequest("RSM after and before together: use after-id and before-id")
		}
		if a != nil {
			if sq.After = a.Text(); sq.After == "" {
				return sq, false, badRequest("RSM after is empty")
			}
		}
		if b != nil {
			sq.Before, sq.Backward = b.Text(), true
		}
	}
	// A count is the index range of the whole set: at 1,000,000 messages
	// ~150 ms. Given only when asked for it with max 0 (XEP-0059 §2.7),
	// as Prosody does for unbounded archives.
	sq.Count = sq.Max == 0
	flip = xmpp.Child(q, NS, "flip-page") != nil
	return sq, flip, nil
}

// searchText checks the text of a full-text search. Empty or blank, it
// searches nothing: all messages match (XEP-0431 §2.2: the field is used
// "if non-empty"). Longer than storage.MaxArchiveSearch characters is
// not-acceptable: a limit of this server, not a malformed request; with
// no letter or digit, nothing could be looked up, and rather than answer
// with all messages or none it is bad-request. XEP-0431 leaves the
// syntax to the server and asks clients not to use special characters:
// storage reads the text as terms only, so no character is special.
func searchText(v string) (string, error) {
	if strings.TrimSpace(v) == "" {
		return "", nil
	}
	if n := utf8.RuneCountInString(v); n > storage.MaxArchiveSearch {
		return "", xmpp.NewStanzaError(xmpp.NotAcceptable, fmt.Sprintf("the search has %d characters, at most %d", n, storage.MaxArchiveSearch))
	}
	if len(storage.SearchTerms(v)) == 0 {
		return "", badRequest("the search has no word to look for")
	}
	return v, nil
}

// StoreError returns the stanza error a query's storage error means
// (XEP-0313: item-not-found for an id not in the archive; too much at
// once is policy-violation), or nil when it is the server's own failure.
func StoreError(err error) *xmpp.StanzaError {
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return xmpp.NewStanzaError(xmpp.ItemNotFound, "no such message in the archive")
	case errors.Is(err, storage.ErrArchiveQuery):
		return xmpp.NewStanzaError(xmpp.PolicyViolation, "too much at once")
	}
	return nil
}

// Form returns the query form's answer (§4.1.5): the fields supported,
// with XEP-0431's when search is on.
func Form(search bool) *etree.Element {
	q := xmpp.NewElementNS(NS, "query")
	x := q.CreateElement("x")
	x.CreateAttr("xmlns", nsData)
	x.CreateAttr("type", "form")
	ft := x.CreateElement("field")
	ft.CreateAttr("type", "hidden")
	ft.CreateAttr("var", "FORM_TYPE")
	ft.CreateElement("value").SetText(NS)
	for _, f := range [][2]string{{"with", "jid-single"}, {"start", "text-single"}, {"end", "text-single"},
		{"before-id", "text-single"}, {"after-id", "text-single"}, {"ids", "list-multi"}} {
		el := x.CreateElement("field")
		el.CreateAttr("type", f[1])
		el.CreateAttr("var", f[0])
		if f[0] == "ids" {
			v := el.CreateElement("validate")
			v.CreateAttr("xmlns", "http://jabber.org/protocol/xdata-validate")
			v.CreateAttr("datatype", "xs:string")
			v.CreateElement("open")
		}
	}
	if search {
		el := x.CreateElement("field")
		el.CreateAttr("type", "text-single")
		el.CreateAttr("var", FieldFulltext)
	}
	return q
}

// Result returns the message that carries one archived message to the
// querier, without from and to: its <result/> with the query's id and
// the message's, and the forwarded original (orig, in jabber:client)
// with a delay stamped by delayFrom.
func Result(queryID string, am storage.ArchivedMessage, orig *etree.Element, delayFrom string) *etree.Element {
	if orig.SelectAttr("xmlns") == nil {
		orig.CreateAttr("xmlns", xmpp.NSClient)
	}
	msg := etree.NewElement("message")
	res := msg.CreateElement("result")
	res.CreateAttr("xmlns", NS)
	if queryID != "" {
		res.CreateAttr("queryid", queryID)
	}
	res.CreateAttr("id", am.ID)
	fwd := res.CreateElement("forwarded")
	fwd.CreateAttr("xmlns", NSForward)
	fwd.AddChild(xmpp.NewDelay(delayFrom, am.At))
	fwd.AddChild(orig)
	return msg
}

// Fin returns the <fin/> of a page (§4.3.2): complete, and the RSM set's
// first, last and count.
func Fin(page storage.ArchivePage) *etree.Element {
	fin := xmpp.NewElementNS(NS, "fin")
	if page.Complete {
		fin.CreateAttr("complete", "true")
	}
	set := fin.CreateElement("set")
	set.CreateAttr("xmlns", NSRSM)
	if len(page.Messages) > 0 {
		set.CreateElement("first").SetText(page.Messages[0].ID)
		set.CreateElement("last").SetText(page.Messages[len(page.Messages)-1].ID)
	}
	if page.Count >= 0 {
		set.CreateElement("count").SetText(strconv.Itoa(page.Count))
	}
	return fin
}

// Metadata returns the archive's <metadata/> (§5): the id and time of its
// first and last messages, or nothing in it when ok is false (an empty
// archive, as Prosody answers one).
func Metadata(first, last storage.ArchivedMessage, ok bool) *etree.Element {
	md := xmpp.NewElementNS(NS, "metadata")
	if !ok {
		return md
	}
	for _, b := range []struct {
		name string
		m    storage.ArchivedMessage
	}{{"start", first}, {"end", last}} {
		el := md.CreateElement(b.name)
		el.CreateAttr("id", b.m.ID)
		el.CreateAttr("timestamp", b.m.At.UTC().Format("2006-01-02T15:04:05.000Z"))
	}
	return md
}
