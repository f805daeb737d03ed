package s2s

import "testing"

// The example of XEP-0220 §2.4 (and §2.2.2's verification): a key made
// otherwise would not verify on other servers' authoritative side.
func TestDialbackKeyMatchesXEP0220(t *testing.T) {
	tests := []struct {
		receiving, originating, id, want string
	}{
		{"capulet.example", "montague.example", "417GAF25", "225cc5aa6a071133249d25fef42ae516fc7a86c523aa1c6980a7f73e784c972d"},
	}
	for _, tt := range tests {
		got := dialbackKey([]byte("d14lb4ck43v3r"), tt.receiving, tt.originating, tt.id)
		if got != tt.want {
			t.Errorf("key(%s, %s, %s) = %s; want %s", tt.receiving, tt.originating, tt.id, got, tt.want)
		}
		if !checkKey([]byte("d14lb4ck43v3r"), tt.receiving, tt.originating, tt.id, tt.want) {
			t.Errorf("checkKey refuses the XEP's key")
		}
		if checkKey([]byte("d14lb4ck43v3r"), tt.receiving, tt.originating, tt.id+"x", tt.want) {
			t.Errorf("checkKey accepts the key for another stream id")
		}
	}
}
