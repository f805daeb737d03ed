package server_test

import (
	"net/http"
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

// TestRegisterRoutesRefusesMistakes: a route set with no name or no
// routes, or under a name taken (the web endpoints', which the standard
// binary registers), is a mistake in the program and panics at start,
// before a second set could shadow the first's routes.
func TestRegisterRoutesRefusesMistakes(t *testing.T) {
	routes := func(*http.ServeMux, *server.HTTPAPI) {}
	tests := []struct {
		name, setName string
		routes        func(*http.ServeMux, *server.HTTPAPI)
		want          string
	}{
		{"no_name", "", routes, "server: RegisterRoutes needs a name and routes"},
		{"no_routes", "nothing", nil, "server: RegisterRoutes needs a name and routes"},
		{"a_name_taken", "web", routes, "server: routes web are registered twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if got := recover(); got != tt.want {
					t.Fatalf("panic %v, want %q", got, tt.want)
				}
			}()
			server.RegisterRoutes(tt.setName, tt.routes)
		})
	}
}

// TestRegisterServiceRefusesMistakes: a service with no name or no New,
// or under a name taken (federation's, which the standard binary
// registers), is a mistake in the program and panics at start.
func TestRegisterServiceRefusesMistakes(t *testing.T) {
	build := server.ServiceType{New: func(*server.ServiceEnv) (server.Service, error) { return nil, nil }}
	tests := []struct {
		name, service string
		t             server.ServiceType
		want          string
	}{
		{"no_name", "", build, "server: RegisterService needs a name and a New"},
		{"no_new", "nothing", server.ServiceType{}, "server: RegisterService needs a name and a New"},
		{"a_name_taken", "s2s", build, "server: service s2s is registered twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if got := recover(); got != tt.want {
					t.Fatalf("panic %v, want %q", got, tt.want)
				}
			}()
			server.RegisterService(tt.service, tt.t)
		})
	}
}
