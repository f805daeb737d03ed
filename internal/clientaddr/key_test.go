package clientaddr

import "testing"

// TestKey: IPv6 by /64 (one host has a whole /64 to hop through), IPv4
// by address, v4-mapped as IPv4.
func TestKey(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"192.0.2.7:5222", "192.0.2.7/32"},
		{"[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:5222", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2::1]:40000", "2001:db8:1:2::/64"},
		{"[2001:db8:1:3::1]:40000", "2001:db8:1:3::/64"},
		{"[::ffff:192.0.2.7]:5222", "192.0.2.7/32"},
		{"not an address", "invalid Prefix"},
	} {
		got, _ := Key(tc.addr)
		if got.String() != tc.want {
			t.Errorf("Key(%s) = %s, want %s", tc.addr, got, tc.want)
		}
	}
}
