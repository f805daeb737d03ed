// Package basic is the module of the small answers every XMPP server
// gives: ping (XEP-0199) to the server and to its users' bare JIDs, the
// software version (XEP-0092), the entity time (XEP-0202) and the list
// of its services (XEP-0030 disco#items).
package basic

import (
	"context"
	"runtime"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/server"
	"github.com/parley-im/parley/server/local"
	"github.com/parley-im/parley/xmpp"
)

func init() {
	local.RegisterModule(local.Module{Name: "basic", Start: start})
}

func start(h *local.Host) error {
	pong := func(context.Context, *xmpp.Stanza) (*etree.Element, error) { return nil, nil }
	// XEP-0199 §4 (to the server) and §6 (to a user's bare JID, which the
	// server answers for the account).
	h.HandleIQ(local.ToHost, "get", xmpp.NSPing, "ping", xmpp.NSPing, pong)
	h.HandleIQ(local.ToBare, "get", xmpp.NSPing, "ping", xmpp.NSPing, pong)
	h.HandleIQ(local.ToHost, "get", xmpp.NSVersion, "query", xmpp.NSVersion, version)
	h.HandleIQ(local.ToHost, "get", xmpp.NSTime, "time", xmpp.NSTime, entityTime)
	services := h.Services()
	h.HandleIQ(local.ToHost, "get", xmpp.NSDiscoItems, "query", xmpp.NSDiscoItems, func(ctx context.Context, st *xmpp.Stanza) (*etree.Element, error) {
		if st.Payload().SelectAttr("node") != nil {
			return nil, xmpp.NewStanzaError(xmpp.ItemNotFound, "no such node")
		}
		q := xmpp.NewElementNS(xmpp.NSDiscoItems, "query")
		for _, c := range services {
			q.CreateElement("item").CreateAttr("jid", c)
		}
		return q, nil
	})
	return nil
}

// version answers XEP-0092.
func version(context.Context, *xmpp.Stanza) (*etree.Element, error) {
	q := xmpp.NewElementNS(xmpp.NSVersion, "query")
	q.CreateElement("name").SetText("Parley")
	q.CreateElement("version").SetText(server.Version)
	q.CreateElement("os").SetText(runtime.GOOS)
	return q, nil
}

// entityTime answers XEP-0202: the server's offset from UTC and the time
// in UTC, with milliseconds.
func entityTime(context.Context, *xmpp.Stanza) (*etree.Element, error) {
	now := time.Now()
	q := xmpp.NewElementNS(xmpp.NSTime, "time")
	q.CreateElement("tzo").SetText(now.Format("-07:00"))
	q.CreateElement("utc").SetText(now.UTC().Format("2006-01-02T15:04:05.000Z"))
	return q, nil
}
