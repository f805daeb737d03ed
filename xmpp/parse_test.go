package xmpp

import (
	"errors"
	"strings"
	"testing"
)

func TestParseElement(t *testing.T) {
	tests := []struct {
		name, in, want string
		wantErr        StreamCondition
		other          string
	}{
		{"one stanza reads as on a stream", `<message to='a@b'><body>x</body></message>`, `<message to="a@b"><body>x</body></message>`, "", ""},
		{"another namespace keeps its xmlns", `<vCard xmlns='vcard-temp'><FN>A</FN></vCard>`, `<vCard xmlns="vcard-temp"><FN>A</FN></vCard>`, "", ""},
		{"a comment is restricted", `<message><!-- x --></message>`, "", RestrictedXML, ""},
		{"two elements are refused", `<a/><b/>`, "", "", "more than one element"},
		{"nothing is refused", ``, "", "", "no element"},
		{"closing the wrapper is not an escape", `</stream:stream><message/>`, "", "", "no element"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			el, err := ParseElement(tt.in, Limits{})
			var se *StreamError
			switch {
			case tt.wantErr != "":
				if !errors.As(err, &se) || se.Condition != tt.wantErr {
					t.Fatalf("err = %v, want %s", err, tt.wantErr)
				}
			case tt.other != "":
				if err == nil || !strings.Contains(err.Error(), tt.other) {
					t.Fatalf("err = %v, want %q", err, tt.other)
				}
			case err != nil:
				t.Fatal(err)
			default:
				if got := serialize(t, el); got != tt.want {
					t.Fatalf("got %s, want %s", got, tt.want)
				}
			}
		})
	}
}

func TestParseStreamError(t *testing.T) {
	e := NewStreamError(HostUnknown, "no such host")
	got := ParseStreamError(e.Element())
	if got == nil || got.Condition != HostUnknown || got.Text != "no such host" {
		t.Fatalf("round trip of %v gave %v", e, got)
	}
	el, err := ParseElement(`<stream:error xmlns:stream='http://etherx.jabber.org/streams'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><extra xmlns='urn:x'/></stream:error>`, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ParseStreamError(el); got == nil || got.Condition != StreamConflict {
		t.Fatalf("read from the wire: %v, want conflict", got)
	}
	if ParseStreamError(NewElementNS("urn:x", "error")) != nil {
		t.Fatal("an error element of another namespace is not a stream error")
	}
}
