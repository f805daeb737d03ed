package conf_test

import (
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/parley-im/parley/conf"
)

// docDefault is one key of a table of defaults in a document and the
// default the table gives it, as TOML ("" when it is not a TOML value).
type docDefault struct {
	table, key, value string // table is "" (top level), "limits", "[[host]]" or "[host.contact]"
}

var docCode = regexp.MustCompile("`([^`]*)`")

// docDefaults reads the tables of defaults of the document at path: the
// rows after each header line equal to header, up to the first line that is
// not a row. A row names one key or several ("`[limits] rate`, `burst`",
// the table written before the first only) and as many defaults, separated
// by commas; value turns one of them into TOML. Rows whose first cell
// names no key (like "whitespace keepalives") are passed over.
func docDefaults(t *testing.T, path, header string, value func(string) string) []docDefault {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	var out []docDefault
	for start, l := range lines {
		if l != header {
			continue
		}
		for _, line := range lines[start+2:] {
			if !strings.HasPrefix(line, "|") {
				break
			}
			cells := strings.Split(line, "|") // "", key, default, meaning...
			if len(cells) < 4 {
				t.Fatalf("%s: row %q has no default cell", path, line)
			}
			keys := docCode.FindAllStringSubmatch(cells[1], -1)
			if len(keys) == 0 || strings.HasPrefix(keys[0][1], "/") {
				continue
			}
			values := splitOutsideCode(cells[2])
			table := ""
			for i, k := range keys {
				key := k[1]
				switch {
				case strings.HasPrefix(key, "[["):
					var ok bool
					table, key, ok = strings.Cut(key, "]] ")
					if ok {
						table += "]]"
					} else { // an array of tables alone, like [[host.external_service]]
						key = ""
					}
				case strings.HasPrefix(key, "["):
					var ok bool
					table, key, ok = strings.Cut(strings.TrimPrefix(key, "["), "] ")
					if !ok { // a table alone, like [host.contact]
						table, key = "["+strings.TrimSuffix(table, "]")+"]", ""
					}
				}
				d := docDefault{table: table, key: key}
				if i < len(values) {
					d.value = value(values[i])
				}
				out = append(out, d)
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s has no table of defaults under %q", path, header)
	}
	return out
}

// readmeValue is a default of README.md: TOML, in `code`.
func readmeValue(cell string) string {
	if m := docCode.FindStringSubmatch(cell); m != nil {
		return m[1]
	}
	return ""
}

var securityQuantity = regexp.MustCompile(`^([0-9]+) (KiB|MiB|GiB|s|m)(in)?$`)

// securityValue is a default of SECURITY.md, written for people: "256
// KiB", "1 MiB/s", "30 s", "15 min", "1000 stanzas", "5 a minute", "off".
func securityValue(cell string) string {
	v := cell
	for _, unit := range []string{"/s", " a minute", " stanzas", " accounts"} {
		v = strings.TrimSuffix(v, unit)
	}
	switch {
	case len(v) > 2 && v[0] == '`' && v[len(v)-1] == '`':
		// A TOML value as it is written: `"local"`, `["127.0.0.1:5347"]`.
		return v[1 : len(v)-1]
	case v == "off":
		return "false"
	case securityQuantity.MatchString(v):
		return `"` + securityQuantity.ReplaceAllString(v, "$1$2") + `"`
	case v != "" && strings.Trim(v, "0123456789") == "":
		return v
	}
	return ""
}

// splitOutsideCode splits a table cell at the commas outside `code`: the
// defaults of a row that names several keys.
func splitOutsideCode(cell string) []string {
	var parts []string
	code, from := false, 0
	for i, r := range cell {
		switch {
		case r == '`':
			code = !code
		case r == ',' && !code:
			parts = append(parts, strings.TrimSpace(cell[from:i]))
			from = i + 1
		}
	}
	return append(parts, strings.TrimSpace(cell[from:]))
}

// hostBases are the [[host]] tables a host key of the README is tried in:
// the first in which the key is known is the one it is checked with.
var hostBases = []string{
	"[[host]]\nname = \"example.com\"\n",
	"[[host]]\nname = \"bots.example.com\"\ntype = \"http_component\"\npost_url = \"https://h.example/x\"\n",
	"[[host]]\nname = \"upload.example.com\"\ntype = \"upload\"\n",
	"[[host]]\nname = \"rooms.example.com\"\ntype = \"muc\"\n",
}

// TestDocumentedDefaultsAreTheDefaults checks each default of README.md's
// configuration table, and of SECURITY.md's tables of limits, against the
// real one: a config that sets the key to the document's value must equal
// the config that leaves it out. The defaults live in several packages
// (c2s, xmpp, sasl, conf, the host types), and these tables are where users
// read them.
func TestDocumentedDefaultsAreTheDefaults(t *testing.T) {
	docs := []struct {
		path, header string
		value        func(string) string
		least        int // rows checked, so that a broken reader fails
	}{
		{"../README.md", "| key | default | meaning |", readmeValue, 35},
		{"../SECURITY.md", "| limit | default | what happens past it | metric |", securityValue, 18},
	}
	// The defaults that are not a TOML value, which the test skips; a new
	// one is a mistake in a table, or belongs here.
	notValues := []string{"database", "[[host]] name", "[[host]] post_url", "[[host]] ...",
		"[[host]] sender_queue", "[[host]] sender_queue_bytes", "[host.contact]",
		"[[host.external_service]]", "[[host]] public_url", "[[host]] secret", "[[host]] allowed_hosts", "[[host]] nick"}
	for _, doc := range docs {
		t.Run(strings.TrimPrefix(doc.path, "../"), func(t *testing.T) {
			checked := 0
			for _, d := range docDefaults(t, doc.path, doc.header, doc.value) {
				checked++
				checkDefault(t, d, notValues)
			}
			if checked < doc.least {
				t.Errorf("read %d defaults from %s; want %d or more", checked, doc.path, doc.least)
			}
		})
	}
}

// checkDefault checks one documented default, in a subtest of its own.
func checkDefault(t *testing.T, d docDefault, notValues []string) {
	var name string
	switch {
	case d.key == "":
		name = d.table
	case d.table == "":
		name = d.key
	case d.table == "[[host]]":
		name = d.table + " " + d.key
	default:
		name = d.table + "." + d.key
	}
	t.Run(name, func(t *testing.T) {
		if slices.Contains(notValues, name) {
			t.Skipf("the default %q is not a TOML value", d.value)
		}
		if d.value == "" {
			t.Fatalf("the document gives %s no default", name)
		}
		set := d.key + " = " + d.value + "\n"
		bases := hostBases[:1]
		if d.table == "[[host]]" {
			bases = hostBases
		}
		var err error
		for _, base := range bases {
			src := base
			switch d.table {
			case "":
				src = set + base
			case "[[host]]":
				src = base + set
			default:
				src = base + "[" + d.table + "]\n" + set
			}
			var c *conf.Config
			c, err = conf.Parse("parley.toml", []byte(src))
			if err != nil {
				continue
			}
			unset, err := conf.Parse("parley.toml", []byte(base))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(emptyToNil(c), emptyToNil(unset)) {
				t.Errorf("the document gives %s the default %s, but setting it changes the config:\n"+
					"set:      %s\nleft out: %s", name, d.value, section(c, d.table), section(unset, d.table))
			}
			return
		}
		t.Fatalf("%s = %s, the documented default, does not parse: %v", name, d.value, err)
	})
}

// section prints the part of c that holds the keys of table.
func section(c *conf.Config, table string) string {
	switch table {
	case "c2s":
		return fmt.Sprintf("%+v", c.C2S)
	case "limits":
		return fmt.Sprintf("%+v", c.Limits)
	case "auth":
		return fmt.Sprintf("%+v", c.Auth)
	case "http":
		return fmt.Sprintf("%+v", c.HTTP)
	case "[[host]]":
		return fmt.Sprintf("type %q, options %+v", c.Hosts[0].Type, c.Hosts[0].Options)
	}
	return fmt.Sprintf("%+v", *c)
}

// emptyToNil returns a copy of c, made by following its pointers, in which
// empty slices and maps are nil: a key set to [] equals one left out.
func emptyToNil(c *conf.Config) any {
	var walk func(v reflect.Value) reflect.Value
	walk = func(v reflect.Value) reflect.Value {
		switch v.Kind() {
		case reflect.Pointer:
			if v.IsNil() {
				return v
			}
			p := reflect.New(v.Type().Elem())
			p.Elem().Set(walk(v.Elem()))
			return p
		case reflect.Interface:
			if v.IsNil() {
				return v
			}
			out := reflect.New(v.Type()).Elem()
			out.Set(walk(v.Elem()))
			return out
		case reflect.Struct:
			out := reflect.New(v.Type()).Elem()
			out.Set(v)
			for i := range v.NumField() {
				if out.Field(i).CanSet() {
					out.Field(i).Set(walk(v.Field(i)))
				}
			}
			return out
		case reflect.Slice, reflect.Map:
			if v.Len() == 0 {
				return reflect.Zero(v.Type())
			}
			if v.Kind() == reflect.Slice {
				out := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
				for i := range v.Len() {
					out.Index(i).Set(walk(v.Index(i)))
				}
				return out
			}
		}
		return v
	}
	return walk(reflect.ValueOf(c)).Interface()
}
