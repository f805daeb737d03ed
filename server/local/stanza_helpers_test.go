package local

import "github.com/parley-im/parley/xmpp"

// parseStanza reads a stanza a test writes as text.
func parseStanza(data []byte) (*xmpp.Stanza, error) {
	el, err := xmpp.ParseElement(string(data), xmpp.Limits{MaxStanza: 1 << 20})
	if err != nil {
		return nil, err
	}
	return xmpp.NewStanza(el)
}
