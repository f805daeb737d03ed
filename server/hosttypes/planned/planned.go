// Package planned registers the options of the host types that are
// planned but not built yet, muc, so that a config
// naming them is checked (and `parley check` accepts it) as before;
// server.New refuses to run them, listing the types it runs. Each moves
// to its own package when it is built. Register registers them; package
// std calls it.
package planned

import "github.com/parley-im/parley/conf"

// Names of the planned host types.
const (
	// MUC is a multi-user chat service (XEP-0045).
	MUC = "muc"
)

// MUCOptions are the options of a muc host: none yet.
type MUCOptions struct{}

// Register registers the planned types. Package std calls it after the
// built types are registered (package server's local first, then
// http_component), so that the types are listed in that order whatever
// order packages are initialized in.
func Register() {
	conf.RegisterHostType(MUC, conf.HostType[MUCOptions]{})
}
