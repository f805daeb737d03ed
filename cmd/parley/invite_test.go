package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/storage"
)

func TestInvite(t *testing.T) {
	inviteOnly := testConfig{hosts: "[[host]]\nname = \"example.com\"\nregistration = \"invite\"\n"}
	closed := testConfig{}
	tests := []struct {
		name     string
		cfg      testConfig
		args     []string
		wantCode int
		want     string // in stdout for 0, in stderr otherwise
	}{
		{"an invite host gets a token and a XEP-0401 link", inviteOnly, []string{"example.com"}, 0, "uri:     xmpp:example.com?register;preauth="},
		{"a closed host is refused with the fix", closed, []string{"example.com"}, 1, `set registration = "invite"`},
		{"an unknown host is refused", inviteOnly, []string{"nowhere.example"}, 1, "nowhere.example"},
		{"a missing host is a usage error", inviteOnly, nil, 2, "name one local host"},
		{"a negative ttl is a usage error", inviteOnly, []string{"-ttl", "-1h", "example.com"}, 2, "-ttl must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, dataDir := tt.cfg.write(t)
			code, stdout, stderr := runParley(t, "", append([]string{"invite", "-c", path}, tt.args...)...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr %s", code, tt.wantCode, stderr)
			}
			if code != 0 {
				if !strings.Contains(stderr, tt.want) {
					t.Fatalf("stderr %q, want %q", stderr, tt.want)
				}
				return
			}
			if !strings.Contains(stdout, tt.want) {
				t.Fatalf("stdout %q, want %q", stdout, tt.want)
			}
			token := strings.TrimSpace(strings.TrimPrefix(strings.SplitN(stdout, "\n", 2)[0], "token:"))
			store, err := storage.Open(context.Background(), filepath.Join(dataDir, "parley.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			if err := store.InviteValid(context.Background(), "example.com", token, time.Now()); err != nil {
				t.Fatalf("the printed token %q is not a valid invite: %v", token, err)
			}
		})
	}
}
