package xmpp

import (
	"github.com/beevik/etree"
)

// StreamCondition is a stream error condition of RFC 6120 §4.9.3.
type StreamCondition string

// The stream error conditions of RFC 6120 §4.9.3.
const (
	BadFormat              StreamCondition = "bad-format"
	BadNamespacePrefix     StreamCondition = "bad-namespace-prefix"
	StreamConflict         StreamCondition = "conflict"
	ConnectionTimeout      StreamCondition = "connection-timeout"
	HostGone               StreamCondition = "host-gone"
	HostUnknown            StreamCondition = "host-unknown"
	ImproperAddressing     StreamCondition = "improper-addressing"
	StreamInternalError    StreamCondition = "internal-server-error"
	InvalidFrom            StreamCondition = "invalid-from"
	InvalidNamespace       StreamCondition = "invalid-namespace"
	InvalidXML             StreamCondition = "invalid-xml"
	StreamNotAuthorized    StreamCondition = "not-authorized"
	NotWellFormed          StreamCondition = "not-well-formed"
	StreamPolicyViolation  StreamCondition = "policy-violation"
	RemoteConnectionFailed StreamCondition = "remote-connection-failed"
	Reset                  StreamCondition = "reset"
	StreamResourceLimit    StreamCondition = "resource-constraint"
	RestrictedXML          StreamCondition = "restricted-xml"
	SeeOtherHost           StreamCondition = "see-other-host"
	SystemShutdown         StreamCondition = "system-shutdown"
	StreamUndefined        StreamCondition = "undefined-condition"
	UnsupportedEncoding    StreamCondition = "unsupported-encoding"
	UnsupportedFeature     StreamCondition = "unsupported-feature"
	UnsupportedStanzaType  StreamCondition = "unsupported-stanza-type"
	UnsupportedVersion     StreamCondition = "unsupported-version"
)

// StreamError is a stream-level error: it ends the stream. It works with
// errors.Is: two StreamErrors match when their conditions are equal.
type StreamError struct {
	Condition StreamCondition
	Text      string
}

// NewStreamError returns a stream error with condition c and a
// human-readable text (may be empty).
func NewStreamError(c StreamCondition, text string) *StreamError {
	return &StreamError{Condition: c, Text: text}
}

// Error implements error.
func (e *StreamError) Error() string {
	if e.Text == "" {
		return "stream error: " + string(e.Condition)
	}
	return "stream error: " + string(e.Condition) + ": " + e.Text
}

// Is reports whether target is a *StreamError with the same condition.
func (e *StreamError) Is(target error) bool {
	t, ok := target.(*StreamError)
	return ok && t.Condition == e.Condition
}

// Element renders the error as <stream:error/> for a stream whose stream
// prefix is "stream".
func (e *StreamError) Element() *etree.Element {
	el := etree.NewElement("stream:error")
	c := el.CreateElement(string(e.Condition))
	c.CreateAttr("xmlns", NSStreams)
	if e.Text != "" {
		t := el.CreateElement("text")
		t.CreateAttr("xmlns", NSStreams)
		t.SetText(e.Text)
	}
	return el
}

// ErrorType is the type attribute of a stanza error (RFC 6120 §8.3.2).
type ErrorType string

// The stanza error types.
const (
	ErrAuth     ErrorType = "auth"
	ErrCancel   ErrorType = "cancel"
	ErrContinue ErrorType = "continue"
	ErrModify   ErrorType = "modify"
	ErrWait     ErrorType = "wait"
)

// StanzaCondition is a stanza error condition of RFC 6120 §8.3.3.
type StanzaCondition string

// The stanza error conditions of RFC 6120 §8.3.3.
const (
	BadRequest            StanzaCondition = "bad-request"
	Conflict              StanzaCondition = "conflict"
	FeatureNotImplemented StanzaCondition = "feature-not-implemented"
	Forbidden             StanzaCondition = "forbidden"
	Gone                  StanzaCondition = "gone"
	InternalServerError   StanzaCondition = "internal-server-error"
	ItemNotFound          StanzaCondition = "item-not-found"
	JIDMalformed          StanzaCondition = "jid-malformed"
	NotAcceptable         StanzaCondition = "not-acceptable"
	NotAllowed            StanzaCondition = "not-allowed"
	NotAuthorized         StanzaCondition = "not-authorized"
	PolicyViolation       StanzaCondition = "policy-violation"
	RecipientUnavailable  StanzaCondition = "recipient-unavailable"
	Redirect              StanzaCondition = "redirect"
	RegistrationRequired  StanzaCondition = "registration-required"
	RemoteServerNotFound  StanzaCondition = "remote-server-not-found"
	RemoteServerTimeout   StanzaCondition = "remote-server-timeout"
	ResourceConstraint    StanzaCondition = "resource-constraint"
	ServiceUnavailable    StanzaCondition = "service-unavailable"
	SubscriptionRequired  StanzaCondition = "subscription-required"
	UndefinedCondition    StanzaCondition = "undefined-condition"
	UnexpectedRequest     StanzaCondition = "unexpected-request"
)

// defaultType is the error type RFC 6120 §8.3.3 shows with each condition.
var defaultType = map[StanzaCondition]ErrorType{
	BadRequest:            ErrModify,
	Conflict:              ErrCancel,
	FeatureNotImplemented: ErrCancel,
	Forbidden:             ErrAuth,
	Gone:                  ErrCancel,
	InternalServerError:   ErrCancel,
	ItemNotFound:          ErrCancel,
	JIDMalformed:          ErrModify,
	NotAcceptable:         ErrModify,
	NotAllowed:            ErrCancel,
	NotAuthorized:         ErrAuth,
	PolicyViolation:       ErrModify,
	RecipientUnavailable:  ErrWait,
	Redirect:              ErrModify,
	RegistrationRequired:  ErrAuth,
	RemoteServerNotFound:  ErrCancel,
	RemoteServerTimeout:   ErrWait,
	ResourceConstraint:    ErrWait,
	ServiceUnavailable:    ErrCancel,
	SubscriptionRequired:  ErrAuth,
	UndefinedCondition:    ErrCancel,
	UnexpectedRequest:     ErrWait,
}

// StanzaError is a stanza-level error (RFC 6120 §8.3). It works with
// errors.Is: two StanzaErrors match when their conditions are equal.
type StanzaError struct {
	Type      ErrorType
	Condition StanzaCondition
	Text      string
	By        string // the entity that made the error; empty to omit
}

// NewStanzaError returns an error with condition c, the type that RFC 6120
// pairs with it, and text (may be empty).
func NewStanzaError(c StanzaCondition, text string) *StanzaError {
	t, ok := defaultType[c]
	if !ok {
		t = ErrCancel
	}
	return &StanzaError{Type: t, Condition: c, Text: text}
}

// Error implements error.
func (e *StanzaError) Error() string {
	if e.Text == "" {
		return "stanza error: " + string(e.Condition)
	}
	return "stanza error: " + string(e.Condition) + ": " + e.Text
}

// Is reports whether target is a *StanzaError with the same condition.
func (e *StanzaError) Is(target error) bool {
	t, ok := target.(*StanzaError)
	return ok && t.Condition == e.Condition
}

// Element renders the <error/> child of an error stanza.
func (e *StanzaError) Element() *etree.Element {
	el := etree.NewElement("error")
	el.CreateAttr("type", string(e.Type))
	if e.By != "" {
		el.CreateAttr("by", e.By)
	}
	c := el.CreateElement(string(e.Condition))
	c.CreateAttr("xmlns", NSStanzas)
	if e.Text != "" {
		t := el.CreateElement("text")
		t.CreateAttr("xmlns", NSStanzas)
		t.SetText(e.Text)
	}
	return el
}

// ParseStanzaError reads the <error/> child of an error stanza. It returns
// nil when el has none.
func ParseStanzaError(el *etree.Element) *StanzaError {
	errEl := el.SelectElement("error")
	if errEl == nil {
		return nil
	}
	cond, text := conditionAndText(errEl, NSStanzas)
	return &StanzaError{
		Type:      ErrorType(errEl.SelectAttrValue("type", "")),
		By:        errEl.SelectAttrValue("by", ""),
		Condition: StanzaCondition(cond),
		Text:      text,
	}
}

// conditionAndText reads an error element's children in namespace ns:
// the first one but <text/> is the condition, <text/> its text.
func conditionAndText(el *etree.Element, ns string) (cond, text string) {
	for _, c := range el.ChildElements() {
		if NS(c) != ns {
			continue
		}
		if c.Tag == "text" {
			text = c.Text()
		} else if cond == "" {
			cond = c.Tag
		}
	}
	return cond, text
}

// ParseStreamError reads a <stream:error/> element as a peer sent it; it
// returns nil for any other element.
func ParseStreamError(el *etree.Element) *StreamError {
	// As read from a stream (xmlns resolved) or as built by Element
	// (the stream: prefix of the stream that will carry it).
	if el == nil || el.Tag != "error" || (NS(el) != NSStream && el.Space != "stream") {
		return nil
	}
	cond, text := conditionAndText(el, NSStreams)
	return &StreamError{Condition: StreamCondition(cond), Text: text}
}
