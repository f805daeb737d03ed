package server_test

import (
	"context"
	"testing"

	"github.com/parley-im/parley/parleytest"
)

// TestSMCountSurvivesARestart: a client whose resumable session ended
// with a restart of the server (closed by the shutdown, or dropped
// before it) tries to resume after it and is told, with item-not-found,
// how many of its stanzas the server had (XEP-0198 §5), as before the
// restart.
func TestSMCountSurvivesARestart(t *testing.T) {
	tests := []struct {
		name string
		drop bool // the connection drops before the shutdown
	}{
		{"closed by the shutdown", false},
		{"dropped before the shutdown", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			onDisk := parleytest.OnDisk(dir)
			s1 := parleytest.Start(t, onDisk)
			s1.AddUser("alice@localhost", "pw")
			s1.AddUser("bob@localhost", "pw")
			c := s1.Login("alice@localhost", "pw", "phone")
			c.Send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
			enabled := c.Next()
			if enabled.Tag != "enabled" || enabled.SelectAttrValue("id", "") == "" {
				t.Fatalf("want <enabled id=.../>, got %s", c.String(enabled))
			}
			id := enabled.SelectAttrValue("id", "")
			for i := range 5 {
				c.Send("<message to='bob@localhost' type='chat' id='m%d'><body>%d</body></message>", i, i)
			}
			c.Send("<r xmlns='urn:xmpp:sm:3'/>")
			var h string
			for h == "" {
				if el := c.Next(); el.Tag == "a" {
					h = el.SelectAttrValue("h", "")
				}
			}
			if h != "5" {
				t.Fatalf("the server acknowledged h=%s, want 5", h)
			}
			if tt.drop {
				c.Close()
			}
			ctx, cancel := context.WithTimeout(context.Background(), parleytest.Timeout)
			defer cancel()
			if err := s1.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}

			s2 := parleytest.Start(t, onDisk)
			r := s2.DialSecure("localhost")
			r.AuthPlain("alice", "pw")
			r.Open("localhost")
			r.Send("<resume xmlns='urn:xmpp:sm:3' h='0' previd='%s'/>", id)
			failed := r.Next()
			if failed.Tag != "failed" || failed.SelectAttrValue("h", "") != h || failed.SelectElement("item-not-found") == nil {
				t.Fatalf("a resume after the restart got %s, want <failed h='%s'><item-not-found/>", r.String(failed), h)
			}
			// Told once: a second try has no count.
			r.Send("<resume xmlns='urn:xmpp:sm:3' h='0' previd='%s'/>", id)
			if again := r.Next(); again.Tag != "failed" || again.SelectAttr("h") != nil {
				t.Errorf("a second resume got %s, want <failed/> without h", r.String(again))
			}
		})
	}
}
