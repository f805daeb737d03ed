package std_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/server/local"
	"github.com/parley-im/parley/xmpp"
)

// Disco tells the truth (issue #13, item 9): every feature the server's
// and the account's disco#info list is answered. A feature is listed
// because a module or the core registered it; this test sends, for each
// one listed, the request the feature promises and checks the answer. A
// feature without a probe here fails the test: whoever adds a feature
// adds its probe.

// probe is what a feature promises, and how to check it.
type probe struct {
	// at is where the feature's protocol sends its request when the
	// server lists it: "host" (to the domain), or "account" (no to: the
	// user's own account, which the host's list speaks for, XEP-0030
	// §3.1 as read by XEP-0191 §2 and XEP-0049). On the account's own
	// list every probe is sent to the bare JID.
	at string
	// An iq probe: an iq get with payload, answered with a result whose
	// payload is want ("{ns}local"; "" for an empty result).
	payload, want string
	// behave checks a feature that has no iq; nil for iq probes.
	behave func(w *walker) error
}

// probes has one entry for each feature the standard modules and the
// core may list. Features that are stream features (rosterver,
// pre-approval, XEP-0198's sm) are not disco#info's and not here.
var probes = map[string]probe{
	xmpp.NSDiscoInfo:  {at: "host", payload: "<query xmlns='http://jabber.org/protocol/disco#info'/>", want: "{http://jabber.org/protocol/disco#info}query"},
	xmpp.NSDiscoItems: {at: "host", payload: "<query xmlns='http://jabber.org/protocol/disco#items'/>", want: "{http://jabber.org/protocol/disco#items}query"},
	// XEP-0012 §6: the server's uptime.
	"jabber:iq:last":    {at: "host", payload: "<query xmlns='jabber:iq:last'/>", want: "{jabber:iq:last}query"},
	"jabber:iq:version": {at: "host", payload: "<query xmlns='jabber:iq:version'/>", want: "{jabber:iq:version}query"},
	"urn:xmpp:ping":     {at: "host", payload: "<ping xmlns='urn:xmpp:ping'/>", want: ""},
	"urn:xmpp:time":     {at: "host", payload: "<time xmlns='urn:xmpp:time'/>", want: "{urn:xmpp:time}time"},
	// XEP-0215, listed when the host has services.
	"urn:xmpp:extdisco:2": {at: "host", payload: "<services xmlns='urn:xmpp:extdisco:2'/>", want: "{urn:xmpp:extdisco:2}services"},
	// Services of the account.
	"jabber:iq:private": {at: "account", payload: "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>", want: "{jabber:iq:private}query"},
	"urn:xmpp:blocking": {at: "account", payload: "<blocklist xmlns='urn:xmpp:blocking'/>", want: "{urn:xmpp:blocking}blocklist"},
	"vcard-temp":        {at: "account", payload: "<vCard xmlns='vcard-temp'/>", want: "{vcard-temp}vCard"},
	// XEP-0160: no iq; a message to a user with no resource comes at
	// the user's next initial presence.
	"msgoffline": {at: "host", behave: offlineDelivered},
	// XEP-0280: a second resource enables carbons (an iq set) and gets a
	// copy of what the first one sends; the rules feature says which
	// messages are copied, which a chat message is.
	"urn:xmpp:carbons:2":       {at: "account", behave: carbonCopied},
	"urn:xmpp:carbons:rules:0": {at: "host", behave: carbonCopied},
	// XEP-0313: the query is an iq set, answered with <fin/> after the
	// results; #extended's form lists its fields; XEP-0359's stanza-ids
	// come with the archive's metadata (XEP-0313 §6.1).
	// XEP-0357: enable and disable are iq sets; what they do is tested
	// in server/mod/push.
	"urn:xmpp:push:0":         {at: "account", behave: pushEnabled},
	"urn:xmpp:mam:2":          {at: "account", behave: archiveQueried},
	"urn:xmpp:mam:2#extended": {at: "account", payload: "<query xmlns='urn:xmpp:mam:2'/>", want: "{urn:xmpp:mam:2}query"},
	"urn:xmpp:sid:0":          {at: "account", payload: "<metadata xmlns='urn:xmpp:mam:2'/>", want: "{urn:xmpp:mam:2}metadata"},
	// XEP-0402 §5.3: bookmarks set in private XML (XEP-0048) are the
	// items of the urn:xmpp:bookmarks:1 node, and the other way.
	"urn:xmpp:bookmarks:1#compat": {at: "account", behave: bookmarksBridged},
	// The same list through XEP-0048's PEP node, one item "current".
	"urn:xmpp:bookmarks:1#compat-pep": {at: "account", behave: legacyPEPBridged},
	// XEP-0398: an avatar published by XEP-0084 is the vCard's PHOTO.
	"urn:xmpp:pep-vcard-conversion:0": {at: "account", behave: avatarConverted},
}

// avatarConverted publishes an avatar (XEP-0084 §4.1: data, then
// metadata) and reads it back as the vCard's PHOTO.
func avatarConverted(w *walker) error {
	const ps = "http://jabber.org/protocol/pubsub"
	// The SHA-1 of "walk": the item id XEP-0084 asks for.
	const b64, id = "d2Fsaw==", "df06b147f778d46fad19b32b6757a3abc3af41de"
	for _, p := range []string{
		"<publish node='urn:xmpp:avatar:data'><item id='" + id + "'><data xmlns='urn:xmpp:avatar:data'>" + b64 + "</data></item></publish>",
		"<publish node='urn:xmpp:avatar:metadata'><item id='" + id + "'><metadata xmlns='urn:xmpp:avatar:metadata'><info bytes='4' id='" + id + "' type='image/png'/></metadata></item></publish>",
	} {
		if st := w.c.IQ("set", "", "<pubsub xmlns='"+ps+"'>"+p+"</pubsub>"); st.Type != "result" {
			return fmt.Errorf("an avatar publish got %s", w.c.String(st.El))
		}
	}
	st := w.c.IQ("get", "", "<vCard xmlns='vcard-temp'/>")
	if b := st.El.FindElement("vCard/PHOTO/BINVAL"); b == nil || b.Text() != b64 {
		return fmt.Errorf("the vCard after an avatar publish is %s, want its PHOTO", w.c.String(st.El))
	}
	return nil
}

// legacyPEPBridged checks that the storage:bookmarks node holds the
// walker's XEP-0402 bookmarks as one item, which bookmarksBridged set.
func legacyPEPBridged(w *walker) error {
	room := parleytest.NewID("walkpep") + "@conference.localhost"
	pub := w.c.IQ("set", "", "<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:bookmarks:1'><item id='"+room+
		"'><conference xmlns='urn:xmpp:bookmarks:1' name='pep'/></item></publish></pubsub>")
	if pub.Type != "result" {
		return fmt.Errorf("a XEP-0402 publish got %s", w.c.String(pub.El))
	}
	got := w.c.IQ("get", "", "<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='storage:bookmarks'/></pubsub>")
	if got.El.FindElement("pubsub/items/item[@id='current']/storage/conference[@jid='"+room+"']") == nil {
		return fmt.Errorf("the storage:bookmarks node does not hold the XEP-0402 bookmark: %s", w.c.String(got.El))
	}
	return nil
}

// bookmarksBridged checks that a bookmark the walker sets by XEP-0049 is
// an item of its XEP-0402 node, and that one published there is in what
// XEP-0049 reads back.
func bookmarksBridged(w *walker) error {
	room := parleytest.NewID("walk") + "@conference.localhost"
	set := w.c.IQ("set", "", "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'><conference jid='"+room+"' name='walk'/></storage></query>")
	if set.Type != "result" {
		return fmt.Errorf("a private bookmarks set got %s", w.c.String(set.El))
	}
	got := w.c.IQ("get", "", "<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:bookmarks:1'/></pubsub>")
	if got.El.FindElement("pubsub/items/item[@id='"+room+"']/conference[@name='walk']") == nil {
		return fmt.Errorf("the bookmark set by XEP-0049 is not an item of XEP-0402's node: %s", w.c.String(got.El))
	}
	other := parleytest.NewID("walk") + "@conference.localhost"
	pub := w.c.IQ("set", "", "<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:bookmarks:1'><item id='"+other+
		"'><conference xmlns='urn:xmpp:bookmarks:1' name='other'/></item></publish></pubsub>")
	if pub.Type != "result" {
		return fmt.Errorf("a XEP-0402 publish got %s", w.c.String(pub.El))
	}
	back := w.c.IQ("get", "", "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>")
	if back.El.FindElement("query/storage/conference[@jid='"+other+"']") == nil {
		return fmt.Errorf("the bookmark published by XEP-0402 is not in what XEP-0049 reads: %s", w.c.String(back.El))
	}
	return nil
}

func init() {
	// XEP-0163: the PEP service's features share one walk of the service
	// (publish with publish-options, items, configure, retract, delete);
	// the access models and +notify filtering are tested in server/mod/pep.
	for _, f := range []string{"access-open", "access-presence", "access-whitelist", "auto-create",
		"config-node", "delete-nodes", "filtered-notifications", "last-published", "persistent-items",
		"publish", "publish-options", "delete-items", "item-ids", "retrieve-items"} {
		probes["http://jabber.org/protocol/pubsub#"+f] = probe{at: "account", behave: pepWorks}
	}
}

// pepWorks checks the PEP service of the walker's account (XEP-0163):
// it is one (the pubsub/pep identity), and a node made by a publish with
// publish-options serves items, retraction, its configuration and its
// deletion. Every pubsub feature the module lists is one of these.
func pepWorks(w *walker) error {
	info := w.c.IQ("get", w.user, "<query xmlns='http://jabber.org/protocol/disco#info'/>")
	if info.El.FindElement("query/identity[@category='pubsub'][@type='pep']") == nil {
		return fmt.Errorf("the account's disco#info has no pubsub/pep identity: %s", w.c.String(info.El))
	}
	node := parleytest.NewID("urn:example:walk")
	const ps = "http://jabber.org/protocol/pubsub"
	steps := []struct{ typ, payload, want string }{
		{"set", "<pubsub xmlns='" + ps + "'><publish node='" + node + "'><item id='one'><x xmlns='urn:example'/></item></publish>" +
			"<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>" + ps + "#publish-options</value></field>" +
			"<field var='pubsub#access_model'><value>open</value></field></x></publish-options></pubsub>", "pubsub/publish/item[@id='one']"},
		{"get", "<pubsub xmlns='" + ps + "'><items node='" + node + "'/></pubsub>", "pubsub/items/item[@id='one']"},
		{"get", "<pubsub xmlns='" + ps + "#owner'><configure node='" + node + "'/></pubsub>", "pubsub/configure"},
		{"set", "<pubsub xmlns='" + ps + "'><retract node='" + node + "' notify='true'><item id='one'/></retract></pubsub>", ""},
		{"set", "<pubsub xmlns='" + ps + "#owner'><delete node='" + node + "'/></pubsub>", ""},
	}
	for _, step := range steps {
		st := w.c.IQ(step.typ, "", step.payload)
		if st.Type != "result" || (step.want != "" && st.El.FindElement(step.want) == nil) {
			return fmt.Errorf("%s got %s, want a result with %s", step.payload, w.c.String(st.El), step.want)
		}
	}
	return nil
}

// archiveQueried checks that an archive query of the walker's own
// archive ends with <fin/>.
func archiveQueried(w *walker) error {
	st := w.c.IQ("set", "", "<query xmlns='urn:xmpp:mam:2' queryid='walk'/>")
	if st.Type != "result" || st.El.FindElement("fin") == nil {
		return fmt.Errorf("an archive query got %s, want a result with <fin/>", w.c.String(st.El))
	}
	return nil
}

// carbonCopied checks that a resource that enabled carbons gets a sent
// carbon of the walker's chat message.
func carbonCopied(w *walker) error {
	pw := parleytest.NewID("pw")
	other := parleytest.NewID("carbons") + "@" + strings.SplitN(w.user, "@", 2)[1]
	w.s.AddUser(other, pw)
	first := w.s.Login(other, pw, "first")
	second := w.s.Login(other, pw, "second")
	if st := second.IQ("set", "", "<enable xmlns='urn:xmpp:carbons:2'/>"); st.Type != "result" {
		return fmt.Errorf("enabling carbons got %s", second.String(st.El))
	}
	body := parleytest.NewID("carbon")
	first.Send("<message to='%s' type='chat'><body>%s</body></message>", w.user, body)
	first.Sync()
	for _, st := range second.UntilSync() {
		if st.El.FindElement("sent/forwarded/message/body") != nil && st.El.FindElement("sent/forwarded/message/body").Text() == body {
			return nil
		}
	}
	return fmt.Errorf("no sent carbon of %q reached the resource that enabled carbons", body)
}

// pushEnabled enables and disables an app server (XEP-0357 §5, §6).
func pushEnabled(w *walker) error {
	for _, payload := range []string{
		"<enable xmlns='urn:xmpp:push:0' jid='push.example' node='n'/>",
		"<disable xmlns='urn:xmpp:push:0' jid='push.example' node='n'/>",
	} {
		if st := w.c.IQ("set", "", payload); st.Type != "result" {
			return fmt.Errorf("%s got %s", payload, w.c.String(st.El))
		}
	}
	return nil
}

// walker asks as user (logged in as c) and checks what is listed.
type walker struct {
	t      *testing.T
	s      *parleytest.Server
	c      *parleytest.Conn
	user   string // bare JID
	probes map[string]probe
}

// features returns the features of to's disco#info.
func (w *walker) features(to string) []string {
	st := w.c.IQ("get", to, "<query xmlns='"+xmpp.NSDiscoInfo+"'/>")
	w.c.ExpectResult(st, "disco#info of "+to)
	var out []string
	for _, f := range st.Payload().SelectElements("feature") {
		out = append(out, f.SelectAttrValue("var", ""))
	}
	return out
}

// check probes each feature that entity (the host's domain or the user's
// bare JID) lists, and returns what is wrong, one line each.
func (w *walker) check(entity string) []string {
	var problems []string
	for _, f := range w.features(entity) {
		p, ok := w.probes[f]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s lists %s, which has no probe in features_test.go", entity, f))
			continue
		}
		if p.behave != nil {
			if err := p.behave(w); err != nil {
				problems = append(problems, fmt.Sprintf("%s lists %s: %v", entity, f, err))
			}
			continue
		}
		to := entity
		if entity != w.user && p.at == "account" {
			to = ""
		}
		st := w.c.IQ("get", to, p.payload)
		if got := answerShape(st); got != "result "+p.want {
			problems = append(problems, fmt.Sprintf("%s lists %s; the probe to %q got %s, want result %s",
				entity, f, to, got, p.want))
		}
	}
	return problems
}

// answerShape is "result {ns}local" (the payload's name; nothing for an
// empty result) or "error condition".
func answerShape(st *xmpp.Stanza) string {
	if st.Type == "error" {
		return "error " + string(parleytest.Condition(st))
	}
	p := st.Payload()
	if p == nil {
		return "result "
	}
	return "result {" + xmpp.NS(p) + "}" + p.Tag
}

// offlineDelivered sends a message to a user with no session, then logs
// the user in: the message must come after the initial presence.
func offlineDelivered(w *walker) error {
	_, domain, _ := strings.Cut(w.user, "@")
	away := parleytest.NewID("away") + "@" + domain
	w.s.AddUser(away, "x")
	body := parleytest.NewID("offline")
	w.c.Send("<message to='%s' type='chat' id='%s'><body>%s</body></message>", away, body, body)
	w.c.UntilSync()
	c := w.s.Login(away, "x", "later")
	c.Send("<presence/>")
	got, _ := c.WaitFor("the offline message", func(st *xmpp.Stanza) bool {
		return st.Kind == xmpp.KindMessage
	})
	if parleytest.Body(got) != body {
		return fmt.Errorf("the message kept offline came back as %s", c.String(got.El))
	}
	return nil
}

// startAll starts a server on which every standard module lists what it
// can: localhost has contact addresses and external services.
func startAll(t *testing.T, opts ...parleytest.Option) *parleytest.Server {
	t.Helper()
	return parleytest.Start(t, append([]parleytest.Option{parleytest.WithHost("localhost", ""),
		parleytest.WithConfig(func(c *conf.Config) {
			o := local.LocalOptionsOf(&c.Hosts[0])
			o.Contact.Admin = []string{"xmpp:admin@localhost"}
			o.ExternalServices = []local.ExternalService{{Type: "stun", Host: "stun.example.net"}}
		})}, opts...)...)
}

func TestDiscoFeaturesAreAnswered(t *testing.T) {
	s := startAll(t)
	s.AddUser("alice@localhost", "a")
	w := &walker{t: t, s: s, c: s.Login("alice@localhost", "a", "phone"), user: "alice@localhost", probes: probes}
	for _, entity := range []string{"localhost", "alice@localhost"} {
		for _, p := range w.check(entity) {
			t.Error(p)
		}
	}
	// The walk must have walked: the host lists at least the core's and
	// basic's features, extdisco's among them with services configured.
	if f := w.features("localhost"); len(f) < len(probes)-1 || !slices.Contains(f, "urn:xmpp:extdisco:2") {
		t.Errorf("localhost lists %q; want every feature of the standard modules", f)
	}
}

// The liar: a module, on the host liar.localhost alone, that lists one
// feature with no iq and one whose iq it refuses.
const (
	liarHost    = "liar.localhost"
	liarFeature = "urn:example:liar"
	liarIQ      = "urn:example:liar:iq"
)

func init() {
	local.RegisterModule(local.Module{Name: "zz-test-liar", Start: func(h *local.Host) error {
		if h.Name() != liarHost {
			return nil
		}
		h.Feature(liarFeature)
		h.HandleIQ(local.ToHost, "get", liarIQ, "q", liarIQ, func(context.Context, *xmpp.Stanza) (*etree.Element, error) {
			return nil, xmpp.NewStanzaError(xmpp.FeatureNotImplemented, "")
		})
		return nil
	}})
}

// TestDiscoWalkCatchesALiar: the walk reports a listed feature it has no
// probe for, and one answered with an error.
func TestDiscoWalkCatchesALiar(t *testing.T) {
	s := startAll(t, parleytest.WithHost(liarHost, ""))
	s.AddUser("mallory@"+liarHost, "m")
	all := maps.Clone(probes)
	all[liarIQ] = probe{at: "host", payload: "<q xmlns='" + liarIQ + "'/>", want: "{" + liarIQ + "}q"}
	w := &walker{t: t, s: s, c: s.Login("mallory@"+liarHost, "m", "x"), user: "mallory@" + liarHost, probes: all}
	got := strings.Join(w.check(liarHost), "\n")
	for _, want := range []string{
		liarHost + " lists " + liarFeature + ", which has no probe",
		liarHost + " lists " + liarIQ + "; the probe to \"" + liarHost + "\" got error feature-not-implemented",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the walk of %s reported:\n%s\nwant a line with %q", liarHost, got, want)
		}
	}
	if strings.Count(got, "\n") != 1 {
		t.Errorf("the walk of %s reported:\n%s\nwant the 2 lines above only", liarHost, got)
	}
}
