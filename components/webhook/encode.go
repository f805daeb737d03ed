package webhook

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"unicode/utf8"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/xmpp"
)

// worker is one worker's scratch space: the buffers a delivery needs,
// reused from one stanza to the next so that posting allocates little.
// Nothing in it outlives the delivery that fills it.
type worker struct {
	xml   bytes.Buffer  // the stanza as XML
	xw    *xmpp.Writer  // writes into xml
	el    etree.Element // the stanza with its xmlns, sharing its children
	attrs []etree.Attr  // el's attributes
	jid   []byte        // a JID being encoded
	body  []byte        // the JSON request
	id    []byte        // the delivery's webhook-id
	req   []byte        // the whole HTTP request (lean client)
	redir []byte        // req redirected to another path (lean client)
	ans   answer        // the answer (lean client); its body is reused
	mac   hash.Hash     // HMAC-SHA256 with the component's key, nil without one
	sum   []byte
}

// maxKeptBuffer is the largest buffer a worker keeps after a delivery;
// a larger one (a big stanza or answer) is dropped.
const maxKeptBuffer = 64 << 10

// newWorker returns a worker's scratch space for c.
func (c *Component) newWorker() *worker {
	w := &worker{}
	w.xw = xmpp.NewWriter(&w.xml)
	if c.key != nil {
		w.mac = hmac.New(sha256.New, c.key)
	}
	return w
}

// release drops what the last delivery left: references to its stanza,
// and buffers grown too large to keep.
func (w *worker) release() {
	clear(w.attrs)
	w.attrs = w.attrs[:0]
	w.el = etree.Element{}
	if w.xml.Cap() > maxKeptBuffer {
		w.xml = bytes.Buffer{}
	}
	if cap(w.body) > maxKeptBuffer {
		w.body = nil
	}
	if cap(w.req) > maxKeptBuffer {
		w.req = nil
	}
	if cap(w.redir) > maxKeptBuffer {
		w.redir = nil
	}
	if cap(w.ans.body) > maxKeptBuffer {
		w.ans.body = nil
	}
	w.ans.body = w.ans.body[:0]
}

// encodeRequest renders st as the posted JSON (a Request), exactly as
// encoding/json would, into w.body.
func (w *worker) encodeRequest(st *xmpp.Stanza) []byte { return w.encodeRoomRequest(st, false) }

// encodeRoomRequest is encodeRequest; when inRoom (st comes from a room
// the bot is in, from room@service/nick), the post also has the room and
// the nick.
func (w *worker) encodeRoomRequest(st *xmpp.Stanza, inRoom bool) []byte {
	// A standalone document: the stanza's namespace made explicit. The
	// stanza is not changed: a shallow copy carries the attribute.
	w.attrs = append(w.attrs[:0], st.El.Attr...)
	found := false
	for i := range w.attrs {
		if a := &w.attrs[i]; a.Space == "" && a.Key == "xmlns" {
			a.Value = xmpp.NSClient
			found = true
		}
	}
	if !found {
		w.attrs = append(w.attrs, etree.Attr{Key: "xmlns", Value: xmpp.NSClient})
	}
	w.el = etree.Element{Space: st.El.Space, Tag: st.El.Tag, Attr: w.attrs, Child: st.El.Child}
	w.xml.Reset()
	_ = w.xw.WriteElement(&w.el)
	_ = w.xw.Flush() // into a bytes.Buffer: cannot fail

	b := append(w.body[:0], `{"to":`...)
	w.jid = st.To.AppendTo(w.jid[:0])
	b = appendJSONString(b, w.jid)
	b = append(b, `,"from":`...)
	w.jid = st.From.AppendTo(w.jid[:0])
	b = appendJSONString(b, w.jid)
	b = append(b, `,"kind":`...)
	b = appendJSONString(b, st.Kind.String())
	b = append(b, `,"stanza":`...)
	b = appendJSONString(b, w.xml.Bytes())
	if st.Kind == xmpp.KindMessage {
		if el := xmpp.Child(st.El, "", "body"); el != nil {
			if text := el.Text(); text != "" {
				b = append(b, `,"body":`...)
				b = appendJSONString(b, text)
			}
		}
	}
	if st.ID != "" {
		b = append(b, `,"id":`...)
		b = appendJSONString(b, st.ID)
	}
	if st.Type != "" {
		b = append(b, `,"type":`...)
		b = appendJSONString(b, st.Type)
	}
	if inRoom && st.From.Resource() != "" {
		b = append(b, `,"room":`...)
		w.jid = st.From.Bare().AppendTo(w.jid[:0])
		b = appendJSONString(b, w.jid)
		b = append(b, `,"nick":`...)
		b = appendJSONString(b, st.From.Resource())
	}
	b = append(b, '}')
	w.body = b
	return b
}

// newMessageID makes a fresh webhook-id in w.id.
func (w *worker) newMessageID() {
	var b [16]byte
	_, _ = rand.Read(b[:])
	w.id = base64.RawURLEncoding.AppendEncode(append(w.id[:0], "msg_"...), b[:])
}

// appendSignature appends what Sign returns, with w's HMAC.
func (w *worker) appendSignature(dst []byte, timestamp int64, body []byte) []byte {
	return appendSign(dst, w.mac, &w.sum, w.id, timestamp, body)
}

const hexDigits = "0123456789abcdef"

// jsonSafe marks the ASCII bytes encoding/json writes as they are, with
// its HTML escaping on (as json.Marshal does): not the controls, '"',
// '\\', '<', '>' and '&'.
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		t[c] = true
	}
	for _, c := range "\"\\<>&" {
		t[c] = false
	}
	return t
}()

// appendJSONString appends s as a JSON string exactly as json.Marshal
// writes it: HTML characters escaped, invalid UTF-8 replaced by U+FFFD,
// U+2028 and U+2029 escaped. (encoding/json's appendString, with
// escapeHTML on.)
func appendJSONString[S []byte | string](dst []byte, s S) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if jsonSafe[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		n := min(len(s)-i, utf8.UTFMax)
		c, size := utf8.DecodeRuneInString(string(s[i : i+n]))
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
