package xmpp

import (
	"fmt"
	"slices"
	"time"

	"github.com/beevik/etree"
)

// Kind is the kind of a stanza: message, presence or iq.
type Kind uint8

// The three stanza kinds of RFC 6120 §8.
const (
	KindNone Kind = iota
	KindMessage
	KindPresence
	KindIQ
)

// String returns the element name of the kind.
func (k Kind) String() string {
	switch k {
	case KindMessage:
		return "message"
	case KindPresence:
		return "presence"
	case KindIQ:
		return "iq"
	}
	return "none"
}

// KindOf returns the kind of a top-level element by its name, KindNone for
// anything that is not a stanza. Top-level elements in the stream's default
// namespace carry no xmlns attribute (see Reader).
func KindOf(el *etree.Element) Kind {
	if el.Space != "" || el.SelectAttr("xmlns") != nil {
		return KindNone
	}
	switch el.Tag {
	case "message":
		return KindMessage
	case "presence":
		return KindPresence
	case "iq":
		return KindIQ
	}
	return KindNone
}

// Stanza is a message, presence or iq with its addressing read once. The
// tree is El; To, From, ID and Type mirror its attributes. Once routed a
// stanza is immutable: fan-out copies before changing.
type Stanza struct {
	El   *etree.Element
	Kind Kind
	Type string
	ID   string
	To   JID
	From JID
}

// NewStanza wraps el. It fails with a *StanzaError (jid-malformed or
// bad-request) when el is not a stanza or its addresses do not parse; the
// returned Stanza is still usable for an error reply then, with whatever
// could be read.
func NewStanza(el *etree.Element) (*Stanza, error) {
	st := &Stanza{El: el, Kind: KindOf(el)}
	if st.Kind == KindNone {
		return st, NewStanzaError(BadRequest, fmt.Sprintf("<%s/> is not a stanza", el.Tag))
	}
	var err error
	for i := range el.Attr {
		a := &el.Attr[i]
		if a.Space != "" {
			continue
		}
		switch a.Key {
		case "type":
			st.Type = a.Value
		case "id":
			st.ID = a.Value
		case "to":
			if st.To, err = Parse(a.Value); err != nil {
				return st, NewStanzaError(JIDMalformed, "the to address is not a valid JID")
			}
		case "from":
			if st.From, err = Parse(a.Value); err != nil {
				return st, NewStanzaError(JIDMalformed, "the from address is not a valid JID")
			}
		}
	}
	if st.Kind == KindIQ {
		switch st.Type {
		case "get", "set":
			if st.ID == "" {
				return st, NewStanzaError(BadRequest, "an iq needs an id")
			}
			if len(el.ChildElements()) != 1 {
				return st, NewStanzaError(BadRequest, "an iq get or set has exactly one child element")
			}
		case "result", "error":
			if st.ID == "" {
				return st, NewStanzaError(BadRequest, "an iq needs an id")
			}
		default:
			return st, NewStanzaError(BadRequest, "an iq has type get, set, result or error")
		}
	}
	return st, nil
}

// SetTo sets the to address, in the struct and the tree. The zero JID
// removes the attribute.
func (s *Stanza) SetTo(j JID) {
	s.To = j
	setAddr(s.El, "to", j)
}

// StampFrom sets from to j, whose string form addr the caller already
// holds (a session renders its bound JID once), saving the rendering on
// every stanza.
func (s *Stanza) StampFrom(j JID, addr string) {
	s.From = j
	setAttr(s.El, "from", addr)
}

// SetFrom sets the from address, in the struct and the tree. The zero JID
// removes the attribute.
func (s *Stanza) SetFrom(j JID) {
	s.From = j
	setAddr(s.El, "from", j)
}

func setAddr(el *etree.Element, key string, j JID) {
	if j.IsZero() {
		el.RemoveAttr(key)
		return
	}
	setAttr(el, key, j.String())
}

// setAttr sets an unprefixed attribute, replacing it in place.
func setAttr(el *etree.Element, key, v string) {
	for i := range el.Attr {
		if el.Attr[i].Space == "" && el.Attr[i].Key == key {
			el.Attr[i].Value = v
			return
		}
	}
	el.CreateAttr(key, v)
}

// IsError reports whether the stanza is of type error; errors are never
// answered with errors.
func (s *Stanza) IsError() bool { return s.Type == "error" }

// Payload returns the first child element of the stanza, or nil. For an iq
// get or set it is the request.
func (s *Stanza) Payload() *etree.Element {
	for _, t := range s.El.Child {
		if c, ok := t.(*etree.Element); ok {
			return c
		}
	}
	return nil
}

// Copy returns a deep copy that may be changed freely.
func (s *Stanza) Copy() *Stanza {
	c := *s
	c.El = s.El.Copy()
	return &c
}

// NewIQ builds an iq of type typ with the given id and addresses; payload
// may be nil.
func NewIQ(typ, id string, from, to JID, payload *etree.Element) *Stanza {
	el := etree.NewElement("iq")
	el.CreateAttr("type", typ)
	el.CreateAttr("id", id)
	st := &Stanza{El: el, Kind: KindIQ, Type: typ, ID: id}
	st.SetFrom(from)
	st.SetTo(to)
	if payload != nil {
		el.AddChild(payload)
	}
	return st
}

// Result returns the iq result that answers s (an iq get or set): to and
// from swapped, the same id, with payload as its child (nil for none).
func (s *Stanza) Result(payload *etree.Element) *Stanza {
	return NewIQ("result", s.ID, s.To, s.From, payload)
}

// ErrorReply returns the error stanza that answers s (RFC 6120 §8.3.1): the
// same kind and id, to and from swapped, type error, with e's <error/>.
// The original payload is not echoed, so an error never carries more than
// the request did.
func (s *Stanza) ErrorReply(e *StanzaError) *Stanza {
	el := etree.NewElement(s.Kind.String())
	el.CreateAttr("type", "error")
	if s.ID != "" {
		el.CreateAttr("id", s.ID)
	}
	r := &Stanza{El: el, Kind: s.Kind, Type: "error", ID: s.ID}
	r.SetFrom(s.To)
	r.SetTo(s.From)
	el.AddChild(e.Element())
	return r
}

// NS returns the namespace of el: its xmlns attribute or the nearest
// ancestor's. It is "" for elements in the stream's default namespace.
func NS(el *etree.Element) string {
	for e := el; e != nil; e = e.Parent() {
		if a := e.SelectAttr("xmlns"); a != nil {
			return a.Value
		}
	}
	return ""
}

// Child returns the first child element of el named local in namespace ns,
// or nil. A child without its own xmlns is in el's namespace.
func Child(el *etree.Element, ns, local string) *etree.Element {
	var parentNS string
	parentKnown := false
	for _, t := range el.Child {
		c, ok := t.(*etree.Element)
		if !ok || c.Tag != local || c.Space != "" {
			continue
		}
		if a := c.SelectAttr("xmlns"); a != nil {
			if a.Value == ns {
				return c
			}
			continue
		}
		if !parentKnown {
			parentNS, parentKnown = NS(el), true
		}
		if parentNS == ns {
			return c
		}
	}
	return nil
}

// NewElementNS returns a new element named local with an explicit xmlns.
func NewElementNS(ns, local string) *etree.Element {
	el := etree.NewElement(local)
	el.CreateAttr("xmlns", ns)
	return el
}

// NewPresence builds a presence of type typ ("" for available) between
// from and to (either may be zero to leave it out).
func NewPresence(typ string, from, to JID) *Stanza {
	el := etree.NewElement("presence")
	if typ != "" {
		el.CreateAttr("type", typ)
	}
	st := &Stanza{El: el, Kind: KindPresence, Type: typ}
	st.SetFrom(from)
	st.SetTo(to)
	return st
}

// NewDelay returns a XEP-0203 <delay/> stamped at (in UTC, with
// milliseconds, as XEP-0082 allows), from the entity that delayed the
// stanza.
func NewDelay(from string, at time.Time) *etree.Element {
	d := NewElementNS(NSDelay, "delay")
	d.CreateAttr("from", from)
	d.CreateAttr("stamp", at.UTC().Format("2006-01-02T15:04:05.000Z"))
	return d
}

// StripForeignDelays removes from a message or presence the XEP-0203
// <delay/> elements whose from is in a domain for which ours reports
// true (a domain of this server, say) and is not the stanza's sender.
// Only this server may claim that it delayed a stanza: a recipient (and
// this server's own stream management, which keeps the first delay from
// its domain) trusts such a stamp as the server's word on when the
// stanza was sent, so a sender that could add one could backdate what it
// says. Delays from the sender itself (a client that composed offline),
// with no from, or from other domains (a remote server's own) are their
// claims and stay; a from that is no JID cannot be checked and goes.
// Iqs carry none.
func StripForeignDelays(st *Stanza, ours func(domain string) bool) {
	if st.Kind != KindMessage && st.Kind != KindPresence {
		return
	}
	DropChildren(st.El, func(c *etree.Element) bool {
		if c.Tag != "delay" || NS(c) != NSDelay {
			return false
		}
		from := c.SelectAttrValue("from", "")
		if from == "" {
			return false
		}
		j, err := Parse(from)
		return err != nil || ours(j.Domain()) && j.Bare() != st.From.Bare()
	})
}

// DropChildren removes from el the child elements for which drop reports
// true and reports whether it removed any. el's children may be shared
// with other elements (a room's copies share the sender's; a fan-out's
// serialization is keyed by the array, xmpp/shared.go): the remaining
// ones go to a new array, cut to its length, and only when one is
// dropped, which most stanzas never need.
func DropChildren(el *etree.Element, drop func(*etree.Element) bool) bool {
	match := func(t etree.Token) bool {
		c, ok := t.(*etree.Element)
		return ok && drop(c)
	}
	if !slices.ContainsFunc(el.Child, match) {
		return false
	}
	kids := slices.DeleteFunc(slices.Clone(el.Child), match)
	el.Child = kids[:len(kids):len(kids)]
	return true
}
