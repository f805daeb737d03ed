package conf

import (
	"strings"
	"testing"
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
			_, err := Parse("parley.toml", []byte(base+"secret = \""+tt.secret+"\"\n"))
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
