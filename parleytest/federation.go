package parleytest

import (
	"errors"
	"net"
	"syscall"
	"testing"

	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/s2s"
	"github.com/parley-im/parley/server/federation"
)

// S2S returns the server's federation service, nil when [s2s] listen is
// not set.
func (s *Server) S2S() *s2s.Service {
	if f := federation.Of(s.Server); f != nil {
		return f.S2S()
	}
	return nil
}

// S2SAddrs returns the addresses of the server-to-server listeners.
func (s *Server) S2SAddrs() []net.Addr {
	if f := federation.Of(s.Server); f != nil {
		return f.Addrs()
	}
	return nil
}

// S2SDirectTLSAddrs returns the addresses of the direct TLS s2s
// listeners (XEP-0368).
func (s *Server) S2SDirectTLSAddrs() []net.Addr {
	if f := federation.Of(s.Server); f != nil {
		return f.DirectTLSAddrs()
	}
	return nil
}

// StartFederated starts one server per domain, each serving its domain
// (a local host) with an [s2s] listener on loopback and static routes to
// the others' listeners, so that they federate with one another. opts
// apply to every server; one that needs a server's own domain reads
// c.Hosts[0].Name. Ports picked before the servers start can be taken
// meanwhile, so a start that finds one taken is tried again.
func StartFederated(t testing.TB, domains []string, opts ...Option) []*Server {
	t.Helper()
	var err error
	for attempt := 0; attempt < 10; attempt++ {
		addrs := make([]string, len(domains))
		for i := range domains {
			if addrs[i], err = FreeAddr(); err != nil {
				t.Fatalf("parleytest: %v", err)
			}
		}
		var started []*Server
		for i, d := range domains {
			routes := map[string]string{}
			for j, other := range domains {
				if j != i {
					routes[other] = addrs[j]
				}
			}
			all := append([]Option{WithHost(d, ""), func(c *conf.Config) {
				c.S2S.Listen = []string{addrs[i]}
				c.S2S.StaticRoutes = routes
			}}, opts...)
			var s *Server
			if s, err = start(t, all...); err != nil {
				break
			}
			started = append(started, s)
		}
		if err == nil {
			return started
		}
		for _, s := range started {
			_ = s.Close()
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	t.Fatalf("parleytest: %v", err)
	return nil
}
