package server_test

import (
	"testing"

	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
)

// TestResumeLocation: [c2s] resume_location reaches <enabled/> (XEP-0198
// §5), and a config without it sends none.
func TestResumeLocation(t *testing.T) {
	for _, loc := range []string{"", "xmpp2.example.com:5222", "xmpp2.example.com"} {
		t.Run("location="+loc, func(t *testing.T) {
			s := parleytest.Start(t, parleytest.WithConfig(func(c *conf.Config) { c.C2S.ResumeLocation = loc }))
			s.AddUser("alice@localhost", "pw")
			c := s.Login("alice@localhost", "pw", "r")
			c.Send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
			el := c.Next()
			for el.Tag != "enabled" {
				el = c.Next()
			}
			if got := el.SelectAttrValue("location", ""); got != loc || (loc == "" && el.SelectAttr("location") != nil) {
				t.Errorf("<enabled/> location %q, want %q: %s", got, loc, c.String(el))
			}
		})
	}
}
