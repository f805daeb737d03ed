// Package std is the list of the host types a Parley binary runs: import
// it for its side effects, as cmd/parley and parleytest do,
//
//	import _ "github.com/parley-im/parley/server/hosttypes/std"
//
// Each type registers itself from its own package (conf.RegisterHostType
// for its options, server.RegisterHostType for its hosts); this list is
// the one place that names them. The local type is package server's own
// (server/localtype.go) and comes with it.
package std

import (
	// local: a domain with users, their rosters, presence and storage.
	_ "github.com/parley-im/parley/server/local"
	// http_component: a domain of bots behind a webhook.
	_ "github.com/parley-im/parley/components/webhook"
	"github.com/parley-im/parley/server/hosttypes/planned"
)

// muc, upload and component: known to the config, not run yet. They come
// after the types above, which init registers before this package's init
// runs, since this package imports them.
func init() { planned.Register() }
