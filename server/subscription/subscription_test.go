package subscription

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// The twelve states a server can hold: the nine of RFC 6121 Appendix A.1
// and the three that carry a pre-approval (§3.4).
var (
	none          = State{}
	nonePOut      = State{PendingOut: true}
	nonePIn       = State{PendingIn: true}
	nonePOutIn    = State{PendingOut: true, PendingIn: true}
	to            = State{Sub: To}
	toPIn         = State{Sub: To, PendingIn: true}
	from          = State{Sub: From}
	fromPOut      = State{Sub: From, PendingOut: true}
	both          = State{Sub: Both}
	noneApproved  = State{Approved: true}
	nonePOutAppr  = State{PendingOut: true, Approved: true}
	toApproved    = State{Sub: To, Approved: true}
	validStates   = []State{none, nonePOut, nonePIn, nonePOutIn, to, toPIn, from, fromPOut, both, noneApproved, nonePOutAppr, toApproved}
	subscriptions = []string{Subscribe, Subscribed, Unsubscribe, Unsubscribed}
)

// allStates is every State with a known Sub, valid or not.
func allStates() []State {
	var states []State
	for sub := None; sub <= Both; sub++ {
		for bits := range 8 {
			states = append(states, State{Sub: sub, PendingOut: bits&1 != 0, PendingIn: bits&2 != 0, Approved: bits&4 != 0})
		}
	}
	return states
}

// act is a set of the actions a transition asks for.
type act uint8

const (
	route act = 1 << iota
	deliver
	push
	sendPresence
	sendUnavailable
	autoReply      // AutoReply is "subscribed"
	autoReplyUnsub // AutoReply is "unsubscribed"
)

func (a act) String() string {
	var words []string
	for _, w := range []struct {
		bit  act
		word string
	}{
		{route, "routes"}, {deliver, "delivers"}, {push, "pushes"},
		{autoReply, "auto-replies subscribed"}, {autoReplyUnsub, "auto-replies unsubscribed"},
		{sendPresence, "sends presence"},
		{sendUnavailable, "sends unavailable"},
	} {
		if a&w.bit != 0 {
			words = append(words, w.word)
		}
	}
	if len(words) == 0 {
		return "does nothing else"
	}
	return strings.Join(words, " and ")
}

func outboundActs(o Outbound) act {
	var a act
	for _, f := range []struct {
		on  bool
		bit act
	}{{o.Route, route}, {o.Push, push}, {o.SendPresence, sendPresence}, {o.SendUnavailable, sendUnavailable}} {
		if f.on {
			a |= f.bit
		}
	}
	return a
}

func inboundActs(in Inbound) act {
	var a act
	for _, f := range []struct {
		on  bool
		bit act
	}{{in.Deliver, deliver}, {in.Push, push}, {in.SendPresence, sendPresence}, {in.SendUnavailable, sendUnavailable}, {in.AutoReply == Subscribed, autoReply}, {in.AutoReply == Unsubscribed, autoReplyUnsub}} {
		if f.on {
			a |= f.bit
		}
	}
	return a
}

// transition is one expected row: direction, stanza type, old state, new
// state and the actions.
type transition struct {
	typ  string
	old  State
	next State
	acts act
}

func (tr transition) name(dir string) string {
	change := "gives " + tr.next.String()
	if tr.next == tr.old {
		change = "keeps it"
	}
	return fmt.Sprintf("%s %s from %s %s and %s", dir, tr.typ, tr.old, change, tr.acts)
}

// outboundRows is RFC 6121 Appendix A.2, with the pre-approval rules of
// §3.4.2 and §3.2.2, written out for every state.
var outboundRows = []transition{
	// A.2.1: subscribe is routed without exception.
	{Subscribe, none, nonePOut, route | push},
	{Subscribe, nonePOut, nonePOut, route},
	{Subscribe, nonePIn, nonePOutIn, route | push},
	{Subscribe, nonePOutIn, nonePOutIn, route},
	{Subscribe, to, to, route},
	{Subscribe, toPIn, toPIn, route},
	{Subscribe, from, fromPOut, route | push},
	{Subscribe, fromPOut, fromPOut, route},
	{Subscribe, both, both, route},
	{Subscribe, noneApproved, nonePOutAppr, route | push},
	{Subscribe, nonePOutAppr, nonePOutAppr, route},
	{Subscribe, toApproved, toApproved, route},

	// A.2.2: unsubscribe is routed without exception; a pre-approval is
	// about the other direction and stays.
	{Unsubscribe, none, none, route},
	{Unsubscribe, nonePOut, none, route | push},
	{Unsubscribe, nonePIn, nonePIn, route},
	{Unsubscribe, nonePOutIn, nonePIn, route | push},
	{Unsubscribe, to, none, route | push},
	{Unsubscribe, toPIn, nonePIn, route | push},
	{Unsubscribe, from, from, route},
	{Unsubscribe, fromPOut, from, route | push},
	{Unsubscribe, both, from, route | push},
	{Unsubscribe, noneApproved, noneApproved, route},
	{Unsubscribe, nonePOutAppr, noneApproved, route | push},
	{Unsubscribe, toApproved, noneApproved, route | push},

	// A.2.3: subscribed approves (§3.1.5), pre-approves (§3.4.2) or is
	// ignored.
	{Subscribed, none, noneApproved, push},
	{Subscribed, nonePOut, nonePOutAppr, push},
	{Subscribed, nonePIn, from, route | push | sendPresence},
	{Subscribed, nonePOutIn, fromPOut, route | push | sendPresence},
	{Subscribed, to, toApproved, push},
	{Subscribed, toPIn, both, route | push | sendPresence},
	{Subscribed, from, from, 0},
	{Subscribed, fromPOut, fromPOut, 0},
	{Subscribed, both, both, 0},
	{Subscribed, noneApproved, noneApproved, 0},
	{Subscribed, nonePOutAppr, nonePOutAppr, 0},
	{Subscribed, toApproved, toApproved, 0},

	// A.2.4: unsubscribed denies, cancels (§3.2.2) or, with nothing to
	// deny or cancel, only removes a pre-approval.
	{Unsubscribed, none, none, 0},
	{Unsubscribed, nonePOut, nonePOut, 0},
	{Unsubscribed, nonePIn, none, route},
	{Unsubscribed, nonePOutIn, nonePOut, route},
	{Unsubscribed, to, to, 0},
	{Unsubscribed, toPIn, to, route},
	{Unsubscribed, from, none, route | push | sendUnavailable},
	{Unsubscribed, fromPOut, nonePOut, route | push | sendUnavailable},
	{Unsubscribed, both, to, route | push | sendUnavailable},
	{Unsubscribed, noneApproved, none, push},
	{Unsubscribed, nonePOutAppr, nonePOut, push},
	{Unsubscribed, toApproved, to, push},
}

// inboundRows is RFC 6121 Appendix A.3, with the pre-approval rule of
// §3.1.3 and §3.4, written out for every state of an existing roster item.
var inboundRows = []transition{
	// A.3.1: a new request is delivered (and kept for redelivery); a
	// duplicate is not; a subscribed contact gets an auto-reply; a
	// pre-approved request is answered on the user's behalf.
	{Subscribe, none, nonePIn, deliver},
	{Subscribe, nonePOut, nonePOutIn, deliver},
	{Subscribe, nonePIn, nonePIn, 0},
	{Subscribe, nonePOutIn, nonePOutIn, 0},
	{Subscribe, to, toPIn, deliver},
	{Subscribe, toPIn, toPIn, 0},
	{Subscribe, from, from, autoReply | sendPresence},
	{Subscribe, fromPOut, fromPOut, autoReply | sendPresence},
	{Subscribe, both, both, autoReply | sendPresence},
	{Subscribe, noneApproved, from, push | autoReply | sendPresence},
	{Subscribe, nonePOutAppr, fromPOut, push | autoReply | sendPresence},
	{Subscribe, toApproved, both, push | autoReply | sendPresence},

	// A.3.2: unsubscribe ends the contact's subscription (§3.3.3) or
	// withdraws its request; where it changes the state, the server
	// answers unsubscribed on the user's behalf (A.3.2, footnote 1).
	{Unsubscribe, none, none, 0},
	{Unsubscribe, nonePOut, nonePOut, 0},
	{Unsubscribe, nonePIn, none, deliver | autoReplyUnsub},
	{Unsubscribe, nonePOutIn, nonePOut, deliver | autoReplyUnsub},
	{Unsubscribe, to, to, 0},
	{Unsubscribe, toPIn, to, deliver | autoReplyUnsub},
	{Unsubscribe, from, none, deliver | push | sendUnavailable | autoReplyUnsub},
	{Unsubscribe, fromPOut, nonePOut, deliver | push | sendUnavailable | autoReplyUnsub},
	{Unsubscribe, both, to, deliver | push | sendUnavailable | autoReplyUnsub},
	{Unsubscribe, noneApproved, noneApproved, 0},
	{Unsubscribe, nonePOutAppr, nonePOutAppr, 0},
	{Unsubscribe, toApproved, toApproved, 0},

	// A.3.3: subscribed counts only as the answer to a pending request
	// (§3.1.6).
	{Subscribed, none, none, 0},
	{Subscribed, nonePOut, to, deliver | push},
	{Subscribed, nonePIn, nonePIn, 0},
	{Subscribed, nonePOutIn, toPIn, deliver | push},
	{Subscribed, to, to, 0},
	{Subscribed, toPIn, toPIn, 0},
	{Subscribed, from, from, 0},
	{Subscribed, fromPOut, both, deliver | push},
	{Subscribed, both, both, 0},
	{Subscribed, noneApproved, noneApproved, 0},
	{Subscribed, nonePOutAppr, toApproved, deliver | push},
	{Subscribed, toApproved, toApproved, 0},

	// A.3.4: unsubscribed denies the user's request or cancels the user's
	// subscription (§3.2.3).
	{Unsubscribed, none, none, 0},
	{Unsubscribed, nonePOut, none, deliver | push},
	{Unsubscribed, nonePIn, nonePIn, 0},
	{Unsubscribed, nonePOutIn, nonePIn, deliver | push},
	{Unsubscribed, to, none, deliver | push},
	{Unsubscribed, toPIn, nonePIn, deliver | push},
	{Unsubscribed, from, from, 0},
	{Unsubscribed, fromPOut, from, deliver | push},
	{Unsubscribed, both, from, deliver | push},
	{Unsubscribed, noneApproved, noneApproved, 0},
	{Unsubscribed, nonePOutAppr, noneApproved, deliver | push},
	{Unsubscribed, toApproved, noneApproved, deliver | push},
}

func TestApplyOutbound(t *testing.T) {
	for _, tr := range outboundRows {
		t.Run(tr.name("outbound"), func(t *testing.T) {
			got := ApplyOutbound(tr.old, tr.typ)
			if got.Next != tr.next || outboundActs(got) != tr.acts {
				t.Errorf("ApplyOutbound(%s, %s) gives %s and %s, want %s and %s",
					tr.old, tr.typ, got.Next, outboundActs(got), tr.next, tr.acts)
			}
		})
	}
}

func TestApplyInbound(t *testing.T) {
	for _, tr := range inboundRows {
		t.Run(tr.name("inbound"), func(t *testing.T) {
			got := ApplyInbound(tr.old, tr.typ, true)
			if got.Next != tr.next || inboundActs(got) != tr.acts {
				t.Errorf("ApplyInbound(%s, %s, true) gives %s and %s, want %s and %s",
					tr.old, tr.typ, got.Next, inboundActs(got), tr.next, tr.acts)
			}
			if got.AutoReply != "" && got.AutoReply != Subscribed && got.AutoReply != Unsubscribed {
				t.Errorf("AutoReply = %q, want %q, %q or none", got.AutoReply, Subscribed, Unsubscribed)
			}
		})
	}
}

// TestApplyInboundWithoutItem covers a contact with no roster item: either
// nothing is kept, or only the record of the contact's pending request
// (RFC 6121 §3.1.3, §3.3.3). Nothing is pushed, since there is no item.
func TestApplyInboundWithoutItem(t *testing.T) {
	rows := []transition{
		{Subscribe, none, nonePIn, deliver},
		{Unsubscribe, none, none, 0},
		{Subscribed, none, none, 0},
		{Unsubscribed, none, none, 0},
		{Subscribe, nonePIn, nonePIn, 0},
		{Unsubscribe, nonePIn, none, deliver | autoReplyUnsub}, // §3.3.3: remove the record of the request
		{Subscribed, nonePIn, nonePIn, 0},
		{Unsubscribed, nonePIn, nonePIn, 0},
		// Without an item there is no subscription, ask or pre-approval.
		{Subscribe, both, nonePIn, deliver},
		{Subscribe, noneApproved, nonePIn, deliver},
		{Subscribed, nonePOut, none, 0},
	}
	for _, tr := range rows {
		t.Run(strings.Replace(tr.name("inbound"), " from ", " without an item from ", 1), func(t *testing.T) {
			got := ApplyInbound(tr.old, tr.typ, false)
			if got.Next != tr.next || inboundActs(got) != tr.acts {
				t.Errorf("ApplyInbound(%s, %s, false) gives %s and %s, want %s and %s",
					tr.old, tr.typ, got.Next, inboundActs(got), tr.next, tr.acts)
			}
		})
	}
}

// TestRowsCoverEveryState checks that the expected tables have exactly one
// row for each valid state and subscription type, so that no transition
// goes untested and none is given two answers.
func TestRowsCoverEveryState(t *testing.T) {
	for dir, rows := range map[string][]transition{"outbound": outboundRows, "inbound": inboundRows} {
		seen := make(map[transition]int)
		for _, tr := range rows {
			seen[transition{typ: tr.typ, old: tr.old}]++
		}
		for _, s := range validStates {
			for _, typ := range subscriptions {
				if n := seen[transition{typ: typ, old: s}]; n != 1 {
					t.Errorf("%s %s from %s: %d rows, want 1", dir, typ, s, n)
				}
			}
		}
		if len(rows) != len(validStates)*len(subscriptions) {
			t.Errorf("%s: %d rows, want %d", dir, len(rows), len(validStates)*len(subscriptions))
		}
	}
}

// checkCanonical reports the ways s is not a state the RFC can reach.
func checkCanonical(t *testing.T, what string, s State) {
	t.Helper()
	switch {
	case s.Sub > Both:
		t.Errorf("%s: Next has unknown subscription %d", what, s.Sub)
	case s.Sub == Both && (s.PendingOut || s.PendingIn):
		t.Errorf("%s: Next is %s: Both with a pending request", what, s)
	case (s.Sub == To) && s.PendingOut:
		t.Errorf("%s: Next is %s: asks for a subscription it has", what, s)
	case (s.Sub == From) && s.PendingIn:
		t.Errorf("%s: Next is %s: waits for an approval it has", what, s)
	case s.Approved && (s.Sub == From || s.Sub == Both || s.PendingIn):
		t.Errorf("%s: Next is %s: pre-approval outside None, None + Pending Out and To", what, s)
	}
}

// TestNextIsAlwaysAValidState: whatever the input, even one no server
// should have stored, no transition leaves Both with a pending request or
// any other state outside the twelve.
func TestNextIsAlwaysAValidState(t *testing.T) {
	types := append([]string{"", "probe", "unavailable", "error"}, subscriptions...)
	for _, s := range append(allStates(), State{Sub: 7, PendingOut: true}) {
		for _, typ := range types {
			checkCanonical(t, fmt.Sprintf("outbound %q from %s", typ, s), ApplyOutbound(s, typ).Next)
			for _, exists := range []bool{true, false} {
				in := ApplyInbound(s, typ, exists)
				what := fmt.Sprintf("inbound %q from %s (item %t)", typ, s, exists)
				checkCanonical(t, what, in.Next)
				if !exists && (in.Next.Sub != None || in.Next.PendingOut || in.Next.Approved || in.Push) {
					t.Errorf("%s gives %s, push %t: without an item only a pending request can be kept", what, in.Next, in.Push)
				}
			}
		}
	}
}

// TestOtherTypesChangeNothing: only the four subscription types are
// processed here.
func TestOtherTypesChangeNothing(t *testing.T) {
	for _, s := range validStates {
		for _, typ := range []string{"", "probe", "unavailable", "error", "Subscribe", "subscribe "} {
			if got := ApplyOutbound(s, typ); got != (Outbound{Next: s}) {
				t.Errorf("ApplyOutbound(%s, %q) = %+v, want no change and no action", s, typ, got)
			}
			if got := ApplyInbound(s, typ, true); got != (Inbound{Next: s}) {
				t.Errorf("ApplyInbound(%s, %q) = %+v, want no change and no action", s, typ, got)
			}
		}
	}
}

// TestNoStateChangeIsNotPassedOn: where a table says "no state change",
// the RFC does not route an outbound subscribed or unsubscribed (A.2.3,
// A.2.4) and does not deliver any inbound subscription stanza (A.3); only
// outbound subscribe and unsubscribe are routed without exception (A.2.1,
// A.2.2).
func TestNoStateChangeIsNotPassedOn(t *testing.T) {
	for _, s := range validStates {
		for _, typ := range subscriptions {
			out := ApplyOutbound(s, typ)
			routedAlways := typ == Subscribe || typ == Unsubscribe
			if routedAlways && !out.Route {
				t.Errorf("outbound %s from %s is not routed; A.2 routes it without exception", typ, s)
			}
			if !routedAlways && out.Next == s && out.Route {
				t.Errorf("outbound %s from %s changes nothing but is routed", typ, s)
			}
			if in := ApplyInbound(s, typ, true); in.Next == s && in.Deliver {
				t.Errorf("inbound %s from %s changes nothing but is delivered", typ, s)
			}
		}
	}
}

// TestDuplicateIsQuiet: applying the same stanza twice changes nothing the
// second time, pushes nothing, and passes on only what the RFC passes on
// without exception.
func TestDuplicateIsQuiet(t *testing.T) {
	for _, s := range validStates {
		for _, typ := range subscriptions {
			first := ApplyOutbound(s, typ)
			again := ApplyOutbound(first.Next, typ)
			if again.Next != first.Next || again.Push || again.SendPresence || again.SendUnavailable {
				t.Errorf("outbound %s twice from %s: second gives %s and %s", typ, s, again.Next, outboundActs(again))
			}
			if again.Route && typ != Subscribe && typ != Unsubscribe {
				t.Errorf("outbound %s twice from %s: second is routed", typ, s)
			}

			in := ApplyInbound(s, typ, true)
			inAgain := ApplyInbound(in.Next, typ, true)
			if inAgain.Next != in.Next || inAgain.Deliver || inAgain.Push || inAgain.SendUnavailable {
				t.Errorf("inbound %s twice from %s: second gives %s and %s", typ, s, inAgain.Next, inboundActs(inAgain))
			}
		}
	}
}

// TestPushMeansTheItemChanged: a push is asked for exactly when the roster
// item as the user sees it (subscription, ask, approved) changes.
func TestPushMeansTheItemChanged(t *testing.T) {
	seen := func(s State) [3]any { return [3]any{s.Sub, s.Ask(), s.Approved} }
	for _, s := range validStates {
		for _, typ := range subscriptions {
			out := ApplyOutbound(s, typ)
			if changed := seen(s) != seen(out.Next); out.Push != changed {
				t.Errorf("outbound %s from %s to %s: push %t, item changed %t", typ, s, out.Next, out.Push, changed)
			}
			in := ApplyInbound(s, typ, true)
			if changed := seen(s) != seen(in.Next); in.Push != changed {
				t.Errorf("inbound %s from %s to %s: push %t, item changed %t", typ, s, in.Next, in.Push, changed)
			}
		}
	}
}

// server is one side of a subscription as its server keeps it: the state
// of the other party, and whether a roster item exists for it.
type server struct {
	name string
	st   State
	item bool
}

// send processes typ sent by a's user to b's user: outbound at a, then, if
// routed, inbound at b, and any auto-reply back at a.
func send(t *testing.T, a, b *server, typ string) {
	t.Helper()
	out := ApplyOutbound(a.st, typ)
	a.st = out.Next
	if out.Push {
		a.item = true
	}
	if out.Route {
		receive(t, b, a, typ)
	}
}

func receive(t *testing.T, at, sender *server, typ string) {
	t.Helper()
	in := ApplyInbound(at.st, typ, at.item)
	at.st = in.Next
	if in.Push && !at.item {
		t.Fatalf("%s: inbound %s pushes an item that does not exist", at.name, typ)
	}
	if in.AutoReply != "" {
		// The auto-reply is the server's own answer: it already changed
		// its state, so the reply is only inbound at the other side.
		receive(t, sender, at, in.AutoReply)
	}
}

// TestTwoServersStayInSync plays random subscription exchanges between
// two users on servers that both follow these tables and lose no stanza,
// and checks after each exchange that each side agrees with the other: the
// user's To is the contact's From, and the user's Pending Out is the
// contact's Pending In.
func TestTwoServersStayInSync(t *testing.T) {
	rng := rand.New(rand.NewPCG(6121, 3))
	for game := range 200 {
		a, b := &server{name: "juliet's server"}, &server{name: "romeo's server"}
		var log []string
		for range 50 {
			typ := subscriptions[rng.IntN(len(subscriptions))]
			sender, receiver := a, b
			if rng.IntN(2) == 1 {
				sender, receiver = b, a
			}
			send(t, sender, receiver, typ)
			log = append(log, sender.name+" user sends "+typ)
			if a.st.Sub.to() != b.st.Sub.from() || a.st.Sub.from() != b.st.Sub.to() ||
				a.st.PendingOut != b.st.PendingIn || a.st.PendingIn != b.st.PendingOut {
				t.Fatalf("game %d: out of sync after\n%s\njuliet keeps %s, romeo keeps %s",
					game, strings.Join(log, "\n"), a.st, b.st)
			}
		}
	}
}

func TestSubString(t *testing.T) {
	for sub, want := range map[Sub]string{None: "none", To: "to", From: "from", Both: "both", 9: "Sub(9)"} {
		if got := sub.String(); got != want {
			t.Errorf("Sub(%d).String() = %q, want %q", sub, got, want)
		}
	}
}

func TestParseSub(t *testing.T) {
	for sub := None; sub <= Both; sub++ {
		if got, ok := ParseSub(sub.String()); !ok || got != sub {
			t.Errorf("ParseSub(%q) = %v, %t, want %v, true", sub.String(), got, ok, sub)
		}
	}
	for _, s := range []string{"", "remove", "None", " both", "Sub(9)"} {
		if got, ok := ParseSub(s); ok {
			t.Errorf("ParseSub(%q) = %v, true, want false", s, got)
		}
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{
		none:         "None",
		nonePOut:     "None + Pending Out",
		nonePIn:      "None + Pending In",
		nonePOutIn:   "None + Pending Out+In",
		to:           "To",
		toPIn:        "To + Pending In",
		from:         "From",
		fromPOut:     "From + Pending Out",
		both:         "Both",
		noneApproved: "None + Pre-Approved",
		nonePOutAppr: "None + Pending Out + Pre-Approved",
		toApproved:   "To + Pre-Approved",
		{Sub: 9}:     "Sub(9)",
	} {
		if got := s.String(); got != want {
			t.Errorf("%#v.String() = %q, want %q", s, got, want)
		}
	}
}

func TestAsk(t *testing.T) {
	for _, s := range validStates {
		want := s == nonePOut || s == nonePOutIn || s == fromPOut || s == nonePOutAppr
		if got := s.Ask(); got != want {
			t.Errorf("%s: Ask() = %t, want %t", s, got, want)
		}
	}
}
