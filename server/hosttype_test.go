package server_test

import (
	"testing"

	"github.com/parley-im/parley/conf"
	_ "github.com/parley-im/parley/parleytest" // the standard host types
	"github.com/parley-im/parley/server"
)

// TestNewRefusesTypesItDoesNotRun: a type the config knows but the server
// does not run (one registered with conf alone, as a type's options may be
// before its server side is built) is refused by name, with the types the
// server runs.
func TestNewRefusesTypesItDoesNotRun(t *testing.T) {
	conf.RegisterHostType("planned-test", conf.HostType[struct{}]{})
	tests := []struct{ typ, extra string }{
		{"planned-test", ""},
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
			want := `server: host x.localhost: type "` + tt.typ + `" is not implemented yet; this version runs "local", "component", "http_component", "upload" and "muc" hosts`
			if err.Error() != want {
				t.Errorf("New: %v\nwant %s", err, want)
			}
		})
	}
}
