package subscription_test

import (
	"fmt"

	"github.com/parley-im/parley/server/subscription"
)

// Juliet pre-approves Romeo, then Romeo asks to subscribe: Juliet's server
// answers for her and pushes the item, now subscription='from'.
func ExampleApplyInbound() {
	var romeo subscription.State // no roster item yet
	out := subscription.ApplyOutbound(romeo, subscription.Subscribed)
	fmt.Println(out.Next, "route:", out.Route, "push:", out.Push)

	in := subscription.ApplyInbound(out.Next, subscription.Subscribe, true)
	fmt.Println(in.Next, "deliver:", in.Deliver, "push:", in.Push, "reply:", in.AutoReply)
	// Output:
	// None + Pre-Approved route: false push: true
	// From deliver: false push: true reply: subscribed
}
