package conf

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// DefaultTOML is the config Parley runs with when it is given no file: one
// local host, localhost, listening on loopback addresses only. It is also
// the commented starting point for a config of one's own.
//
//go:embed default.toml
var DefaultTOML []byte

// Default returns [DefaultTOML], parsed. Its File is empty. It panics if the
// embedded config is broken, which a test of this package rules out, or if
// its host types (local and http_component) are not registered: import
// server/std.
func Default() *Config {
	c, err := Parse("default.toml", DefaultTOML)
	if err != nil {
		panic("conf: the embedded default.toml is broken:\n" + err.Error())
	}
	c.File = ""
	return c
}

// Load reads the config file at path and parses it with [Parse].
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse reads a config from TOML data: keys it leaves out get their
// defaults, then the whole is checked as [Config.Validate] does. name is the
// file it came from, used for File and in errors.
//
// On error the returned config is nil and the error is [Errors], every
// problem found, each with its line.
func Parse(name string, data []byte) (*Config, error) {
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		return nil, Errors{syntaxError(name, data, err)}
	}
	ch := &checker{
		file:    name,
		x:       indexLines(data),
		defined: map[string]bool{},
	}
	c := New()
	c.File = name
	ch.table("", raw, reflect.ValueOf(c).Elem())
	ch.config(c)
	if len(ch.errs) > 0 {
		ch.errs.sort()
		return nil, ch.errs
	}
	return c, nil
}

// syntaxError turns an error of the TOML parser into an [Error] with the
// parser's line and a plainer message.
func syntaxError(name string, data []byte, err error) *Error {
	var pe toml.ParseError
	if !errors.As(err, &pe) {
		return &Error{File: name, Msg: strings.TrimPrefix(err.Error(), "toml: ")}
	}
	e := &Error{File: name, Line: pe.Position.Line, Key: pe.LastKey, Msg: pe.Message}
	if e.Line < 1 {
		// Some errors at the end of the input come without a position:
		// the end of the input is where they are.
		e.Line = max(1, strings.Count(strings.TrimRight(string(data), "\n"), "\n")+1)
	}
	// The most common mistake, a string without quotes, gets different
	// messages from the parser depending on its first letters, so it is
	// recognized from the line itself.
	var line string
	if lines := strings.Split(string(data), "\n"); e.Line >= 1 && e.Line <= len(lines) {
		line = lines[e.Line-1]
	}
	if m := reDefined.FindStringSubmatch(pe.Message); m != nil {
		e.Key = m[1]
		e.Msg = "set more than once; keep one of them"
	} else if m := reBareLine.FindStringSubmatch(line); m != nil && !slices.Contains(tomlWords, m[2]) {
		if !strings.HasSuffix(e.Key, m[1]) {
			e.Key = m[1]
		}
		e.Msg = fmt.Sprintf("%s is not a value; put strings in double quotes (%q), "+
			"and write numbers, true, false, [lists] and {tables} as they are", m[2], m[2])
	} else {
		e.Msg = strings.TrimSuffix(pe.Message, ".")
		e.Msg = "TOML syntax: " + strings.ToLower(e.Msg[:1]) + e.Msg[1:]
	}
	return e
}

var (
	tomlWords  = []string{"true", "false", "inf", "nan"}
	reDefined  = regexp.MustCompile(`^Key '(.*)' has already been defined\.?$`)
	reBareLine = regexp.MustCompile(`^\s*([A-Za-z0-9_.-]+)\s*=\s*([A-Za-z][^"'\[\]{}#,=]*?)\s*(#.*)?\r?$`)
	reIndex    = regexp.MustCompile(`\[\d+\]`)
)

// checker collects the problems of one config, from a file (x is set) or
// built in Go (x is nil).
type checker struct {
	file    string
	x       *lineIndex      // nil for a config built in Go
	defined map[string]bool // paths of the keys the file sets
	errs    Errors
	failed  map[string]bool // paths with a problem already reported
}

// fromFile reports whether the config was read from a file.
func (ch *checker) fromFile() bool { return ch.x != nil }

// isSet reports whether the file sets the key at path.
func (ch *checker) isSet(path string) bool { return ch.defined[path] }

// errorf reports a problem with the key at path.
func (ch *checker) errorf(path, format string, args ...any) {
	ch.report(path, path, fmt.Sprintf(format, args...))
}

// report reports a problem found at path, shown as key. A path gets one
// report only: a value that could not be decoded is not also checked.
func (ch *checker) report(path, key, msg string) {
	if ch.failed[path] {
		return
	}
	if ch.failed == nil {
		ch.failed = map[string]bool{}
	}
	ch.failed[path] = true
	e := &Error{File: ch.file, Key: key, Msg: msg}
	if ch.x != nil {
		e.Line = ch.x.line(path)
		if e.Line == 0 {
			e.Line = max(ch.x.count, 1)
		}
	}
	ch.errs = append(ch.errs, e)
}

var (
	sizeType     = reflect.TypeFor[Size]()
	durationType = reflect.TypeFor[Duration]()
)

// table decodes the TOML table m at path into the struct rv, reporting
// unknown keys and values of the wrong type.
func (ch *checker) table(path string, m map[string]any, rv reflect.Value) {
	if rv.Type() == hostReflectType {
		ch.hostTable(path, m, rv)
		return
	}
	ch.fields(path, m, rv)
}

// fields decodes the keys of m that are fields of the struct rv, reporting
// the others as unknown.
func (ch *checker) fields(path string, m map[string]any, rv reflect.Value) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		p := joinPath(path, k)
		f, ok := fieldByKey(rv, k)
		if !ok {
			if msg, ok := removedKeys[p]; ok {
				ch.errorf(p, "%s", msg)
				continue
			}
			ch.errorf(p, "%s", unknownKey(path, rv.Type(), k))
			continue
		}
		ch.defined[p] = true
		ch.value(p, m[k], f)
	}
}

// fieldByKey finds the field of struct rv tagged with key.
func fieldByKey(rv reflect.Value, key string) (reflect.Value, bool) {
	t := rv.Type()
	for i := range t.NumField() {
		if k := tomlKey(t.Field(i)); k == key && k != "-" {
			return rv.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// hostTable decodes a [[host]] table: the keys every host has into the
// [Host] rv, the rest into new options of the host's type, in Options.
// A key of another type is reported with the types it belongs to. When
// the type is unknown (validation reports it), only keys that no type has
// are reported.
func (ch *checker) hostTable(path string, m map[string]any, rv reflect.Value) {
	own := map[string]any{}
	var rest []string
	for k, v := range m {
		if _, ok := fieldByKey(rv, k); ok {
			own[k] = v
		} else {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	ch.fields(path, own, rv)
	h := rv.Addr().Interface().(*Host)
	typ := h.Type
	if typ == "" && !ch.isSet(path+".type") {
		if d := defaultHostType(); d != nil {
			typ = d.name
		}
	}
	t := lookupHostType(typ)
	if t == nil {
		known := []reflect.Type{hostReflectType}
		for _, o := range registeredHostTypes() {
			known = append(known, o.opts)
		}
		for _, k := range rest {
			if len(typesWithKey(k)) == 0 {
				ch.errorf(joinPath(path, k), "%s", unknownKeyIn(path, known, k))
			}
		}
		return
	}
	opts := reflect.New(t.opts)
	h.Options = opts.Interface()
	for _, k := range rest {
		p := joinPath(path, k)
		f, ok := fieldByKey(opts.Elem(), k)
		switch {
		case ok:
			ch.defined[p] = true
			ch.value(p, m[k], f)
		case len(typesWithKey(k)) > 0:
			ch.errorf(p, "%s", onlyFor(k, typ))
		default:
			ch.errorf(p, "%s", unknownKeyIn(path, []reflect.Type{hostReflectType, t.opts}, k))
		}
	}
}

func tomlKey(f reflect.StructField) string {
	return f.Tag.Get("toml")
}

// value decodes one TOML value v at path into rv.
func (ch *checker) value(path string, v any, rv reflect.Value) {
	switch rv.Type() {
	case sizeType:
		switch v := v.(type) {
		case int64:
			if v < 0 {
				ch.errorf(path, "%d is negative; %s", v, sizeForms)
				return
			}
			rv.SetInt(v)
		case string:
			s, err := parseSize(v)
			if err != nil {
				ch.errorf(path, "%v", err)
				return
			}
			rv.SetInt(int64(s))
		default:
			ch.errorf(path, "want a size, not %s; %s", describe(v), sizeForms)
		}
		return
	case durationType:
		switch v := v.(type) {
		case int64:
			if v != 0 {
				ch.errorf(path, "%d has no unit; %s", v, durationForms)
				return
			}
			rv.Set(reflect.ValueOf(Duration{}))
		case string:
			d, err := parseDuration(v)
			if err != nil {
				ch.errorf(path, "%v", err)
				return
			}
			rv.Set(reflect.ValueOf(Duration{d}))
		default:
			ch.errorf(path, "want a duration, not %s; %s", describe(v), durationForms)
		}
		return
	}

	switch rv.Kind() {
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			ch.errorf(path, "want a string in double quotes, not %s", describeAt(path, v))
			return
		}
		rv.SetString(s)
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			ch.errorf(path, "want true or false, not %s", describe(v))
			return
		}
		rv.SetBool(b)
	case reflect.Int:
		n, ok := v.(int64)
		if !ok {
			ch.errorf(path, "want a whole number, not %s", describe(v))
			return
		}
		if rv.OverflowInt(n) {
			ch.errorf(path, "%d is too large", n)
			return
		}
		rv.SetInt(n)
	case reflect.Slice:
		ch.slice(path, v, rv)
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			ch.errorf(path, `want a table of strings, like { Name = "value" }, not %s`, describe(v))
			return
		}
		out := reflect.MakeMapWithSize(rv.Type(), len(m))
		for k, e := range m {
			s, ok := e.(string)
			if !ok {
				ch.errorf(joinPath(path, k), "want a string in double quotes, not %s", describe(e))
				continue
			}
			out.SetMapIndex(reflect.ValueOf(k), reflect.ValueOf(s))
		}
		rv.Set(out)
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			ch.errorf(path, "want a table, not %s; write [%s] on a line of its own, with its keys below it",
				describe(v), path)
			return
		}
		ch.table(path, m, rv)
	default:
		panic("conf: no decoding for " + rv.Type().String())
	}
}

// slice decodes a list of strings or an array of tables.
func (ch *checker) slice(path string, v any, rv reflect.Value) {
	elem := rv.Type().Elem()
	var list []any
	switch v := v.(type) {
	case []any:
		list = v
	case []map[string]any:
		for _, m := range v {
			list = append(list, m)
		}
	default:
		switch {
		case elem.Kind() == reflect.Struct:
			ch.errorf(path, "want [[%s]] tables, with two brackets, one for each; not %s", path, describe(v))
		case isString(v):
			ch.errorf(path, "want a list of strings; write [%q]", v)
		default:
			ch.errorf(path, `want a list of strings, like ["a", "b"], not %s`, describe(v))
		}
		return
	}
	out := reflect.MakeSlice(rv.Type(), len(list), len(list))
	for i, e := range list {
		p := indexPath(path, i)
		if elem.Kind() == reflect.Struct {
			m, ok := e.(map[string]any)
			if !ok {
				ch.errorf(p, "want a table, not %s", describe(e))
				continue
			}
			ch.table(p, m, out.Index(i))
			continue
		}
		ch.value(p, e, out.Index(i))
	}
	rv.Set(out)
}

func isString(v any) bool {
	_, ok := v.(string)
	return ok
}

// describe names a TOML value for an error message.
// describeAt is describe for the value of the key at path, without the
// value itself when the key holds a secret: an error message ends up in
// logs and bug reports, and a secret mistyped as a number is still the
// secret.
func describeAt(path string, v any) string {
	key := path[strings.LastIndex(path, ".")+1:]
	for _, w := range []string{"secret", "password", "token", "key"} {
		if strings.Contains(key, w) {
			switch v.(type) {
			case int64, float64:
				return "a number"
			case bool:
				return "true or false"
			}
		}
	}
	return describe(v)
}

func describe(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("the string %q", v)
	case int64, float64:
		return fmt.Sprintf("the number %v", v)
	case bool:
		return fmt.Sprint(v)
	case []any, []map[string]any:
		return "a list"
	case map[string]any:
		return "a table"
	case time.Time:
		return "a date"
	default:
		return fmt.Sprintf("%v", v)
	}
}

// removedKeys are keys of earlier versions, with what to write instead.
var removedKeys = map[string]string{
	"limits.login_failures_per_ip": "is no longer used: failed logins no longer lock an address out " +
		"(one failing client locked out everyone behind its NAT); they slow the guesser down instead. " +
		"Remove the line; the new keys are login_backoff_after, login_spray_accounts, login_account_failures, " +
		"login_backoff_max and login_window, and registrations_per_ip for registrations",
}

// unknownKey explains an unknown key in the table at path, of type t: the
// keys that table has, the closest of them, and where else the key is known.
func unknownKey(path string, t reflect.Type, key string) string {
	return unknownKeyIn(path, []reflect.Type{t}, key)
}

// unknownKeyIn is [unknownKey] for a table whose keys are those of the
// structs types: a host's own and its type's.
func unknownKeyIn(path string, types []reflect.Type, key string) string {
	var known []string
	for _, t := range types {
		for _, k := range appendKeys(nil, t) {
			if !slices.Contains(known, k) {
				known = append(known, k)
			}
		}
	}
	var msg string
	if path == "" {
		msg = "unknown key; known top-level keys are " + strings.Join(known, ", ")
	} else {
		msg = fmt.Sprintf("unknown key; known keys of %s are %s", tableName(path), strings.Join(known, ", "))
	}
	if homes := keyHomes()[key]; len(homes) > 0 {
		return msg + "; " + key + " belongs " + orList(homes)
	}
	if best := closest(key, known); best != "" {
		return msg + "; did you mean " + best + "?"
	}
	return msg
}

// appendKeys appends the keys of the struct t as they are written in a
// file: key, [table], [[array]].
func appendKeys(known []string, t reflect.Type) []string {
	for i := range t.NumField() {
		f := t.Field(i)
		k := tomlKey(f)
		switch {
		case k == "" || k == "-":
			continue
		case f.Type.Kind() == reflect.Struct && f.Type != durationType:
			k = "[" + k + "]"
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			k = "[[" + k + "]]"
		}
		known = append(known, k)
	}
	return known
}

// tableName is how the table at path is written in a file: [c2s],
// [[host]], [host.headers].
func tableName(path string) string {
	if path == "" {
		return "the top level"
	}
	name := reIndex.ReplaceAllString(path, "")
	if strings.HasSuffix(path, "]") {
		return "[[" + name + "]]"
	}
	return "[" + name + "]"
}

// keyHomes maps every key of the schema, the registered host types'
// included, to the tables it belongs in.
func keyHomes() map[string][]string {
	homes := map[string][]string{}
	var walk func(path string, t reflect.Type)
	walk = func(path string, t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			k := tomlKey(f)
			if k == "" || k == "-" {
				continue
			}
			where := "in " + tableName(path)
			if path == "" {
				where = "at the top, above the first [table]"
			}
			if !slices.Contains(homes[k], where) {
				homes[k] = append(homes[k], where)
			}
			switch {
			case f.Type.Kind() == reflect.Struct && f.Type != durationType:
				walk(joinPath(path, k), f.Type)
			case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
				walk(indexPath(joinPath(path, k), 0), f.Type.Elem())
			}
		}
		if t == hostReflectType {
			for _, o := range registeredHostTypes() {
				walk(path, o.opts)
			}
		}
	}
	walk("", reflect.TypeFor[Config]())
	return homes
}

// closest returns the known key nearest to key, if it is near enough to be
// a likely typo, or "".
func closest(key string, known []string) string {
	norm := func(s string) string {
		return strings.ReplaceAll(strings.ToLower(strings.Trim(s, "[]")), "-", "_")
	}
	best, bestDist := "", 3
	if len(key) < 5 {
		bestDist = 2
	}
	for _, k := range known {
		if d := distance(norm(key), norm(k)); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// orList joins words as "a", "a or b", "a, b or c".
func orList(words []string) string {
	return joinList(words, "or")
}

func joinList(words []string, conj string) string {
	switch len(words) {
	case 0:
		return ""
	case 1:
		return words[0]
	}
	return strings.Join(words[:len(words)-1], ", ") + " " + conj + " " + words[len(words)-1]
}
