package conf_test

import (
	"strings"
	"testing"

	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/server/local"
	_ "github.com/parley-im/parley/server/std"
)

func TestWebhookSecrets(t *testing.T) {
	base := "[[host]]\nname = \"localhost\"\n[[host]]\nname = \"bots.localhost\"\ntype = \"http_component\"\npost_url = \"http://127.0.0.1:8080/\"\n"
	tests := []struct {
		name, secret, wantErr string
	}{
		{"a plain secret is used as it is", "correct horse battery staple", ""},
		{"a whsec_ secret with base64 is a key", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", ""},
		{"a whsec_ secret that is not base64 is refused with a line", "whsec_not base64!", "parley.toml:7: host[1].secret: a secret starting with whsec_"},
		{"an empty whsec_ key is refused", "whsec_", "parley.toml:7: host[1].secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := conf.Parse("parley.toml", []byte(base+"secret = \""+tt.secret+"\"\n"))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestLocalHostOptions(t *testing.T) {
	tests := []struct {
		name, src, wantErr string
	}{
		{"registration open is accepted", "registration = \"open\"\n", ""},
		{"registration invite is accepted", "registration = \"invite\"\n", ""},
		{"an unknown registration mode names the modes", "registration = \"public\"\n",
			`parley.toml:3: host[0].registration: "public" is not a registration mode; use "closed"`},
		{"contact addresses that are URIs are accepted", "[host.contact]\nadmin = [\"xmpp:admin@localhost\", \"mailto:a@b.c\"]\n", ""},
		{"a contact address that is not a URI is refused", "[host.contact]\nabuse = [\"abuse@localhost\"]\n",
			`host[0].contact: "abuse@localhost" is not a URI`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := conf.Parse("parley.toml", []byte("[[host]]\nname = \"localhost\"\n"+tt.src))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if local.LocalOptionsOf(&c.Hosts[0]).Registration == "" {
					t.Fatal("registration left empty; want a mode")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
	_, err := conf.Parse("parley.toml", []byte("[[host]]\nname = \"localhost\"\n[[host]]\nname = \"b.localhost\"\ntype = \"http_component\"\npost_url = \"http://127.0.0.1:1/\"\nregistration = \"open\"\n"))
	if err == nil || !strings.Contains(err.Error(), "host[1].registration: only for type = \"local\"") {
		t.Fatalf("registration on a bot host: err = %v", err)
	}
}
