package subscription

// nine is one of the nine subscription states of RFC 6121 Appendix A.1,
// in the order the RFC's tables list them.
type nine uint8

const (
	sNone             nine = iota // "None"
	sNonePendingOut               // "None + Pending Out"
	sNonePendingIn                // "None + Pending In"
	sNonePendingOutIn             // "None + Pending Out+In"
	sTo                           // "To"
	sToPendingIn                  // "To + Pending In"
	sFrom                         // "From"
	sFromPendingOut               // "From + Pending Out"
	sBoth                         // "Both"
)

// nineOf returns the RFC state of the canonical state s, ignoring Approved.
func nineOf(s State) nine {
	switch s.Sub {
	case To:
		if s.PendingIn {
			return sToPendingIn
		}
		return sTo
	case From:
		if s.PendingOut {
			return sFromPendingOut
		}
		return sFrom
	case Both:
		return sBoth
	}
	switch {
	case s.PendingOut && s.PendingIn:
		return sNonePendingOutIn
	case s.PendingOut:
		return sNonePendingOut
	case s.PendingIn:
		return sNonePendingIn
	}
	return sNone
}

// state returns n as a State without pre-approval.
func (n nine) state() State {
	return [...]State{
		sNone:             {},
		sNonePendingOut:   {PendingOut: true},
		sNonePendingIn:    {PendingIn: true},
		sNonePendingOutIn: {PendingOut: true, PendingIn: true},
		sTo:               {Sub: To},
		sToPendingIn:      {Sub: To, PendingIn: true},
		sFrom:             {Sub: From},
		sFromPendingOut:   {Sub: From, PendingOut: true},
		sBoth:             {Sub: Both},
	}[n]
}

// row is one line of an Appendix A table.
type row struct {
	pass bool // A.2: "ROUTE?"; A.3: "DELIVER?"
	next nine // "NEW STATE"; the old state where the RFC says "no state change"

	// preApprove marks the A.2.3 rows whose new state the RFC gives as
	// "pre-approval" (§3.4.2).
	preApprove bool
	// autoReply marks the A.3.1 rows whose footnote has the server answer
	// "subscribed" on the user's behalf (§3.1.3).
	autoReply bool
}

// table is an Appendix A table, indexed by the existing state.
type table [9]row

// A.2.1, outbound "subscribe". The user's server routes every outbound
// subscribe, whatever the state, so that the user can resynchronize a
// subscription the contact's server has lost (A.2.1, §3.1.2).
var outboundSubscribe = table{
	sNone:             {pass: true, next: sNonePendingOut},
	sNonePendingOut:   {pass: true, next: sNonePendingOut},
	sNonePendingIn:    {pass: true, next: sNonePendingOutIn},
	sNonePendingOutIn: {pass: true, next: sNonePendingOutIn},
	sTo:               {pass: true, next: sTo},
	sToPendingIn:      {pass: true, next: sToPendingIn},
	sFrom:             {pass: true, next: sFromPendingOut},
	sFromPendingOut:   {pass: true, next: sFromPendingOut},
	sBoth:             {pass: true, next: sBoth},
}

// A.2.2, outbound "unsubscribe": routed without exception as well
// (A.2.2, §3.3.2). It ends the user's subscription to the contact and
// withdraws a pending request.
var outboundUnsubscribe = table{
	sNone:             {pass: true, next: sNone},
	sNonePendingOut:   {pass: true, next: sNone},
	sNonePendingIn:    {pass: true, next: sNonePendingIn},
	sNonePendingOutIn: {pass: true, next: sNonePendingIn},
	sTo:               {pass: true, next: sNone},
	sToPendingIn:      {pass: true, next: sNonePendingIn},
	sFrom:             {pass: true, next: sFrom},
	sFromPendingOut:   {pass: true, next: sFrom},
	sBoth:             {pass: true, next: sFrom},
}

// A.2.3, outbound "subscribed". It approves a pending request (§3.1.5).
// Where none is pending and the contact is not subscribed, it is a
// pre-approval (§3.4.2): noted, not routed. Where the contact is already
// subscribed, it is ignored.
var outboundSubscribed = table{
	sNone:             {next: sNone, preApprove: true},
	sNonePendingOut:   {next: sNonePendingOut, preApprove: true},
	sNonePendingIn:    {pass: true, next: sFrom},
	sNonePendingOutIn: {pass: true, next: sFromPendingOut},
	sTo:               {next: sTo, preApprove: true},
	sToPendingIn:      {pass: true, next: sBoth},
	sFrom:             {next: sFrom},
	sFromPendingOut:   {next: sFromPendingOut},
	sBoth:             {next: sBoth},
}

// A.2.4, outbound "unsubscribed". It denies a pending request or cancels
// the contact's subscription (§3.2.2). Where there is neither, it is not
// routed; it only cancels a pre-approval, if there is one (§3.2.2).
var outboundUnsubscribed = table{
	sNone:             {next: sNone},
	sNonePendingOut:   {next: sNonePendingOut},
	sNonePendingIn:    {pass: true, next: sNone},
	sNonePendingOutIn: {pass: true, next: sNonePendingOut},
	sTo:               {next: sTo},
	sToPendingIn:      {pass: true, next: sTo},
	sFrom:             {pass: true, next: sNone},
	sFromPendingOut:   {pass: true, next: sNonePendingOut},
	sBoth:             {pass: true, next: sTo},
}

// A.3.1, inbound "subscribe". A request already pending is not delivered
// again (the stored one is redelivered at the user's next available
// presence, §3.1.3). A contact that is already subscribed gets an
// auto-reply instead (the footnote of A.3.1).
var inboundSubscribe = table{
	sNone:             {pass: true, next: sNonePendingIn},
	sNonePendingOut:   {pass: true, next: sNonePendingOutIn},
	sNonePendingIn:    {next: sNonePendingIn},
	sNonePendingOutIn: {next: sNonePendingOutIn},
	sTo:               {pass: true, next: sToPendingIn},
	sToPendingIn:      {next: sToPendingIn},
	sFrom:             {next: sFrom, autoReply: true},
	sFromPendingOut:   {next: sFromPendingOut, autoReply: true},
	sBoth:             {next: sBoth, autoReply: true},
}

// A.3.2, inbound "unsubscribe". It ends the contact's subscription to the
// user (§3.3.3) or withdraws the contact's pending request, and is
// ignored otherwise.
var inboundUnsubscribe = table{
	sNone:             {next: sNone},
	sNonePendingOut:   {next: sNonePendingOut},
	sNonePendingIn:    {pass: true, next: sNone},
	sNonePendingOutIn: {pass: true, next: sNonePendingOut},
	sTo:               {next: sTo},
	sToPendingIn:      {pass: true, next: sTo},
	sFrom:             {pass: true, next: sNone},
	sFromPendingOut:   {pass: true, next: sNonePendingOut},
	sBoth:             {pass: true, next: sTo},
}

// A.3.3, inbound "subscribed". It is delivered only when it answers the
// user's pending request; otherwise it is silently ignored (§3.1.6).
var inboundSubscribed = table{
	sNone:             {next: sNone},
	sNonePendingOut:   {pass: true, next: sTo},
	sNonePendingIn:    {next: sNonePendingIn},
	sNonePendingOutIn: {pass: true, next: sToPendingIn},
	sTo:               {next: sTo},
	sToPendingIn:      {next: sToPendingIn},
	sFrom:             {next: sFrom},
	sFromPendingOut:   {pass: true, next: sBoth},
	sBoth:             {next: sBoth},
}

// A.3.4, inbound "unsubscribed". It denies the user's pending request or
// cancels the user's subscription to the contact (§3.2.3); otherwise it is
// ignored.
var inboundUnsubscribed = table{
	sNone:             {next: sNone},
	sNonePendingOut:   {pass: true, next: sNone},
	sNonePendingIn:    {next: sNonePendingIn},
	sNonePendingOutIn: {pass: true, next: sNonePendingIn},
	sTo:               {pass: true, next: sNone},
	sToPendingIn:      {pass: true, next: sNonePendingIn},
	sFrom:             {next: sFrom},
	sFromPendingOut:   {pass: true, next: sFrom},
	sBoth:             {pass: true, next: sFrom},
}
