// Package conf is Parley's configuration: the schema of the one TOML file,
// its defaults, the default config embedded in the binary, and validation
// whose errors point at the line to fix.
//
// A file is read with [Load] or [Parse]; a config built in Go (as parleytest
// does) starts from [New] and is checked with [Config.Validate]. Either way,
// every problem is reported at once as [Errors], each one saying what to
// write instead, and unknown keys are errors rather than silently ignored.
//
// Sizes ("256KiB") and durations ("10s") have their own types, [Size] and
// [Duration], so that the rest of the server reads plain numbers.
//
// This package is not for acting on the config: it opens no listeners, reads
// no certificates and creates no directories (server does that), and it
// imports no other Parley package, so any package may import it. It does not
// know XMPP addressing beyond the light checks a config needs (a host name is
// a domain, a room is local@domain); the xmpp package normalizes JIDs.
package conf
