package conf

import (
	"fmt"
	"reflect"
	"slices"
	"sync"
)

// A host type (local, http_component, ...) is a plugin: its package
// registers it with [RegisterHostType] from an init function, and the
// binary imports the packages of the types it runs. Package conf parses
// the keys every [[host]] has (name, type, tls_cert, tls_key) and hands the
// rest of the table to the host's type, which owns its option struct, its
// defaults and its checks. conf names no host type.

// HostType is what package conf needs of a host type whose options are a
// T, a struct whose fields carry toml tags like [Config]'s: string, bool,
// int, [Size], [Duration], lists of strings, tables of strings and
// sub-tables (structs) are decoded, and reported with their file and line,
// as the rest of the file is.
type HostType[T any] struct {
	// Check validates the options of one host and fills in the defaults
	// of what they leave out (opts is never nil). It reports every
	// problem to c. It must be safe to run again on options it has
	// checked, and change nothing then. Nil means the type has no checks.
	Check func(c *HostCheck, opts *T)
	// Default makes this the type of a host that names none. At most one
	// type may be the default.
	Default bool
}

// hostType is a registered type with its options' type erased.
type hostType struct {
	name   string
	opts   reflect.Type // the struct T
	check  func(c *HostCheck, opts any)
	isDflt bool
	keys   []string // the toml keys of opts, in field order
}

var (
	hostTypesMu sync.RWMutex
	hostTypes   []*hostType // in the order they were registered
)

// RegisterHostType makes the host type name known to [Parse] and
// [Config.Validate]. A type's package calls it from an init function. It
// panics when name is empty or taken, when T is not a struct, or when a
// second type claims to be the default: these are mistakes in the program,
// not in a config.
func RegisterHostType[T any](name string, t HostType[T]) {
	rt := reflect.TypeFor[T]()
	if name == "" {
		panic("conf: RegisterHostType with an empty name")
	}
	if rt.Kind() != reflect.Struct {
		panic("conf: host type " + name + ": options must be a struct, not " + rt.String())
	}
	ht := &hostType{name: name, opts: rt, isDflt: t.Default}
	if t.Check != nil {
		ht.check = func(c *HostCheck, opts any) { t.Check(c, opts.(*T)) }
	}
	for i := range rt.NumField() {
		f := rt.Field(i)
		k := tomlKey(f)
		if k == "" || k == "-" {
			continue
		}
		if _, common := fieldByKey(reflect.New(hostReflectType).Elem(), k); common {
			panic(fmt.Sprintf("conf: host type %s: key %s is one every host has", name, k))
		}
		ht.keys = append(ht.keys, k)
	}
	hostTypesMu.Lock()
	defer hostTypesMu.Unlock()
	for _, o := range hostTypes {
		if o.name == name {
			panic("conf: host type " + name + " is registered twice")
		}
		if o.isDflt && t.Default {
			panic("conf: host types " + o.name + " and " + name + " both claim to be the default")
		}
	}
	hostTypes = append(hostTypes, ht)
}

// HostTypes returns the names of the registered host types: the default
// one first, then the others in the order they were registered.
func HostTypes() []string {
	hostTypesMu.RLock()
	defer hostTypesMu.RUnlock()
	// The default type first, then the others as registered: the order
	// of package initialisation (by import path) must not decide what
	// an error message suggests first.
	names := make([]string, 0, len(hostTypes))
	for _, t := range hostTypes {
		if t.isDflt {
			names = append(names, t.name)
		}
	}
	for _, t := range hostTypes {
		if !t.isDflt {
			names = append(names, t.name)
		}
	}
	return names
}

// NewHostOptions returns new, unchecked options of the host type typ (a
// pointer to its zero options struct), or nil when typ is not registered.
func NewHostOptions(typ string) any {
	t := lookupHostType(typ)
	if t == nil {
		return nil
	}
	return reflect.New(t.opts).Interface()
}

func lookupHostType(name string) *hostType {
	hostTypesMu.RLock()
	defer hostTypesMu.RUnlock()
	for _, t := range hostTypes {
		if t.name == name {
			return t
		}
	}
	return nil
}

// defaultHostType returns the type of a host that names none, or nil.
func defaultHostType() *hostType {
	hostTypesMu.RLock()
	defer hostTypesMu.RUnlock()
	for _, t := range hostTypes {
		if t.isDflt {
			return t
		}
	}
	return nil
}

// registeredHostTypes returns the registered types.
func registeredHostTypes() []*hostType {
	hostTypesMu.RLock()
	defer hostTypesMu.RUnlock()
	return slices.Clone(hostTypes)
}

// typesWithKey returns the names of the types whose options have key.
func typesWithKey(key string) []string {
	var out []string
	for _, t := range registeredHostTypes() {
		if slices.Contains(t.keys, key) {
			out = append(out, t.name)
		}
	}
	return out
}

// ownerOf returns the type whose options are of the type of opts, a
// pointer to an options struct, or nil.
func ownerOf(opts any) *hostType {
	rt := reflect.TypeOf(opts)
	if rt == nil || rt.Kind() != reflect.Pointer {
		return nil
	}
	for _, t := range registeredHostTypes() {
		if t.opts == rt.Elem() {
			return t
		}
	}
	return nil
}

var hostReflectType = reflect.TypeFor[Host]()

// HostCheck is a host type's view of the config checker, for one host: it
// reports problems with the host's own keys (with the file and line, when
// the config came from a file) and tells which keys the file sets.
// Keys are relative to the host's table: "post_url", or for elements
// and sub-keys, paths made with [IndexKey] and [JoinKey].
type HostCheck struct {
	ch    *checker
	path  string // "host[1]"
	label string // "host[1] (bots.example.com)"
	// Host is the host being checked: its name is lower-cased and its
	// type set.
	Host *Host
}

// Errorf reports a problem with the value of key.
func (c *HostCheck) Errorf(key, format string, args ...any) {
	c.ch.errorf(c.key(key), format, args...)
}

// Missing reports that key, which the type requires, is missing; the
// problem points at the host, since the key has no line.
func (c *HostCheck) Missing(key, msg string) {
	c.ch.report(c.key(key), c.label, msg)
}

// IsSet reports whether the config file sets key for this host; always
// false for a config built in Go.
func (c *HostCheck) IsSet(key string) bool { return c.ch.isSet(c.key(key)) }

// key is the full path of a key of the host.
func (c *HostCheck) key(k string) string { return c.path + "." + k }

// FromFile reports whether the config was read from a file, where a key
// left out gets its default even when its zero value is a valid setting.
func (c *HostCheck) FromFile() bool { return c.ch.fromFile() }

// AtLeast fills in def when *v is zero and the file does not set key, and
// otherwise reports a *v below least, saying why.
func AtLeast[T ~int | ~int64](c *HostCheck, key string, v *T, def, least T, why string) {
	atLeast(c.ch, c.key(key), v, def, least, why)
}

// JoinKey appends key to a key path, quoting it when it is not a bare
// TOML key: JoinKey("headers", "X Team") is `headers."X Team"`.
func JoinKey(path, key string) string { return joinPath(path, key) }

// IndexKey is the key of element i of the list at path: "rooms[1]".
func IndexKey(path string, i int) string { return indexPath(path, i) }

// IsBareJID reports whether s is local@domain, with a localpart free of
// the characters RFC 7622 forbids there and no resource.
func IsBareJID(s string) bool { return isBareJID(s) }
