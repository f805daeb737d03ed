package xmpp

import (
	"strings"
	"testing"

	"github.com/beevik/etree"
)

// TestStripForeignDelays: the delays a sender may and may not claim.
func TestStripForeignDelays(t *testing.T) {
	ours := func(d string) bool { return d == "example.org" || d == "muc.example.org" }
	tests := []struct {
		name  string
		in    string
		stays string // the delays' from attributes that stay, in order ("-": none)
	}{
		{"the server's domain", `<message from='a@example.org/r'><delay xmlns='urn:xmpp:delay' from='example.org'/></message>`, ""},
		{"a room of the server", `<message from='a@example.org/r'><delay xmlns='urn:xmpp:delay' from='room@muc.example.org'/></message>`, ""},
		{"the sender itself", `<message from='a@example.org/r'><delay xmlns='urn:xmpp:delay' from='a@example.org/other'/></message>`, "a@example.org/other"},
		{"no from", `<message from='a@example.org/r'><delay xmlns='urn:xmpp:delay'/></message>`, "-"},
		{"a remote domain", `<presence from='a@example.org/r'><delay xmlns='urn:xmpp:delay' from='remote.example'/></presence>`, "remote.example"},
		{"no JID", `<message from='a@example.org/r'><delay xmlns='urn:xmpp:delay' from='x@@y'/></message>`, ""},
		{"another namespace", `<message from='a@example.org/r'><delay xmlns='urn:other' from='example.org'/></message>`, "example.org"},
		{"several, in order", `<message from='z@remote.example/r'><delay xmlns='urn:xmpp:delay' from='example.org'/><body/><delay xmlns='urn:xmpp:delay' from='remote.example'/><delay xmlns='urn:xmpp:delay' from='muc.example.org'/></message>`, "remote.example"},
		{"an iq is left alone", `<iq type='get' id='1' from='a@example.org/r'><delay xmlns='urn:xmpp:delay' from='example.org'/></iq>`, "example.org"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := etree.NewDocument()
			if err := d.ReadFromString(tt.in); err != nil {
				t.Fatal(err)
			}
			st, err := NewStanza(d.Root())
			if err != nil {
				t.Fatal(err)
			}
			StripForeignDelays(st, ours)
			var got []string
			for _, c := range st.El.ChildElements() {
				if c.Tag == "delay" {
					got = append(got, c.SelectAttrValue("from", "-"))
				}
			}
			if g := strings.Join(got, " "); g != tt.stays {
				t.Errorf("delays left %q, want %q", g, tt.stays)
			}
		})
	}
}

// TestDropChildrenLeavesSharedChildren: dropping from one element whose
// children another shares (a room's copies) leaves the other's as they
// were; with nothing to drop the array stays the same one.
func TestDropChildrenLeavesSharedChildren(t *testing.T) {
	d := etree.NewDocument()
	if err := d.ReadFromString(`<message><body>hi</body><stanza-id xmlns='urn:xmpp:sid:0'/><x/></message>`); err != nil {
		t.Fatal(err)
	}
	a := d.Root()
	b := &etree.Element{Tag: "message", Child: a.Child[:len(a.Child):len(a.Child)]}
	isID := func(c *etree.Element) bool { return c.Tag == "stanza-id" }
	if DropChildren(b, func(c *etree.Element) bool { return c.Tag == "nothing" }) || &b.Child[0] != &a.Child[0] {
		t.Fatal("nothing to drop, yet the children changed")
	}
	if !DropChildren(b, isID) {
		t.Fatal("the stanza-id was not dropped")
	}
	tags := func(el *etree.Element) (s string) {
		for _, c := range el.ChildElements() {
			s += c.Tag + " "
		}
		return s
	}
	if got, want := tags(b), "body x "; got != want {
		t.Errorf("the dropping copy has %q, want %q", got, want)
	}
	if got, want := tags(a), "body stanza-id x "; got != want {
		t.Errorf("the sharing element has %q, want %q", got, want)
	}
}
