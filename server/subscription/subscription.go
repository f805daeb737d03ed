package subscription

import (
	"strconv"
	"strings"
)

// The presence types that manage subscriptions (RFC 6121 §3). Any other
// type passed to ApplyOutbound or ApplyInbound changes nothing.
const (
	Subscribe    = "subscribe"
	Subscribed   = "subscribed"
	Unsubscribe  = "unsubscribe"
	Unsubscribed = "unsubscribed"
)

// Sub is the subscription attribute of a roster item (RFC 6121 §2.1.2.5):
// To means the user receives the contact's presence, From means the contact
// receives the user's.
type Sub uint8

// The four values of the subscription attribute.
const (
	None Sub = iota
	To
	From
	Both
)

var subNames = [...]string{None: "none", To: "to", From: "from", Both: "both"}

// String returns the attribute value: "none", "to", "from" or "both".
func (s Sub) String() string {
	if int(s) < len(subNames) {
		return subNames[s]
	}
	return "Sub(" + strconv.Itoa(int(s)) + ")"
}

// ParseSub parses a subscription attribute value. It accepts exactly
// "none", "to", "from" and "both"; "remove", which only a roster set
// carries, is not a subscription.
func ParseSub(s string) (Sub, bool) {
	for i, name := range subNames {
		if s == name {
			return Sub(i), true
		}
	}
	return None, false
}

// to reports whether the user receives the contact's presence.
func (s Sub) to() bool { return s == To || s == Both }

// from reports whether the contact receives the user's presence.
func (s Sub) from() bool { return s == From || s == Both }

// HasTo reports whether the user receives the contact's presence: To or
// Both.
func (s Sub) HasTo() bool { return s.to() }

// HasFrom reports whether the contact receives the user's presence: From
// or Both.
func (s Sub) HasFrom() bool { return s.from() }

// State is a contact's subscription state as the user's server keeps it:
// the nine states of RFC 6121 Appendix A.1 plus the pre-approval of §3.4,
// which can only be held in the states None, None + Pending Out and To.
//
// ApplyOutbound and ApplyInbound accept any State. Before they apply a
// table, they drop the flags that the subscription makes moot: PendingOut
// with To or Both, PendingIn and Approved with From or Both, and Approved
// with PendingIn, which the RFC never reaches because a pre-approved
// request is answered at once. A Sub above Both is read as None.
type State struct {
	Sub        Sub
	PendingOut bool // the user asked to subscribe to the contact (roster ask='subscribe')
	PendingIn  bool // the contact asked to subscribe to the user and waits for an answer
	Approved   bool // the user pre-approved the contact's subscription (roster approved='true')
}

// Ask reports whether the roster item carries ask='subscribe'
// (RFC 6121 §2.1.2.2): the user's subscription request is pending.
func (s State) Ask() bool { return s.PendingOut }

// String names the state as RFC 6121 Appendix A.1 does, for example
// "None + Pending Out+In" or "From + Pending Out", and adds
// " + Pre-Approved" when the user pre-approved the contact.
func (s State) String() string {
	var b strings.Builder
	if int(s.Sub) < len(subNames) {
		b.WriteString(strings.ToUpper(subNames[s.Sub][:1]) + subNames[s.Sub][1:])
	} else {
		b.WriteString(s.Sub.String())
	}
	switch {
	case s.PendingOut && s.PendingIn:
		b.WriteString(" + Pending Out+In")
	case s.PendingOut:
		b.WriteString(" + Pending Out")
	case s.PendingIn:
		b.WriteString(" + Pending In")
	}
	if s.Approved {
		b.WriteString(" + Pre-Approved")
	}
	return b.String()
}

// canonical drops the flags of s that its subscription makes moot (see State).
func canonical(s State) State {
	if s.Sub > Both {
		s.Sub = None
	}
	if s.Sub.to() {
		s.PendingOut = false
	}
	if s.Sub.from() {
		s.PendingIn = false
		s.Approved = false
	}
	if s.PendingIn {
		s.Approved = false
	}
	return s
}

// visible is what a roster item shows of s: subscription, ask and
// approved. PendingIn is not part of a roster item (RFC 6121 §2.1.2).
func visible(s State) State {
	s.PendingIn = false
	return s
}

// Outbound is what the user's server does with a subscription stanza the
// user sent to the contact (RFC 6121 Appendix A.2).
type Outbound struct {
	// Next is the new state. It equals the (canonical) old state in the
	// rows the RFC marks "no state change".
	Next State
	// Route: send the stanza on to the contact, stamped with the user's
	// bare JID by the caller. Always true for subscribe and unsubscribe
	// (A.2.1, A.2.2: "without exception"); for subscribed and unsubscribed
	// only when the state changes the contact's subscription (A.2.3, A.2.4).
	Route bool
	// Push: the roster item as the user sees it (subscription, ask,
	// approved) changed, or must be created: push it to the user's
	// interested resources. A change of PendingIn alone is not pushed.
	Push bool
	// SendPresence: after routing an approval, send the contact the user's
	// current presence from each available resource (§3.1.5).
	SendPresence bool
	// SendUnavailable: the user cancelled the contact's subscription; send
	// the contact unavailable presence from each of the user's available
	// resources, before routing the unsubscribed, while the contact is
	// still subscribed (§3.2.2).
	SendUnavailable bool
}

// Inbound is what the user's server does with a subscription stanza that
// arrived from the contact (RFC 6121 Appendix A.3).
type Inbound struct {
	// Next is the new state. It equals the (canonical) old state in the
	// rows the RFC marks "no state change".
	Next State
	// Deliver: deliver the stanza to the user. A subscribe goes to the
	// user's available resources and, since Next.PendingIn is then set, is
	// kept for redelivery each time the user becomes available until the
	// user answers (§3.1.3). Subscribed, unsubscribe and unsubscribed go to
	// the user's interested resources (§3.1.6, §3.3.3, §3.2.3).
	Deliver bool
	// Push: the roster item as the user sees it changed: push it to the
	// user's interested resources.
	Push bool
	// AutoReply is "" or the type of a presence the server sends the
	// contact on the user's behalf: "subscribed" when the contact already
	// has a subscription (A.3.1, §3.1.3) or the user pre-approved it
	// (§3.4); "unsubscribed" when an unsubscribe changed the state, as
	// footnote 1 of A.3.2 asks, confirming to the contact that its
	// subscription or request is gone.
	AutoReply string
	// SendPresence: the server answered a subscribe with "subscribed" on
	// the user's behalf; send the contact the user's current presence from
	// each available resource, as after any approval (§3.1.5).
	SendPresence bool
	// SendUnavailable: the contact gave up its subscription to the user;
	// send it unavailable presence from each of the user's available
	// resources (§3.3.3).
	SendUnavailable bool
}

// ApplyOutbound is the user's server processing a subscription stanza of
// type typ that the user sent to the contact whose state is s
// (RFC 6121 Appendix A.2, §3.1.2, §3.1.5, §3.2.2, §3.3.2 and §3.4.2).
// A typ that is not one of the four subscription types changes nothing.
func ApplyOutbound(s State, typ string) Outbound {
	s = canonical(s)
	var t *table
	switch typ {
	case Subscribe:
		t = &outboundSubscribe
	case Unsubscribe:
		t = &outboundUnsubscribe
	case Subscribed:
		t = &outboundSubscribed
	case Unsubscribed:
		t = &outboundUnsubscribed
	default:
		return Outbound{Next: s}
	}
	r := t[nineOf(s)]
	next := r.next.state()
	next.Approved = s.Approved // A.1: pre-approval is kept across the nine states
	out := Outbound{Route: r.pass}
	switch typ {
	case Subscribed:
		if r.preApprove {
			next.Approved = true // §3.4.2: note the pre-approval, do not route
		}
		out.SendPresence = r.pass // §3.1.5
	case Unsubscribed:
		if !r.pass {
			// §3.2.2: "None", "None + Pending Out" or "To" with the
			// approved flag: remove the pre-approval, do not route.
			next.Approved = false
		}
		out.SendUnavailable = s.Sub.from() // §3.2.2
	}
	out.Next = canonical(next)
	out.Push = visible(s) != visible(out.Next)
	return out
}

// ApplyInbound is the user's server processing a subscription stanza of
// type typ that arrived from the contact whose state is s (RFC 6121
// Appendix A.3, §3.1.3, §3.1.6, §3.2.3, §3.3.3 and §3.4). exists reports
// whether the user has a roster item for the contact; a record that only
// holds a pending inbound request may be passed with exists true or false,
// as both give the same answer. Without an item, s can only be "None" or
// "None + Pending In", and other flags are dropped. A typ that is not one
// of the four subscription types changes nothing.
func ApplyInbound(s State, typ string, exists bool) Inbound {
	s = canonical(s)
	if !exists {
		s = State{PendingIn: s.PendingIn}
	}
	var t *table
	switch typ {
	case Subscribe:
		t = &inboundSubscribe
	case Unsubscribe:
		t = &inboundUnsubscribe
	case Subscribed:
		t = &inboundSubscribed
	case Unsubscribed:
		t = &inboundUnsubscribed
	default:
		return Inbound{Next: s}
	}
	r := t[nineOf(s)]
	next := r.next.state()
	next.Approved = s.Approved // A.1: pre-approval is kept across the nine states
	in := Inbound{Deliver: r.pass}
	switch typ {
	case Subscribe:
		switch {
		case s.Approved:
			// §3.1.3, §3.4: a pre-approved request is answered on the
			// user's behalf and not delivered. The state becomes what the
			// user's own approval of the now pending request would make it
			// (A.3.1 then A.2.3): None gives From, None + Pending Out gives
			// From + Pending Out, To gives Both; the approval is used up.
			next = outboundSubscribed[r.next].next.state()
			in.Deliver = false
			in.AutoReply = Subscribed
			in.SendPresence = true
		case r.autoReply:
			// A.3.1 footnote, §3.1.3: the contact is already subscribed
			// and lost track of it. The RFC asks only for the auto-reply;
			// the presence follows as after any approval (§3.1.5), or the
			// contact would see none until the user's next broadcast.
			in.AutoReply = Subscribed
			in.SendPresence = true
		}
	case Unsubscribe:
		in.SendUnavailable = s.Sub.from() // §3.3.3 step 3
		if r.pass {
			// A.3.2 footnote 1: every row that changes the state (they
			// are the rows that deliver) is answered "unsubscribed".
			in.AutoReply = Unsubscribed
		}
	}
	in.Next = canonical(next)
	in.Push = exists && visible(s) != visible(in.Next)
	return in
}
