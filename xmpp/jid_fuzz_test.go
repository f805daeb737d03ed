package xmpp

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseJID checks, for any input, that the ASCII fast path and the
// PRECIS/IDNA slow path agree, and that a parsed JID is canonical: its
// String form parses back to the same JID, and so do its parts given to New.
func FuzzParseJID(f *testing.F) {
	for _, tt := range jidValidTests {
		f.Add(tt.in)
	}
	for _, tt := range jidInvalidTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		j, err := Parse(s)
		slow, slowErr := parseJIDSlow(s)
		if (err == nil) != (slowErr == nil) {
			t.Fatalf("fast path: %#v, %v; slow path: %#v, %v", j, err, slow, slowErr)
		}
		if err != nil {
			if err.Error() != slowErr.Error() {
				t.Fatalf("fast path error %q, slow path error %q", err, slowErr)
			}
			var je *JIDError
			if !errors.As(err, &je) {
				t.Fatalf("error %T is not a *JIDError", err)
			}
			switch je.Part {
			case "jid", "localpart", "domainpart", "resourcepart":
			default:
				t.Fatalf("error names unknown part %q", je.Part)
			}
			return
		}
		if j != slow {
			t.Fatalf("fast path %#v, slow path %#v", j, slow)
		}
		if j.IsZero() {
			t.Fatalf("Parse(%q) returned the zero JID without an error", s)
		}
		for _, p := range []string{j.Local(), j.Domain(), j.Resource()} {
			if !utf8.ValidString(p) || len(p) > jidMaxPartLen {
				t.Fatalf("part %q is not valid UTF-8 or too long", p)
			}
		}
		if strings.ContainsAny(j.Local(), "@/") || strings.ContainsAny(j.Domain(), "@/") {
			t.Fatalf("local %q or domain %q holds a separator", j.Local(), j.Domain())
		}

		str := j.String()
		if string(j.AppendTo(nil)) != str {
			t.Fatalf("AppendTo %q differs from String %q", j.AppendTo(nil), str)
		}
		again, err := parseJIDSlow(str)
		if err != nil {
			t.Fatalf("Parse(%q) is %q, which does not parse: %v", s, str, err)
		}
		if again != j {
			t.Fatalf("Parse(%q) = %#v, but Parse(%q) = %#v", s, j, str, again)
		}
		if again, err = Parse(str); err != nil || again != j {
			t.Fatalf("fast path on %q: %#v, %v; want %#v", str, again, err, j)
		}
		if fromParts, err := New(j.Local(), j.Domain(), j.Resource()); err != nil || fromParts != j {
			t.Fatalf("New(parts of %q) = %#v, %v", str, fromParts, err)
		}
	})
}
