package xmpp

import (
	"errors"
	"strings"
	"testing"
)

// jidValidTests are addresses Parse accepts, with their normalized parts.
// The fuzz test uses the inputs as its seed corpus.
var jidValidTests = []struct {
	name                    string
	in                      string
	local, domain, resource string
}{
	{"domain alone is a JID", "example.com", "", "example.com", ""},
	{"bare JID has local and domain", "alice@example.com", "alice", "example.com", ""},
	{"full JID has all three parts", "alice@example.com/phone", "alice", "example.com", "phone"},
	{"domain with resource has no local", "example.com/phone", "", "example.com", "phone"},
	{"upper-case local and domain are lowered, resource keeps case", "Alice@Example.COM/Phone", "alice", "example.com", "Phone"},
	{"fullwidth local and domain are folded", "ＡＬＩＣＥ@ｅｘａｍｐｌｅ．ｃｏｍ", "alice", "example.com", ""},
	{"one trailing dot on the domain is dropped", "alice@example.com./r", "alice", "example.com", "r"},
	{"single-label domain is allowed", "alice@localhost", "alice", "localhost", ""},
	{"IPv4 domain is kept", "alice@127.0.0.1/r", "alice", "127.0.0.1", "r"},
	{"IPv6 literal is kept", "alice@[::1]", "alice", "[::1]", ""},
	{"IPv6 literal is lowered", "[2001:DB8::1]", "", "[2001:db8::1]", ""},
	{"IPv6 literal is written in RFC 5952 form", "[2001:db8:0:0:0:0:0:1]/r", "", "[2001:db8::1]", "r"},
	{"resource keeps its spaces", "alice@example.com/ Phone  Home ", "alice", "example.com", " Phone  Home "},
	{"non-ASCII space in resource becomes U+0020", "alice@example.com/a\u00a0b", "alice", "example.com", "a b"},
	{"resource may contain '@' and '/'", "alice@example.com/foo@bar/baz", "alice", "example.com", "foo@bar/baz"},
	{"'@' after the first '/' belongs to the resource", "example.com/alice@example.net", "", "example.com", "alice@example.net"},
	{"dot in local is allowed", "a.example.com/b@example.net", "", "a.example.com", "b@example.net"},
	{"escaped space in local is kept", `foo\20bar@example.com`, `foo\20bar`, "example.com", ""},
	{"non-ASCII local is allowed", "fußball@example.com", "fußball", "example.com", ""},
	{"Greek capital sigma is lowered", "Σ@example.com/foo", "σ", "example.com", "foo"},
	{"Greek final sigma is kept", "ς@example.com/foo", "ς", "example.com", "foo"},
	{"symbol is allowed in resource", "king@example.com/♚", "king", "example.com", "♚"},
	{"U-label domain is lowered", "alice@Bücher.EXAMPLE", "alice", "bücher.example", ""},
	{"A-label domain becomes a U-label", "alice@xn--bcher-kva.example", "alice", "bücher.example", ""},
	{"ideographic full stop separates labels", "alice@example。com", "alice", "example.com", ""},
	{"letter-like symbol alone in a label maps to Hebrew", "alice@ℵ.com", "alice", "א.com", ""},
	{"right-to-left domain label", "alice@שלום.example", "alice", "שלום.example", ""},
	{"decomposed local is composed (NFC)", "cafe\u0301@example.com", "café", "example.com", ""},
	{"digits and hyphens in labels are allowed", "a-1@x-1.0-9.example", "a-1", "x-1.0-9.example", ""},
	{"punctuation allowed by PRECIS is kept in local", "a!#$%*+=?^_`{|}~.-@example.com", "a!#$%*+=?^_`{|}~.-", "example.com", ""},
}

func TestParseJIDNormalizesValidAddresses(t *testing.T) {
	for _, tt := range jidValidTests {
		t.Run(tt.name, func(t *testing.T) {
			j, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if j.Local() != tt.local || j.Domain() != tt.domain || j.Resource() != tt.resource {
				t.Errorf("Parse(%q) = (%q, %q, %q), want (%q, %q, %q)", tt.in,
					j.Local(), j.Domain(), j.Resource(), tt.local, tt.domain, tt.resource)
			}
			slow, err := parseJIDSlow(tt.in)
			if err != nil || slow != j {
				t.Errorf("slow path: %v, %v; fast path: %v", slow, err, j)
			}
		})
	}
}

// jidInvalidTests are addresses Parse rejects, with the part to blame.
var jidInvalidTests = []struct {
	name string
	in   string
	part string
}{
	{"empty string", "", "jid"},
	{"empty local before '@'", "@example.com", "localpart"},
	{"lone '@'", "@", "localpart"},
	{"empty local in a full JID", "@example.com/", "localpart"},
	{"empty domain after '@'", "juliet@", "domainpart"},
	{"empty domain before '/'", "/foobar", "domainpart"},
	{"empty domain between '@' and '/'", "alice@/r", "domainpart"},
	{"lone dot as domain", ".", "domainpart"},
	{"empty resource after '/'", "alice@example.com/", "resourcepart"},
	{"space in local", "a b@example.com", "localpart"},
	{"quotes in local", `"juliet"@example.com`, "localpart"},
	{"ampersand in local", "a&b@example.com", "localpart"},
	{"apostrophe in local", "o'brien@example.com", "localpart"},
	{"colon in local", "a:b@example.com", "localpart"},
	{"angle brackets in local", "<a>@example.com", "localpart"},
	{"fullwidth '@' that maps to '@' in local", "a＠b@example.com", "localpart"},
	{"fullwidth '/' that maps to '/' in local", "a／b@example.com", "localpart"},
	{"compatibility character in local", "henryⅣ@example.com", "localpart"},
	{"symbol in local", "♚@example.com", "localpart"},
	{"control character in local", "a\x00b@example.com", "localpart"},
	{"invalid UTF-8 in local", "\xff@example.com", "localpart"},
	{"right-to-left then left-to-right in local", "\u05d0a@example.com", "localpart"},
	{"space in domain", "alice@exa mple.com", "domainpart"},
	{"underscore in domain", "alice@exa_mple.com", "domainpart"},
	{"domain label starting with a hyphen", "alice@-example.com", "domainpart"},
	{"domain label ending with a hyphen", "alice@example-.com", "domainpart"},
	{"domain label with hyphens at third and fourth place", "alice@ab--cd.com", "domainpart"},
	{"bad A-label", "alice@xn--a.com", "domainpart"},
	{"empty label inside domain", "alice@example..com", "domainpart"},
	{"empty first label of domain", "alice@.example.com", "domainpart"},
	{"two trailing dots on domain", "alice@example.com..", "domainpart"},
	{"ideographic full stop at end of domain", "alice@example。", "domainpart"},
	{"fullwidth solidus in domain", "alice@a／b.com", "domainpart"},
	{"letter-like symbol that maps to Hebrew after a Latin letter", "alice@aℵ.com", "domainpart"},
	{"letter-like symbol that maps to Hebrew before a Latin letter", "ℵa.com", "domainpart"},
	{"right-to-left then left-to-right in a domain label", "alice@אa.com", "domainpart"},
	{"unterminated IPv6 literal", "alice@[::1", "domainpart"},
	{"IPv4 address in brackets", "alice@[127.0.0.1]", "domainpart"},
	{"IPv6 literal with zone", "alice@[fe80::1%eth0]", "domainpart"},
	{"garbage in brackets", "alice@[hello]", "domainpart"},
	{"IPv6 address without brackets", "alice@::1", "domainpart"},
	{"invalid UTF-8 in domain", "alice@\xff.com", "domainpart"},
	{"control character in resource", "alice@example.com/a\x07", "resourcepart"},
	{"NUL in resource", "alice@example.com/\x00", "resourcepart"},
	{"invalid UTF-8 in resource", "alice@example.com/\xff", "resourcepart"},
}

func TestParseJIDRejectsInvalidAddresses(t *testing.T) {
	for _, tt := range jidInvalidTests {
		t.Run(tt.name, func(t *testing.T) {
			j, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %q, want an error about the %s", tt.in, j, tt.part)
			}
			var je *JIDError
			if !errors.As(err, &je) {
				t.Fatalf("Parse(%q) error %T is not a *JIDError", tt.in, err)
			}
			if je.Part != tt.part || je.Input != tt.in {
				t.Errorf("Parse(%q): Part %q, Input %q; want Part %q", tt.in, je.Part, je.Input, tt.part)
			}
			if !strings.Contains(err.Error(), tt.part) {
				t.Errorf("error %q does not name the %s", err, tt.part)
			}
			if !j.IsZero() {
				t.Errorf("Parse(%q) returned %q with the error, want the zero JID", tt.in, j)
			}
		})
	}
}

func TestJIDErrorMessageNamesPartAndCharacter(t *testing.T) {
	_, err := Parse("a b@x")
	want := `jid "a b@x": localpart: contains a forbidden character ' '`
	if err == nil || err.Error() != want {
		t.Errorf("Parse error = %v, want %s", err, want)
	}
}

func TestJIDErrorMessageCutsLongInput(t *testing.T) {
	in := strings.Repeat("a", 5000) + "@"
	_, err := Parse(in)
	if err == nil || len(err.Error()) > 2*jidErrorInputMax {
		t.Errorf("error for a %d-byte input is %d bytes long", len(in), len(err.Error()))
	}
}

func TestJIDErrorUnwrapsTheCause(t *testing.T) {
	_, err := Parse("alice@[fe80::zz]")
	var je *JIDError
	if !errors.As(err, &je) || je.Err == nil || errors.Unwrap(err) != je.Err {
		t.Errorf("Parse error %v does not unwrap to its cause", err)
	}
}

func TestJIDLengthLimits(t *testing.T) {
	label63 := strings.Repeat("a", 63)
	// 16 labels of 63 octets and 15 dots: 1023 octets.
	domain1023 := strings.Repeat(label63+".", 15) + label63
	tests := []struct {
		name string
		in   string
		part string // "" when valid
	}{
		{"local of 1023 octets is allowed", strings.Repeat("a", 1023) + "@example.com", ""},
		{"local of 1024 octets is too long", strings.Repeat("a", 1024) + "@example.com", "localpart"},
		{"local of 1023 fullwidth letters fits after folding", strings.Repeat("ａ", 1023) + "@example.com", ""},
		{"local of 1024 fullwidth letters is too long after folding", strings.Repeat("ａ", 1024) + "@example.com", "localpart"},
		{"local of 512 two-octet letters is too long", strings.Repeat("é", 512) + "@example.com", "localpart"},
		{"resource of 1023 octets is allowed", "example.com/" + strings.Repeat("R", 1023), ""},
		{"resource of 1024 octets is too long", "example.com/" + strings.Repeat("R", 1024), "resourcepart"},
		{"non-ASCII resource of 1024 octets is too long", "example.com/" + strings.Repeat("é", 512), "resourcepart"},
		{"label of 63 octets is allowed", label63 + ".com", ""},
		{"label of 64 octets is too long", label63 + "a.com", "domainpart"},
		{"U-label of 80 octets is allowed: its A-label has 46", strings.Repeat("ü", 40) + ".de", ""},
		{"U-label whose A-label has 66 octets is too long", strings.Repeat("ü", 60) + ".de", "domainpart"},
		{"domain of 1023 octets is allowed", domain1023, ""},
		{"domain of 1023 octets plus trailing dot is allowed", domain1023 + ".", ""},
		{"domain of 1025 octets is too long", domain1023 + ".a", "domainpart"},
		{"upper-case domain of 1025 octets is too long", strings.ToUpper(domain1023) + ".a", "domainpart"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, parse := range []func(string) (JID, error){Parse, parseJIDSlow} {
				_, err := parse(tt.in)
				var je *JIDError
				switch {
				case tt.part == "" && err != nil:
					t.Errorf("unexpected error: %v", err)
				case tt.part != "" && !errors.As(err, &je):
					t.Errorf("error %v, want a *JIDError about the %s", err, tt.part)
				case tt.part != "" && je.Part != tt.part:
					t.Errorf("error about the %s, want the %s: %v", je.Part, tt.part, err)
				}
			}
		})
	}
}

func TestNewJIDNormalizesParts(t *testing.T) {
	tests := []struct {
		name                    string
		local, domain, resource string
		want                    string
		part                    string // "" when valid
	}{
		{"all parts are normalized", "Alice", "Example.COM.", "Phone", "alice@example.com/Phone", ""},
		{"empty local and resource mean none", "", "example.com", "", "example.com", ""},
		{"resource may hold separators", "alice", "example.com", "a/b@c", "alice@example.com/a/b@c", ""},
		{"local may not hold '@'", "a@b", "example.com", "", "", "localpart"},
		{"local may not hold '/'", "a/b", "example.com", "", "", "localpart"},
		{"domain is required", "alice", "", "r", "", "domainpart"},
		{"domain may not hold '@'", "", "a@b", "", "", "domainpart"},
		{"domain may not hold '/'", "", "a/b", "", "", "domainpart"},
		{"resource is checked", "alice", "example.com", "\x07", "", "resourcepart"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j, err := New(tt.local, tt.domain, tt.resource)
			if tt.part != "" {
				var je *JIDError
				if !errors.As(err, &je) || je.Part != tt.part {
					t.Fatalf("New error %v, want a *JIDError about the %s", err, tt.part)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if j.String() != tt.want {
				t.Errorf("New = %q, want %q", j, tt.want)
			}
			if p := MustParse(tt.want); p != j {
				t.Errorf("New = %#v, but Parse(%q) = %#v", j, tt.want, p)
			}
		})
	}
}

func TestJIDNormalizeFunctions(t *testing.T) {
	tests := []struct {
		name      string
		normalize func(string) (string, error)
		in, want  string
		part      string // "" when valid
	}{
		{"local is lowered", NormalizeLocal, "Alice", "alice", ""},
		{"local is width-folded", NormalizeLocal, "ａｌｉｃｅ", "alice", ""},
		{"empty local is an error", NormalizeLocal, "", "", "localpart"},
		{"local with '@' is an error", NormalizeLocal, "a@b", "", "localpart"},
		{"domain loses its trailing dot", NormalizeDomain, "Example.COM.", "example.com", ""},
		{"empty domain is an error", NormalizeDomain, "", "", "domainpart"},
		{"resource keeps case and spaces", NormalizeResource, " My Phone ", " My Phone ", ""},
		{"empty resource is an error", NormalizeResource, "", "", "resourcepart"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.normalize(tt.in)
			if tt.part != "" {
				var je *JIDError
				if !errors.As(err, &je) || je.Part != tt.part || je.Input != tt.in {
					t.Fatalf("error %v, want a *JIDError about the %s of %q", err, tt.part, tt.in)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestJIDMethodsRoundTrip(t *testing.T) {
	for _, tt := range jidValidTests {
		t.Run(tt.name, func(t *testing.T) {
			j := MustParse(tt.in)
			s := j.String()
			if again := MustParse(s); again != j {
				t.Errorf("Parse(String()) = %#v, want %#v", again, j)
			}
			if got := string(j.AppendTo([]byte("to="))); got != "to="+s {
				t.Errorf("AppendTo = %q, want %q", got, "to="+s)
			}
			bare := j.Bare()
			if bare.Resource() != "" || bare.Local() != j.Local() || bare.Domain() != j.Domain() || !bare.IsBare() {
				t.Errorf("Bare() = %#v", bare)
			}
			if d := j.DomainJID(); d != (JID{domain: j.Domain()}) || d.String() != j.Domain() {
				t.Errorf("DomainJID() = %#v", d)
			}
			if j.IsZero() || j.IsBare() != (j.Resource() == "") {
				t.Errorf("IsZero() = %v, IsBare() = %v for %q", j.IsZero(), j.IsBare(), s)
			}
			if j.Resource() != "" {
				full, err := bare.WithResource(j.Resource())
				if err != nil || full != j {
					t.Errorf("Bare().WithResource(%q) = %q, %v; want %q", j.Resource(), full, err, s)
				}
			}
		})
	}
}

func TestJIDWithResource(t *testing.T) {
	j := MustParse("alice@example.com/old")
	tests := []struct {
		name    string
		from    JID
		r, want string
		wantErr bool
	}{
		{"resource replaces the old one", j, "New Phone", "alice@example.com/New Phone", false},
		{"resource is normalized", j, "a\u2003b", "alice@example.com/a b", false},
		{"empty resource gives the bare JID", j, "", "alice@example.com", false},
		{"bad resource is an error", j, "\x00", "", true},
		{"zero JID cannot take a resource", JID{}, "r", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.from.WithResource(tt.r)
			if (err != nil) != tt.wantErr || got.String() != tt.want {
				t.Errorf("WithResource(%q) = %q, %v; want %q, error %v", tt.r, got, err, tt.want, tt.wantErr)
			}
			var je *JIDError
			if err != nil && !errors.As(err, &je) {
				t.Errorf("error %T is not a *JIDError", err)
			}
		})
	}
}

func TestJIDIsComparableAndAMapKey(t *testing.T) {
	seen := map[JID]int{}
	for _, s := range []string{
		"alice@example.com/phone",
		"Alice@EXAMPLE.com./phone",
		"ＡＬＩＣＥ@example.com/phone",
	} {
		seen[MustParse(s)]++
	}
	seen[MustParse("alice@example.com/Phone")]++
	seen[MustParse("alice@example.com")]++
	want := map[JID]int{
		MustParse("alice@example.com/phone"): 3,
		MustParse("alice@example.com/Phone"): 1,
		MustParse("alice@example.com"):       1,
	}
	if len(seen) != len(want) {
		t.Fatalf("map has %d keys, want %d: %v", len(seen), len(want), seen)
	}
	for k, n := range want {
		if seen[k] != n {
			t.Errorf("seen[%q] = %d, want %d", k, seen[k], n)
		}
	}
	if MustParse("a@b/c").Bare() != MustParse("a@b") {
		t.Error("Bare of a full JID differs from the parsed bare JID")
	}
}

func TestZeroJIDHasNoParts(t *testing.T) {
	var j JID
	if !j.IsZero() || j.IsBare() || j.String() != "" || len(j.AppendTo(nil)) != 0 {
		t.Errorf("zero JID: IsZero %v, IsBare %v, String %q", j.IsZero(), j.IsBare(), j.String())
	}
	if j.Bare() != (JID{}) || j.DomainJID() != (JID{}) {
		t.Error("Bare or DomainJID of the zero JID is not zero")
	}
}

func TestMustParseJIDPanicsOnInvalidAddress(t *testing.T) {
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(r.(string), "localpart") {
			t.Errorf("recover() = %v, want a panic naming the localpart", r)
		}
	}()
	MustParse("@example.com")
}

func TestParseJIDDoesNotAllocateForASCII(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"full JID", "alice@example.com/phone"},
		{"bare JID", "alice@example.com"},
		{"domain JID with trailing dot", "example.com."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := testing.AllocsPerRun(100, func() {
				if _, err := Parse(tt.in); err != nil {
					t.Fatal(err)
				}
			})
			if n != 0 {
				t.Errorf("Parse(%q) makes %v allocations, want 0", tt.in, n)
			}
		})
	}
	j := MustParse("alice@example.com/phone")
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { buf = j.AppendTo(buf[:0]) }); n != 0 {
		t.Errorf("AppendTo into a large enough buffer makes %v allocations, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = j.String() }); n > 1 {
		t.Errorf("String makes %v allocations, want at most 1", n)
	}
}

func BenchmarkParseJID(b *testing.B) {
	benchmarks := []struct {
		name  string
		in    string
		parse func(string) (JID, error)
	}{
		{"ascii_full", "alice@example.com/phone", Parse},
		{"ascii_bare", "alice@example.com", Parse},
		{"ascii_domain", "conference.example.com", Parse},
		{"ascii_full_uppercase", "Alice@Example.com/phone", Parse},
		{"unicode", "fußball@bücher.example/Téléphone", Parse},
		{"ascii_full_slow_path", "alice@example.com/phone", parseJIDSlow},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bm.in)))
			for b.Loop() {
				if _, err := bm.parse(bm.in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
