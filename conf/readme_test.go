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

// readmeDefault is one key of README.md's configuration table and the
// default the table gives it, as TOML.
type readmeDefault struct {
	table, key, value string // table is "" (top level), "limits", "[[host]]" or "[host.contact]"
}

var readmeCode = regexp.MustCompile("`([^`]*)`")

// readmeDefaults reads the configuration table of README.md: the rows
// between its "| key | default | meaning |" header and the first line that
// is not a row. A row names one key or several ("`[limits] rate`, `burst`",
// the table written before the first only) and as many defaults.
func readmeDefaults(t *testing.T) []readmeDefault {
	t.Helper()
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	start := slices.Index(lines, "| key | default | meaning |")
	if start < 0 {
		t.Fatal("README.md has no configuration table")
	}
	var out []readmeDefault
	for _, line := range lines[start+2:] {
		if !strings.HasPrefix(line, "|") {
			break
		}
		cells := strings.Split(line, "|") // "", key, default, meaning...
		if len(cells) < 4 {
			t.Fatalf("README row %q has no default cell", line)
		}
		keys := readmeCode.FindAllStringSubmatch(cells[1], -1)
		values := splitOutsideCode(cells[2])
		table := ""
		for i, k := range keys {
			key := k[1]
			switch {
			case strings.HasPrefix(key, "[["):
				table, key, _ = strings.Cut(key, "]] ")
				table += "]]"
			case strings.HasPrefix(key, "["):
				var ok bool
				table, key, ok = strings.Cut(strings.TrimPrefix(key, "["), "] ")
				if !ok { // a table alone, like [host.contact]
					table, key = "["+strings.TrimSuffix(table, "]")+"]", ""
				}
			}
			d := readmeDefault{table: table, key: key}
			if i < len(values) {
				if m := readmeCode.FindStringSubmatch(values[i]); m != nil {
					d.value = m[1]
				}
			}
			out = append(out, d)
		}
	}
	return out
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
}

// TestREADMEDefaultsAreTheDefaults checks each default of README.md's
// configuration table against the real one: a config that sets the key to
// the README's value must equal the config that leaves it out. The defaults
// live in several packages (c2s, xmpp, sasl, conf, the host types), and the
// table is the one place a user reads them.
func TestREADMEDefaultsAreTheDefaults(t *testing.T) {
	rows := readmeDefaults(t)
	if len(rows) < 30 {
		t.Fatalf("read %d keys from README.md's configuration table; want its 30 or more", len(rows))
	}
	// The defaults that are not a TOML value, which the test skips; a new
	// one is a mistake in the table, or belongs here.
	notValues := []string{"database", "[[host]] name", "[[host]] post_url", "[[host]] ...",
		"[[host]] sender_queue", "[[host]] sender_queue_bytes", "[host.contact]"}
	checked := 0
	for _, d := range rows {
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
				t.Fatalf("README.md gives %s no default", name)
			}
			checked++
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
					t.Errorf("README.md gives %s the default %s, but setting it changes the config:\n"+
						"set:      %s\nleft out: %s", name, d.value, section(c, d.table), section(unset, d.table))
				}
				return
			}
			t.Fatalf("%s = %s, the README's default, does not parse: %v", name, d.value, err)
		})
	}
	if checked < 25 {
		t.Errorf("checked %d of the README's defaults; want 25 or more", checked)
	}
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
