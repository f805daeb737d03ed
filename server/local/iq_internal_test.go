package local

import (
	"context"
	"testing"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/xmpp"
)

// TestIQMuxRefusesMistakes: a nil handler and a second handler for the
// same iqs are mistakes in the code that registers them, found at start.
func TestIQMuxRefusesMistakes(t *testing.T) {
	ping := func(context.Context, *xmpp.Stanza) (*etree.Element, error) { return nil, nil }
	for _, tc := range []struct {
		name string
		do   func(m *iqMux)
	}{
		{"a nil handler", func(m *iqMux) { m.handle("get", xmpp.NSPing, "ping", "", nil) }},
		{"a second handler", func(m *iqMux) {
			m.handle("get", xmpp.NSPing, "ping", xmpp.NSPing, ping)
			m.handle("get", xmpp.NSPing, "ping", "", ping)
		}},
		{"a handler for disco#info, which the mux answers itself", func(m *iqMux) {
			m.handle("get", xmpp.NSDiscoInfo, "query", "", ping)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			tc.do(newIQMux("server", "im", ""))
		})
	}
}
