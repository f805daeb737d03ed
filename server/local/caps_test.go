package local

import (
	"strings"
	"testing"

	"github.com/parley-im/parley/xmpp"
)

func TestCapsVerMatchesTheXEPExamples(t *testing.T) {
	tests := []struct {
		name, query, want string
	}{
		{"the simple example of XEP-0115 §5.2", `<query xmlns='http://jabber.org/protocol/disco#info'>
			<identity category='client' name='Exodus 0.9.1' type='pc'/>
			<feature var='http://jabber.org/protocol/caps'/>
			<feature var='http://jabber.org/protocol/disco#info'/>
			<feature var='http://jabber.org/protocol/disco#items'/>
			<feature var='http://jabber.org/protocol/muc'/></query>`, "QgayPKawpkPSDYmwT/WM94uAlu0="},
		{"the complex example of XEP-0115 §5.3", `<query xmlns='http://jabber.org/protocol/disco#info'>
			<identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>
			<identity xml:lang='el' category='client' name='Ψ 0.11' type='pc'/>
			<feature var='http://jabber.org/protocol/caps'/>
			<feature var='http://jabber.org/protocol/disco#info'/>
			<feature var='http://jabber.org/protocol/disco#items'/>
			<feature var='http://jabber.org/protocol/muc'/>
			<x xmlns='jabber:x:data' type='result'>
			<field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>
			<field var='ip_version'><value>ipv4</value><value>ipv6</value></field>
			<field var='os'><value>Mac</value></field>
			<field var='os_version'><value>10.5.1</value></field>
			<field var='software'><value>Psi</value></field>
			<field var='software_version'><value>0.11</value></field>
			</x></query>`, "q07IKJEyjvHSyhy//CH0CxmKi8w="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := xmpp.NewReader(strings.NewReader("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"+tt.query), xmpp.Limits{})
			if _, err := r.ReadHeader(); err != nil {
				t.Fatal(err)
			}
			q, err := r.ReadElement()
			if err != nil {
				t.Fatal(err)
			}
			if got := capsVer(q); got != tt.want {
				t.Fatalf("ver = %s, want %s", got, tt.want)
			}
		})
	}
}
