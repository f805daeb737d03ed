// Package subscription is the presence subscription state machine of
// RFC 6121: the state a user's server keeps for each contact (Appendix A.1,
// plus the pre-approval of §3.4), and what the server does with each
// subscription stanza of type subscribe, subscribed, unsubscribe or
// unsubscribed, whether the user sent it (Appendix A.2) or it came from
// the contact (Appendix A.3).
//
// It is pure: ApplyOutbound and ApplyInbound take a state and a stanza type
// and return the next state and the actions the RFC calls for (route,
// deliver, push the roster item, answer on the user's behalf, send presence).
// The caller does the sending and storing. This package does not parse
// stanzas, stamp addresses, keep rosters, find resources or decide whether
// a user exists. It imports only the standard library.
//
// # Calling convention
//
// For a stanza the user sends to a contact, the user's server does this:
//
//	r := subscription.ApplyOutbound(state, typ)
//	// store r.Next if it differs from state; if r.Push and the user had no
//	// roster item for the contact, this creates one
//	// if r.Push: push the item to the user's interested resources, before
//	//   routing: a local contact may answer at once, and the push of that
//	//   answer must come after this one
//	// if r.SendUnavailable: send unavailable presence from each of the
//	//   user's available resources to the contact, before routing (§3.2.2)
//	// if r.Route: route the stanza, stamped with the user's bare JID
//	// if r.SendPresence: send the contact the user's current presence
//	//   from each available resource (§3.1.5)
//
// For a stanza that arrives from a contact:
//
//	r := subscription.ApplyInbound(state, typ, hasItem)
//	// store r.Next (a record with no roster item that only holds a pending
//	//   request is dropped when r.Next is the zero State)
//	// if r.Deliver: deliver the stanza to the user (a subscribe goes to
//	//   available resources and, since r.Next.PendingIn, is kept for
//	//   redelivery at the user's next available presence; the other
//	//   types go to the interested resources, before the push: §3.1.6,
//	//   §3.2.3 and §3.3.3 say it MUST come first)
//	// if r.Push: push the item to the user's interested resources
//	// if r.AutoReply != "": send a presence of that type from the user's
//	//   bare JID to the contact's
//	// if r.SendPresence: send the contact the user's current presence
//	// if r.SendUnavailable: send unavailable presence from each of the
//	//   user's available resources to the contact (§3.3.3)
//
// An inbound subscribe never creates a roster item: a contact who only asked
// is "not yet in the contact's roster" (§3.3.3). The server keeps a record of
// the pending request, outside the roster the user sees, until the user
// answers. ApplyOutbound asks for a push when the user answers, and the
// caller creates the item then.
package subscription
