package webhook

import (
	"github.com/beevik/etree"
	"github.com/parley-im/parley/xmpp"
)

// features are what a bot JID answers to disco#info when iqs are not
// forwarded.
var features = []string{xmpp.NSDiscoInfo, xmpp.NSDiscoItems, xmpp.NSPing, xmpp.NSVersion, NSChatStates}

// answerIQ answers the iqs of a bot whose iqs are not forwarded: disco,
// ping and version; anything else service-unavailable. Results and errors
// are dropped.
func (c *Component) answerIQ(st *xmpp.Stanza) {
	if st.Type != "get" && st.Type != "set" {
		return
	}
	p := st.Payload()
	ns := xmpp.NS(p)
	var payload *etree.Element
	switch {
	case st.Type == "get" && p.Tag == "query" && ns == xmpp.NSDiscoInfo:
		if p.SelectAttr("node") != nil {
			c.bounce(st, xmpp.NewStanzaError(xmpp.ItemNotFound, "no such node"))
			return
		}
		payload = xmpp.NewElementNS(xmpp.NSDiscoInfo, "query")
		id := payload.CreateElement("identity")
		if st.To.Local() == "" {
			id.CreateAttr("category", "component")
			id.CreateAttr("type", "generic")
			id.CreateAttr("name", "Parley HTTP bots")
		} else {
			id.CreateAttr("category", "client")
			id.CreateAttr("type", "bot")
			id.CreateAttr("name", st.To.Local())
		}
		for _, f := range features {
			payload.CreateElement("feature").CreateAttr("var", f)
		}
	case st.Type == "get" && p.Tag == "query" && ns == xmpp.NSDiscoItems:
		payload = xmpp.NewElementNS(xmpp.NSDiscoItems, "query")
	case st.Type == "get" && p.Tag == "ping" && ns == xmpp.NSPing:
	case st.Type == "get" && p.Tag == "query" && ns == xmpp.NSVersion:
		payload = xmpp.NewElementNS(xmpp.NSVersion, "query")
		payload.CreateElement("name").SetText("Parley HTTP bot")
		payload.CreateElement("version").SetText(Version)
	default:
		c.bounce(st, xmpp.NewStanzaError(xmpp.ServiceUnavailable, ""))
		return
	}
	c.route(st.Result(payload))
}

// Version is reported by the bots' jabber:iq:version; the server sets it
// to its own.
var Version = "dev"

// answerPresence answers presence for a bot whose presence is not
// forwarded: the bot is always online and accepts every subscription.
func (c *Component) answerPresence(st *xmpp.Stanza) {
	bot := st.To.Bare()
	switch st.Type {
	case "probe":
		c.route(xmpp.NewPresence("", bot, st.From))
	case "subscribe":
		c.route(xmpp.NewPresence("subscribed", bot, st.From.Bare()))
		c.route(xmpp.NewPresence("", bot, st.From))
	case "unsubscribe":
		c.route(xmpp.NewPresence("unsubscribed", bot, st.From.Bare()))
	}
	// Available, unavailable, subscribed and unsubscribed need no answer.
}
