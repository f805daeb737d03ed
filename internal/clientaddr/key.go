// Package clientaddr names the client a connection comes from, for the limits
// that count per address.
package clientaddr

import "net/netip"

// Key is what the per-address limits count a remote address (ip:port)
// under: its IPv4 address, or the /64 of its IPv6 address, which one host
// (one LAN, under SLAAC) has whole and could otherwise hop through to
// escape every limit. ok is false when remote is not ip:port.
func Key(remote string) (key netip.Prefix, ok bool) {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Prefix{}, false
	}
	ip := ap.Addr().Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, err := ip.Prefix(bits)
	return p, err == nil
}
