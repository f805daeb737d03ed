package xmpp

import (
	"errors"
	"io"
	"strings"

	"github.com/beevik/etree"
)

// ParseElement reads exactly one element from data, as a client stream
// would carry it: the same restrictions (no DTDs, comments or unknown
// entities) and limits, and namespaces normalized the same way. It is for
// XML that comes from elsewhere than a stream: storage, a webhook's answer.
func ParseElement(data string, l Limits) (*etree.Element, error) {
	r := NewReader(io.MultiReader(
		strings.NewReader("<stream:stream xmlns='"+NSClient+"' xmlns:stream='"+NSStream+"'>"),
		strings.NewReader(data),
		strings.NewReader("</stream:stream>"),
	), l)
	if _, err := r.ReadHeader(); err != nil {
		return nil, err
	}
	el, err := r.ReadElement()
	if err != nil {
		if errors.Is(err, ErrStreamClosed) {
			return nil, errors.New("xmpp: no element")
		}
		return nil, err
	}
	if _, err := r.ReadElement(); !errors.Is(err, ErrStreamClosed) {
		return nil, errors.New("xmpp: more than one element")
	}
	return el, nil
}
