package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/xmpp"
)

// referenceRequest is how the request was made before encodeRequest:
// encoding/json on a Request, with the stanza copied to add its xmlns.
func referenceRequest(t testing.TB, st *xmpp.Stanza) []byte {
	el := st.El.Copy()
	el.CreateAttr("xmlns", xmpp.NSClient)
	var buf bytes.Buffer
	w := xmpp.NewWriter(&buf)
	_ = w.WriteElement(el)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	req := Request{To: st.To.String(), From: st.From.String(), Kind: st.Kind.String(), Stanza: buf.String(), ID: st.ID, Type: st.Type}
	if st.Kind == xmpp.KindMessage {
		if b := xmpp.Child(st.El, "", "body"); b != nil {
			req.Body = b.Text()
		}
	}
	out, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var jsonStrings = []string{
	"", "plain", `quote " backslash \ slash /`, "<b>&amp;</b>", "tab\tnl\ncr\rbs\bff\f",
	"\x00\x01\x1f\x7f", "é ü 日本 🎉", "\u2028\u2029", "bad \xff utf-8 \xc3", "\xed\xa0\x80 surrogate",
	"\uFFFD\uFEFF", "ends in \xe6\x97",
}

func TestAppendJSONStringIsEncodingJSON(t *testing.T) {
	for _, s := range jsonStrings {
		want, _ := json.Marshal(s)
		if got := appendJSONString(nil, s); !bytes.Equal(got, want) {
			t.Errorf("%q: got %s, want %s", s, got, want)
		}
		if got := appendJSONString([]byte("x"), []byte(s)); !bytes.Equal(got[1:], want) {
			t.Errorf("%q as bytes: got %s, want %s", s, got[1:], want)
		}
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range jsonStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		got := appendJSONString(nil, s)
		if !bytes.Equal(got, want) {
			t.Fatalf("%q: got %s, want %s", s, got, want)
		}
		if got := appendJSONString(nil, []byte(s)); !bytes.Equal(got, want) {
			t.Fatalf("%q as bytes: got %s, want %s", s, got, want)
		}
		// And encoding/json reads back what was meant.
		var back string
		if err := json.Unmarshal(got, &back); err != nil || back != jsonValid(s) {
			t.Fatalf("%q: decodes to %q, %v; want %q", s, back, err, jsonValid(s))
		}
	})
}

// jsonValid is s as encoding/json carries it: each byte that is not
// valid UTF-8 becomes U+FFFD.
func jsonValid(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// FuzzEncodeRequest builds stanzas from the fuzzer's strings and checks
// encodeRequest against encoding/json: the same bytes as json.Marshal of
// the Request, and encoding/json decodes them to that Request (its
// strings made valid UTF-8).
func FuzzEncodeRequest(f *testing.F) {
	f.Add(uint8(0), "echo", "phone", "m1", "chat", "hi <there> & \"you\"", "")
	f.Add(uint8(1), "bot", "a", "q1", "get", "", "urn:x")
	f.Add(uint8(2), "", "r", "", "", "away", "")
	f.Add(uint8(0), "é", "日本", "\u2028", "normal", "bad \xff \xc3 utf-8 \x00\x1f", "x\ty")
	f.Add(uint8(0), "e", "r", "i", "t", "]]>&amp;<![CDATA[", "'\"")
	w := &worker{}
	w.xw = xmpp.NewWriter(&w.xml)
	f.Fuzz(func(t *testing.T, kind uint8, local, resource, id, typ, text, attr string) {
		tag := [...]string{"message", "iq", "presence"}[kind%3]
		el := etree.NewElement(tag)
		el.CreateAttr("from", "alice@example/"+resource)
		el.CreateAttr("to", local+"@bots.example")
		if id != "" {
			el.CreateAttr("id", id)
		}
		if typ != "" {
			el.CreateAttr("type", typ)
		}
		if text != "" {
			el.CreateElement("body").SetText(text)
		}
		if attr != "" {
			el.CreateElement("x").CreateAttr("a", attr)
		}
		st, err := xmpp.NewStanza(el)
		if err != nil {
			return // an address that is not a JID
		}
		want := referenceRequest(t, st)
		got := w.encodeRequest(st)
		if !bytes.Equal(got, want) {
			t.Fatalf("got  %s\nwant %s", got, want)
		}
		var back Request
		dec := json.NewDecoder(bytes.NewReader(got))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&back); err != nil {
			t.Fatalf("%s does not decode: %v", got, err)
		}
		var ref Request
		if err := json.Unmarshal(want, &ref); err != nil {
			t.Fatal(err)
		}
		exp := Request{To: jsonValid(st.To.String()), From: jsonValid(st.From.String()), Kind: tag, ID: jsonValid(st.ID), Type: jsonValid(st.Type),
			Stanza: ref.Stanza}
		if tag == "message" {
			exp.Body = jsonValid(text)
		}
		if back != exp {
			t.Fatalf("decodes to %+v, want %+v", back, exp)
		}
		w.release()
	})
}

func TestEncodeRequestIsTheJSONOfARequest(t *testing.T) {
	stanzas := []string{
		`<message from='alice@example/phone' to='echo@bots.example' type='chat' id='m1'><body>hi &lt;there&gt; &amp; "you"</body></message>`,
		`<message from='alice@example/phone' to='echo@bots.example'><body/></message>`,
		`<message from='alice@example/ph"one' to='echo@bots.example' id='x'><subject>s</subject><body>a</body><body xml:lang='fr'>b</body></message>`,
		`<message from='alice@example' to='echo@bots.example' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`,
		`<message xmlns='jabber:client' from='alice@example/a' to='echo@bots.example' id='ns'><body>é 🎉 ` + "\u2028" + `</body></message>`,
		`<iq from='alice@example/phone' to='echo@bots.example' type='get' id='q1'><query xmlns='urn:x'><item a='1'/></query></iq>`,
		`<presence from='alice@example/phone' to='echo@bots.example'><status>away</status></presence>`,
		`<presence from='alice@example/phone' to='echo@bots.example' type='unavailable'/>`,
		`<message from='alice@example/phone' to='echo@bots.example' type='chat' id='cd'><body><![CDATA[a <b> ]]]]><![CDATA[> c]]></body></message>`,
	}
	w := &worker{}
	w.xw = xmpp.NewWriter(&w.xml)
	for i, raw := range stanzas {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			st := mustStanza(t, raw)
			before := xmlOf(st)
			want := referenceRequest(t, st)
			got := w.encodeRequest(st)
			if !bytes.Equal(got, want) {
				t.Fatalf("got  %s\nwant %s", got, want)
			}
			if after := xmlOf(st); after != before {
				t.Fatalf("the stanza changed: %s, was %s", after, before)
			}
			w.release()
			if w.el.Child != nil || len(w.attrs) != 0 {
				t.Fatal("release kept a reference to the stanza")
			}
		})
	}
}

func TestAppendSignatureIsSign(t *testing.T) {
	c := &Component{key: signingKey("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")}
	w := c.newWorker()
	for i, body := range []string{`{"test": 2432232314}`, "", `{"to":"a@b"}`} {
		w.id = []byte("msg_p5jXN8AQM9LWM0D4loKWxJek")
		if i > 0 {
			w.newMessageID()
		}
		ts := int64(1614265330 + i)
		want := Sign(c.key, string(w.id), ts, []byte(body))
		if got := string(w.appendSignature([]byte("x"), ts, []byte(body))); got != "x"+want {
			t.Errorf("%d: got %s, want x%s", i, got, want)
		}
	}
}

func BenchmarkEncodeRequest(b *testing.B) {
	el, err := xmpp.ParseElement(`<message from='alice@example/phone' to='echo@bots.example' type='chat' id='m1'><body>hello there</body></message>`, xmpp.Limits{})
	if err != nil {
		b.Fatal(err)
	}
	st, err := xmpp.NewStanza(el)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encodeRequest", func(b *testing.B) {
		w := &worker{}
		w.xw = xmpp.NewWriter(&w.xml)
		b.ReportAllocs()
		for b.Loop() {
			w.encodeRequest(st)
			w.release()
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			referenceRequest(b, st)
		}
	})
}
