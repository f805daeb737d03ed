package sasl

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

func TestHashedToken(t *testing.T) {
	now := time.Now()
	good := Token{Secret: []byte("secret-token:fast-good"), Expires: now.Add(time.Hour), ID: []byte("g")}
	other := Token{Secret: []byte("secret-token:fast-other"), Expires: now.Add(time.Hour), ID: []byte("o")}
	old := Token{Secret: []byte("secret-token:fast-old"), Expires: now.Add(-time.Second), ID: []byte("x")}
	lookup := func(_ context.Context, user string) ([]Token, error) {
		switch user {
		case "juliet":
			return []Token{other, good, old}, nil
		case "broken":
			return nil, errors.New("disk on fire")
		}
		return nil, ErrUnknownUser
	}
	tests := []struct {
		name   string
		in     []byte
		cond   string // "" for success
		wantID string
	}{
		{"the current token", HTInitiator("juliet", good.Secret), "", "g"},
		{"the other token", HTInitiator("Juliet", other.Secret), "", "o"},
		{"expired", HTInitiator("juliet", old.Secret), condCredentialsExpired, ""},
		{"wrong token", HTInitiator("juliet", []byte("guess")), condNotAuthorized, ""},
		{"unknown user", HTInitiator("romeo", good.Secret), condNotAuthorized, ""},
		{"store fails", HTInitiator("broken", good.Secret), condTemporaryFailure, ""},
		{"no NUL", []byte("juliet"), condMalformedRequest, ""},
		{"short mac", []byte("juliet\x00abc"), condMalformedRequest, ""},
		{"no user", HTInitiator("", good.Secret), condMalformedRequest, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := Config{Host: "example.com"}.NewTokenServer(HTSHA256None, lookup)
			if err != nil {
				t.Fatal(err)
			}
			out, done, err := srv.Step(context.Background(), tt.in)
			if tt.cond != "" {
				if !errors.Is(err, &Failure{Condition: tt.cond}) || done {
					t.Fatalf("Step = %v, %v; want %s", done, err, tt.cond)
				}
				if srv.Token() != nil || srv.Username() != "" {
					t.Fatal("a failed exchange has a token or user")
				}
				return
			}
			if err != nil || !done {
				t.Fatalf("Step = %v, %v", done, err)
			}
			if got := srv.Token(); got == nil || string(got.ID) != tt.wantID {
				t.Fatalf("Token = %+v, want %s", got, tt.wantID)
			}
			if !bytes.Equal(out, HTResponder(srv.Token().Secret)) || srv.Username() != "juliet" {
				t.Fatalf("out %x, user %q", out, srv.Username())
			}
		})
	}
	if _, err := (Config{}).NewTokenServer("HT-SHA-256-ENDP", lookup); !errors.Is(err, &Failure{Condition: condInvalidMechanism}) {
		t.Errorf("ENDP: %v", err)
	}
	if _, err := (Config{}).NewServer(HTSHA256None); !errors.Is(err, &Failure{Condition: condInvalidMechanism}) {
		t.Errorf("HT through NewServer (SASL1): %v", err)
	}
}
