package xmpp

import "testing"

// TestCapsStringRefusesIllFormed: XEP-0115 §5.4 step 3: an answer with a
// repeated identity, feature or form type, or a FORM_TYPE with several
// values, is not to be trusted; a form without a hidden FORM_TYPE is
// left out of the string.
func TestCapsStringRefusesIllFormed(t *testing.T) {
	const feature = "<feature var='urn:a'/>"
	const form = "<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>urn:f</value></field><field var='k'><value>v</value></field></x>"
	tests := []struct {
		name, body string
		ok         bool
		want       string
	}{
		{"well formed", "<identity category='client' type='pc'/>" + feature + form, true, "client/pc//<urn:a<urn:f<k<v<"},
		{"a repeated identity", "<identity category='client' type='pc'/><identity category='client' type='pc'/>", false, ""},
		{"a repeated feature", feature + feature, false, ""},
		{"a repeated form type", form + form, false, ""},
		{"a FORM_TYPE of two values", "<x xmlns='jabber:x:data'><field var='FORM_TYPE' type='hidden'><value>urn:f</value><value>urn:g</value></field></x>", false, ""},
		{"a form without a hidden FORM_TYPE is left out", feature + "<x xmlns='jabber:x:data'><field var='FORM_TYPE'><value>urn:f</value></field></x>", true, "urn:a<"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := ParseElement("<query xmlns='http://jabber.org/protocol/disco#info'>"+tt.body+"</query>", Limits{})
			if err != nil {
				t.Fatal(err)
			}
			got, ok := CapsString(q)
			if ok != tt.ok || (ok && got != tt.want) {
				t.Errorf("CapsString = %q, %v; want %q, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}
