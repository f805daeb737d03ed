// Package std imports the standard modules of a Parley server, each of
// which registers itself (local.RegisterModule). The binary and the test
// fixture import it; a module of one's own is one more import beside it.
package std

import (
	// The small answers: ping, version, time, uptime, disco#items.
	_ "github.com/parley-im/parley/server/mod/basic"
	// vcard-temp (XEP-0054).
	_ "github.com/parley-im/parley/server/mod/vcard"
)
