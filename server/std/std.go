// Package std is the one list of what a standard Parley binary runs:
// its web endpoints, federation, its host types and the modules of its
// local hosts. Import it for its side effects, as cmd/parley and
// parleytest do:
//
//	import _ "github.com/parley-im/parley/server/std"
//
// Each host type registers itself from its own package
// (conf.RegisterHostType for its options, server.RegisterHostType for its
// hosts), and each module too (local.RegisterModule), as do the web
// endpoints (server.RegisterRoutes) and federation
// (server.RegisterService); this list is the one place that names them.
// A type or module of one's own is one more import beside it.
package std

import (
	// The web endpoints: /xmpp-websocket, host-meta (XEP-0156), /chat.
	_ "github.com/parley-im/parley/server/web"
	// Federation: package s2s on [s2s] listen, when it is set.
	_ "github.com/parley-im/parley/server/federation"

	// Host types.
	// local: a domain with users, their rosters, presence and storage.
	_ "github.com/parley-im/parley/server/local"
	// http_component: a domain of bots behind a webhook.
	_ "github.com/parley-im/parley/components/webhook"
	// component: an external component (XEP-0114) on the component port.
	_ "github.com/parley-im/parley/components/external"
	// upload: HTTP file upload (XEP-0363) on the HTTP listener.
	_ "github.com/parley-im/parley/components/upload"
	// muc: multi-user chat (XEP-0045); registered by init below.
	"github.com/parley-im/parley/components/muc"

	// Modules of local hosts.
	// The small answers: ping, version, time, uptime, disco#items.
	_ "github.com/parley-im/parley/server/mod/basic"
	// Password changes and account removal (XEP-0077 §3.2, §3.3).
	_ "github.com/parley-im/parley/server/mod/register"
	// External services (XEP-0215): STUN and TURN, with TURN credentials.
	_ "github.com/parley-im/parley/server/mod/extdisco"
	// Private XML storage (XEP-0049).
	_ "github.com/parley-im/parley/server/mod/private"
	// Blocking Command (XEP-0191).
	_ "github.com/parley-im/parley/server/mod/blocking"
	// Last Activity (XEP-0012): the server's uptime, users' last logout.
	_ "github.com/parley-im/parley/server/mod/last"
	// Client State Indication (XEP-0352).
	_ "github.com/parley-im/parley/server/mod/csi"
	// Message Carbons (XEP-0280).
	_ "github.com/parley-im/parley/server/mod/carbons"
	// vcard-temp (XEP-0054).
	_ "github.com/parley-im/parley/server/mod/vcard"
	// The message archive (XEP-0313) with stanza-ids (XEP-0359).
	_ "github.com/parley-im/parley/server/mod/mam"
	// Personal Eventing Protocol (XEP-0163 on XEP-0060).
	_ "github.com/parley-im/parley/server/mod/pep"
	// Push Notifications (XEP-0357).
	_ "github.com/parley-im/parley/server/mod/push"
)

// muc registers here rather than in its own init, so that it comes after
// the types above whatever the order of package initialisation: they
// register in their inits, which run before this package's, since this
// package imports them.
func init() { muc.Register() }
