package xmpp

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/secure/bidirule"
	"golang.org/x/text/secure/precis"
	"golang.org/x/text/unicode/norm"
)

// JID is an XMPP address (RFC 7622): an optional localpart, a domainpart and
// an optional resourcepart. Its parts are normalized once, when the JID is
// made by Parse, New or WithResource, so two JIDs that name the same entity
// are equal with ==, and a JID works as a map key. The zero JID has no parts
// and is not a valid address; IsZero reports it.
type JID struct {
	local, domain, resource string
}

// Which part of a JID a JIDError is about.
const (
	jidPartLocal    = "localpart"
	jidPartDomain   = "domainpart"
	jidPartResource = "resourcepart"
	jidPartWhole    = "jid"
)

// jidMaxPartLen is the largest size in octets of each part of a JID, after
// normalization (RFC 7622 §3.2, §3.3, §3.4).
const jidMaxPartLen = 1023

// jidMaxLabelLen is the largest size in octets of one DNS label in its ASCII
// (A-label) form (RFC 1035 §2.3.4, RFC 5890 §2.3.2.1).
const jidMaxLabelLen = 63

// jidLocalForbidden holds the characters RFC 7622 §3.3.1 forbids in a
// localpart on top of those the UsernameCaseMapped profile forbids.
const jidLocalForbidden = `"&'/:<>@`

// JIDError reports an address that cannot be parsed or normalized. Use
// errors.As to get it from the error returned by Parse, New, WithResource
// and the Normalize functions.
type JIDError struct {
	// Part is the part that is wrong: "localpart", "domainpart",
	// "resourcepart", or "jid" when the problem is with the whole address.
	Part string
	// Reason says what is wrong with the part, e.g. "is empty".
	Reason string
	// Input is the string that was being checked: the whole address for
	// Parse and MustParse, the part alone for New, WithResource and the
	// Normalize functions.
	Input string
	// Err is the error from the PRECIS, IDNA or IP address code that caused
	// this one, or nil. Unwrap returns it.
	Err error
}

// jidErrorInputMax is how much of the input Error quotes; addresses longer
// than this are cut so that a hostile stanza cannot flood the logs.
const jidErrorInputMax = 128

// Error says which part of which input is wrong and why, e.g.
// `jid "a b@example.com": localpart: contains a forbidden character ' '`.
func (e *JIDError) Error() string {
	in := e.Input
	if len(in) > jidErrorInputMax {
		in = in[:jidErrorInputMax] + "..."
	}
	if e.Part == jidPartWhole || e.Part == "" {
		return fmt.Sprintf("jid %q: %s", in, e.Reason)
	}
	return fmt.Sprintf("jid %q: %s: %s", in, e.Part, e.Reason)
}

// Unwrap returns the underlying error, if any.
func (e *JIDError) Unwrap() error { return e.Err }

// jidFail is the internal form of a JIDError, before the input is known.
type jidFail struct {
	reason string
	err    error
}

func (f *jidFail) toError(part, input string) *JIDError {
	return &JIDError{Part: part, Reason: f.reason, Input: input, Err: f.err}
}

// Parse parses s as an XMPP address and normalizes its parts: the
// localpart with the PRECIS UsernameCaseMapped profile, the domainpart with
// IDNA (U-labels, lower case, no trailing dot) and the resourcepart with the
// PRECIS OpaqueString profile. The resourcepart starts after the first '/',
// the localpart ends at the first '@' before that. A JID whose parts need no
// work, as most do, is parsed without allocating.
//
// Errors are *JIDError values.
func Parse(s string) (JID, error) {
	return parseJID(s, true)
}

// parseJIDSlow is Parse without the ASCII fast path; the fuzz test checks
// that both give the same answer.
func parseJIDSlow(s string) (JID, error) {
	return parseJID(s, false)
}

func parseJID(s string, fast bool) (JID, error) {
	if s == "" {
		return JID{}, &JIDError{Part: jidPartWhole, Reason: "is empty", Input: s}
	}
	// RFC 7622 §3.1: split on the separators before any normalization,
	// which could turn other characters into '@' or '/'.
	rest, resource, hasResource := strings.Cut(s, "/")
	local, domain, hasLocal := strings.Cut(rest, "@")
	if !hasLocal {
		local, domain = "", rest
	}
	switch {
	case hasLocal && local == "":
		return JID{}, &JIDError{Part: jidPartLocal, Reason: "is empty but '@' is present", Input: s}
	case domain == "":
		return JID{}, &JIDError{Part: jidPartDomain, Reason: "is empty", Input: s}
	case hasResource && resource == "":
		return JID{}, &JIDError{Part: jidPartResource, Reason: "is empty but '/' is present", Input: s}
	}
	j, part, f := makeJID(local, domain, resource, fast)
	if f != nil {
		return JID{}, f.toError(part, s)
	}
	return j, nil
}

// makeJID normalizes the three parts; empty local and resource mean that
// there is none. On failure it names the failing part.
func makeJID(local, domain, resource string, fast bool) (JID, string, *jidFail) {
	var j JID
	var f *jidFail
	if local != "" {
		if j.local, f = normalizeLocal(local, fast); f != nil {
			return JID{}, jidPartLocal, f
		}
	}
	if j.domain, f = normalizeDomain(domain, fast); f != nil {
		return JID{}, jidPartDomain, f
	}
	if resource != "" {
		if j.resource, f = normalizeResource(resource, fast); f != nil {
			return JID{}, jidPartResource, f
		}
	}
	return j, "", nil
}

// MustParse is like Parse but panics if s is not a valid address. It is
// meant for tests and for addresses that are constants in the code.
func MustParse(s string) JID {
	j, err := Parse(s)
	if err != nil {
		panic("xmpp.MustParse: " + err.Error())
	}
	return j
}

// New makes a JID from its parts, normalizing and checking each of them as
// Parse does. An empty local or resource means the JID has none; the domain
// is required. Unlike Parse, New does not split: a resource may contain '@'
// and '/', while a local containing them is an error.
//
// Errors are *JIDError values whose Input is the failing part.
func New(local, domain, resource string) (JID, error) {
	j, part, f := makeJID(local, domain, resource, true)
	if f != nil {
		in := domain
		switch part {
		case jidPartLocal:
			in = local
		case jidPartResource:
			in = resource
		}
		return JID{}, f.toError(part, in)
	}
	return j, nil
}

// NormalizeLocal normalizes s as a localpart: the PRECIS UsernameCaseMapped
// profile (RFC 8265) plus the characters RFC 7622 §3.3.1 forbids
// (" & ' / : < > @), at most 1023 octets. SASL uses it for usernames, so that
// an account name and the localpart of its JID compare equal.
func NormalizeLocal(s string) (string, error) {
	out, f := normalizeLocal(s, true)
	if f != nil {
		return "", f.toError(jidPartLocal, s)
	}
	return out, nil
}

// NormalizeDomain normalizes s as a domainpart (RFC 7622 §3.2): one trailing
// dot is removed, an IPv6 literal in brackets is written in its RFC 5952
// form, an IPv4 address is kept, and a domain name is mapped with UTS #46
// (lower case, width folding, NFC), its A-labels turned into U-labels, and
// checked: letters, digits and hyphens for ASCII labels, no empty labels,
// 63 octets at most per label in A-label form, 1023 octets in all.
func NormalizeDomain(s string) (string, error) {
	out, f := normalizeDomain(s, true)
	if f != nil {
		return "", f.toError(jidPartDomain, s)
	}
	return out, nil
}

// NormalizeResource normalizes s as a resourcepart: the PRECIS OpaqueString
// profile (RFC 8265), which keeps case and maps all spaces to U+0020, at
// most 1023 octets.
func NormalizeResource(s string) (string, error) {
	out, f := normalizeResource(s, true)
	if f != nil {
		return "", f.toError(jidPartResource, s)
	}
	return out, nil
}

// Local returns the localpart, or "" if there is none.
func (j JID) Local() string { return j.local }

// Domain returns the domainpart.
func (j JID) Domain() string { return j.domain }

// Resource returns the resourcepart, or "" if there is none.
func (j JID) Resource() string { return j.resource }

// Bare returns j without its resourcepart.
func (j JID) Bare() JID { return JID{local: j.local, domain: j.domain} }

// DomainJID returns a JID made of j's domainpart alone.
func (j JID) DomainJID() JID { return JID{domain: j.domain} }

// WithResource returns j with its resourcepart replaced by r, normalized as
// NormalizeResource does. An empty r gives the bare JID. It is an error to
// add a resource to the zero JID.
func (j JID) WithResource(r string) (JID, error) {
	if j.IsZero() {
		return JID{}, &JIDError{Part: jidPartWhole, Reason: "the zero JID cannot take a resource", Input: r}
	}
	if r == "" {
		return j.Bare(), nil
	}
	out, f := normalizeResource(r, true)
	if f != nil {
		return JID{}, f.toError(jidPartResource, r)
	}
	return JID{local: j.local, domain: j.domain, resource: out}, nil
}

// IsZero reports whether j is the zero JID, which has no domainpart.
func (j JID) IsZero() bool { return j.domain == "" }

// IsBare reports whether j is a valid JID without a resourcepart.
func (j JID) IsBare() bool { return j.domain != "" && j.resource == "" }

// String returns the canonical form local@domain/resource, leaving out the
// parts j does not have. It returns "" for the zero JID.
func (j JID) String() string {
	if j.local == "" && j.resource == "" {
		return j.domain
	}
	var b strings.Builder
	b.Grow(j.strLen())
	if j.local != "" {
		b.WriteString(j.local)
		b.WriteByte('@')
	}
	b.WriteString(j.domain)
	if j.resource != "" {
		b.WriteByte('/')
		b.WriteString(j.resource)
	}
	return b.String()
}

// strLen is len(j.String()).
func (j JID) strLen() int {
	n := len(j.domain)
	if j.local != "" {
		n += len(j.local) + 1
	}
	if j.resource != "" {
		n += len(j.resource) + 1
	}
	return n
}

// AppendTo appends the String form of j to b and returns the extended
// buffer. It allocates only if b is too small.
func (j JID) AppendTo(b []byte) []byte {
	if j.local != "" {
		b = append(b, j.local...)
		b = append(b, '@')
	}
	b = append(b, j.domain...)
	if j.resource != "" {
		b = append(b, '/')
		b = append(b, j.resource...)
	}
	return b
}

// Byte classes for the fast paths. A byte is set when it may appear in a
// part that the slow path would return unchanged.
var (
	jidFastLocalByte    [256]bool // printable ASCII, not upper case, not jidLocalForbidden
	jidFastDomainByte   [256]bool // a-z, 0-9, '-' and '.'
	jidFastResourceByte [256]bool // printable ASCII and space
)

func init() {
	for c := 0x20; c < 0x7f; c++ {
		jidFastResourceByte[c] = true
		jidFastLocalByte[c] = c != ' ' && !('A' <= c && c <= 'Z') &&
			strings.IndexByte(jidLocalForbidden, byte(c)) < 0
		jidFastDomainByte[c] = 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.'
	}
}

// normalizeLocal is NormalizeLocal; with fast set, a localpart that
// UsernameCaseMapped would not change is returned as is, without PRECIS.
func normalizeLocal(s string, fast bool) (string, *jidFail) {
	if fast && jidFastPart(s, &jidFastLocalByte) {
		return s, nil
	}
	if s == "" {
		return "", &jidFail{reason: "is empty"}
	}
	if !utf8.ValidString(s) {
		return "", &jidFail{reason: "is not valid UTF-8"}
	}
	out, err := jidStablePRECIS(precis.UsernameCaseMapped, s)
	if err != nil {
		return "", jidPRECISFail(jidLocalDiag, s, err)
	}
	if f := jidCheckLen(out); f != nil {
		return "", f
	}
	if i := strings.IndexAny(out, jidLocalForbidden); i >= 0 {
		return "", &jidFail{reason: fmt.Sprintf("contains a forbidden character %q", out[i])}
	}
	return out, nil
}

// normalizeResource is NormalizeResource; with fast set, a resourcepart
// that OpaqueString would not change is returned as is, without PRECIS.
func normalizeResource(s string, fast bool) (string, *jidFail) {
	if fast && jidFastPart(s, &jidFastResourceByte) {
		return s, nil
	}
	if s == "" {
		return "", &jidFail{reason: "is empty"}
	}
	if !utf8.ValidString(s) {
		return "", &jidFail{reason: "is not valid UTF-8"}
	}
	out, err := jidStablePRECIS(precis.OpaqueString, s)
	if err != nil {
		return "", jidPRECISFail(precis.OpaqueString, s, err)
	}
	if f := jidCheckLen(out); f != nil {
		return "", f
	}
	return out, nil
}

// errJIDUnstable reports a string whose PRECIS form changes when the
// profile is applied again.
var errJIDUnstable = errors.New("precis: output is not stable under the profile")

// jidStablePRECIS applies p to s and makes sure that the result is a fixed
// point of p, so that a JID's String form parses back to the same JID. When
// p leaves s unchanged that is already true and p is applied only once.
func jidStablePRECIS(p *precis.Profile, s string) (string, error) {
	out, err := p.String(s)
	if err != nil || out == s {
		return out, err
	}
	again, err := p.String(out)
	if err != nil {
		return "", err
	}
	if again != out {
		return "", errJIDUnstable
	}
	return out, nil
}

// jidFastPart reports whether s is 1 to jidMaxPartLen bytes, all in ok.
func jidFastPart(s string, ok *[256]bool) bool {
	if len(s) == 0 || len(s) > jidMaxPartLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !ok[s[i]] {
			return false
		}
	}
	return true
}

func jidCheckLen(out string) *jidFail {
	switch {
	case out == "":
		return &jidFail{reason: "is empty after normalization"}
	case len(out) > jidMaxPartLen:
		return &jidFail{reason: fmt.Sprintf("is %d octets long after normalization, more than %d", len(out), jidMaxPartLen)}
	}
	return nil
}

// jidLocalDiag is UsernameCaseMapped without its bidi rule. It is used only
// to find the character to blame when UsernameCaseMapped fails: the bidi rule
// of x/text also rejects strings that start with a symbol, so without this
// "♚" would be reported as a bidi problem rather than a forbidden character.
var jidLocalDiag = precis.NewIdentifier(precis.FoldWidth, precis.LowerCase(), precis.Norm(norm.NFC))

// jidPRECISFail explains why a PRECIS profile rejected s with err; diag is
// that profile, or a laxer one, used to test one character at a time.
func jidPRECISFail(diag *precis.Profile, s string, err error) *jidFail {
	// Name the first character that is rejected on its own. A character may
	// also be rejected only in context (joiners, bidi), hence the fallbacks.
	for _, r := range s {
		if _, err1 := diag.String(string(r)); err1 != nil {
			return &jidFail{reason: fmt.Sprintf("contains a forbidden character %q", r), err: err}
		}
	}
	if errors.Is(err, bidirule.ErrInvalid) {
		return &jidFail{reason: "breaks the bidi rule of RFC 5893", err: err}
	}
	return &jidFail{reason: "is rejected by PRECIS: " + err.Error(), err: err}
}

// normalizeDomain is NormalizeDomain; with fast set, a lower-case LDH
// domain name is checked with a byte loop instead of IDNA.
func normalizeDomain(s string, fast bool) (string, *jidFail) {
	// RFC 7622 §3.2: a trailing dot is stripped before anything else.
	if n := len(s); n > 0 && s[n-1] == '.' {
		s = s[:n-1]
	}
	if fast && jidFastDomain(s) {
		return s, nil
	}
	if s == "" {
		return "", &jidFail{reason: "is empty"}
	}
	if !utf8.ValidString(s) {
		return "", &jidFail{reason: "is not valid UTF-8"}
	}
	if s[0] == '[' {
		return jidIPLiteral(s)
	}
	if ip, err := netip.ParseAddr(s); err == nil && ip.Is4() {
		return s, nil
	}
	u, err := idna.Lookup.ToUnicode(s)
	if err != nil {
		return "", &jidFail{reason: "is not a valid domain name: " + err.Error(), err: err}
	}
	// UTS #46 mapping is not always idempotent in x/net/idna: it decides
	// whether the bidi rule applies from the characters before mapping, so
	// "aℵ.com" maps to "aא.com", which itself fails the bidi rule. Accept
	// only a fixed point, or the JID's String form would not parse.
	if u != s && !jidFastDomain(u) {
		u2, err := idna.Lookup.ToUnicode(u)
		if err != nil {
			return "", &jidFail{reason: "is not a valid domain name once mapped: " + err.Error(), err: err}
		}
		if u2 != u {
			return "", &jidFail{reason: "does not have a stable IDNA mapping"}
		}
	}
	for label := range strings.SplitSeq(u, ".") {
		if label == "" {
			return "", &jidFail{reason: "has an empty label"}
		}
		a := label
		if !jidIsASCII(label) {
			if a, err = idna.Punycode.ToASCII(label); err != nil {
				return "", &jidFail{reason: "has a label that cannot be punycoded: " + err.Error(), err: err}
			}
		}
		if len(a) > jidMaxLabelLen {
			return "", &jidFail{reason: fmt.Sprintf("has a label of %d octets, more than %d", len(a), jidMaxLabelLen)}
		}
	}
	if f := jidCheckLen(u); f != nil {
		return "", f
	}
	return u, nil
}

// jidFastDomain reports whether s is a domain name that IDNA would return
// unchanged and that passes the label checks: LDH labels in lower case,
// none empty, none longer than 63, none starting or ending with '-' and none
// with "--" at the third position (which covers "xn--").
func jidFastDomain(s string) bool {
	if len(s) == 0 || len(s) > jidMaxPartLen {
		return false
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '.' {
			if !jidFastDomainByte[s[i]] {
				return false
			}
			continue
		}
		l := s[start:i]
		if len(l) == 0 || len(l) > jidMaxLabelLen || l[0] == '-' || l[len(l)-1] == '-' ||
			len(l) >= 4 && l[2] == '-' && l[3] == '-' {
			return false
		}
		start = i + 1
	}
	return true
}

// jidIPLiteral checks an IPv6 literal "[...]" and returns it in RFC 5952
// form, so that every spelling of one address gives the same JID.
func jidIPLiteral(s string) (string, *jidFail) {
	if len(s) < 2 || s[len(s)-1] != ']' {
		return "", &jidFail{reason: "has a '[' but is not an IPv6 literal"}
	}
	ip, err := netip.ParseAddr(s[1 : len(s)-1])
	switch {
	case err != nil:
		return "", &jidFail{reason: "is not a valid IPv6 literal: " + err.Error(), err: err}
	case !ip.Is6():
		return "", &jidFail{reason: "has an IPv4 address in brackets; only IPv6 literals take brackets"}
	case ip.Zone() != "":
		return "", &jidFail{reason: "is an IPv6 literal with a zone, which is not allowed"}
	}
	return "[" + ip.String() + "]", nil
}

func jidIsASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
