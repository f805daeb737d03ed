package server_test

import (
	"testing"

	"github.com/parley-im/parley/conf"
	_ "github.com/parley-im/parley/parleytest" // the standard host types
	"github.com/parley-im/parley/server"
)

// TestNewRefusesTypesItDoesNotRun: a type the config knows but the server
// does not run (upload, component) is refused by name, with the types the
// server runs.
func TestNewRefusesTypesItDoesNotRun(t *testing.T) {
	tests := []struct{ typ, extra string }{
		{"upload", ""},
		{"component", "secret = \"s\"\n"},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			c, err := conf.Parse("p.toml", []byte("database = \":memory:\"\n[[host]]\nname = \"localhost\"\n"+
				"[[host]]\nname = \"x.localhost\"\ntype = \""+tt.typ+"\"\n"+tt.extra))
			if err != nil {
				t.Fatal(err)
			}
			c.DataDir = t.TempDir()
			s, err := server.New(c)
			if err == nil {
				s.Close()
				t.Fatal("New ran the host")
			}
			want := `server: host x.localhost: type "` + tt.typ + `" is not implemented yet; this version runs "local", "http_component" and "muc" hosts`
			if err.Error() != want {
				t.Errorf("New: %v\nwant %s", err, want)
			}
		})
	}
}
