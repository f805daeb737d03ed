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
// A [[host]] table has the keys every host has (name, type, tls_cert,
// tls_key) and those of its type. Host types are plugins: each registers
// its options and their check with [RegisterHostType] from its own
// package, and this package names none of them. A program must import the
// types it runs (server/std) before it parses a config; without
// them every host is of an unknown type.
//
// This package is not for acting on the config: it opens no listeners, reads
// no certificates and creates no directories (server does that). It takes
// the defaults of the packages that use them from those packages (c2s,
// c2s/sasl, xmpp), so those cannot import it; everything above them can. It does not
// know XMPP addressing beyond the light checks a config needs (a host name is
// a domain, a JID is local@domain: [IsBareJID]); the xmpp package normalizes JIDs.
package conf
