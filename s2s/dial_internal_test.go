package s2s

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/xmpp"
	"golang.org/x/net/dns/dnsmessage"
)

// fakeDNS answers SRV questions over UDP from srv (name → records) and
// everything else with NXDOMAIN; it returns a resolver that asks it.
func fakeDNS(t *testing.T, srv map[string][]net.SRV) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			recs := srv[strings.ToLower(q.Name.String())]
			rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true}
			if q.Type != dnsmessage.TypeSRV || len(recs) == 0 {
				rh.RCode = dnsmessage.RCodeNameError
			}
			b := dnsmessage.NewBuilder(nil, rh)
			_ = b.StartQuestions()
			_ = b.Question(q)
			_ = b.StartAnswers()
			if rh.RCode == dnsmessage.RCodeSuccess {
				for _, r := range recs {
					_ = b.SRVResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60},
						dnsmessage.SRVResource{Priority: r.Priority, Weight: r.Weight, Port: r.Port, Target: dnsmessage.MustNewName(r.Target)})
				}
			}
			out, err := b.Finish()
			if err == nil {
				_, _ = pc.WriteTo(out, addr)
			}
		}
	}()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", pc.LocalAddr().String())
	}}
}

// selfSigned is a throwaway certificate for name.
func selfSigned(t *testing.T, name string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// nopRouter serves every domain and routes nothing.
type nopRouter struct{}

func (nopRouter) Route(*xmpp.Stanza)                     {}
func (nopRouter) Bounce(*xmpp.Stanza, *xmpp.StanzaError) {}
func (nopRouter) Serves(string) bool                     { return true }

// A remote domain's _xmpps-server SRV records come first and are dialed
// with direct TLS and ALPN xmpp-server (XEP-0368); _xmpp-server's after
// them, with STARTTLS.
func TestDirectTLSBySRV(t *testing.T) {
	cert := selfSigned(t, "remote.example")
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"xmpp-server"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	alpn := make(chan string, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			alpn <- "handshake: " + err.Error()
			return
		}
		alpn <- tc.ConnectionState().NegotiatedProtocol
		r := xmpp.NewReader(tc, xmpp.Limits{})
		if _, err := r.ReadHeader(); err != nil {
			return
		}
		_, _ = tc.Write([]byte(streamHeader("remote.example", "local.example", "id1") + "<stream:features/>"))
		_, _ = r.ReadElement() // until the dialer closes
	}()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	res := fakeDNS(t, map[string][]net.SRV{
		"_xmpps-server._tcp.remote.example.": {{Target: "localhost.", Port: uint16(p)}},
		"_xmpp-server._tcp.remote.example.":  {{Target: "xmpp.remote.example.", Port: 5269}},
	})
	svc, err := New(Config{
		Router: nopRouter{}, TLS: &tls.Config{}, Resolver: res, RequireTLS: true,
		Certificate: func(string) (*tls.Certificate, bool) { return nil, false },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := svc.targets(ctx, "remote.example")
	if err != nil {
		t.Fatal(err)
	}
	want := []target{{addr: "localhost:" + port, directTLS: true}, {addr: "xmpp.remote.example:5269"}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("targets %+v; want %+v", got, want)
	}
	ps, err := svc.dialPeer(ctx, pair{local: "local.example", remote: "remote.example"})
	if err != nil {
		t.Fatalf("dialPeer: %v", err)
	}
	defer ps.conn.Close()
	if !ps.tls || ps.id != "id1" {
		t.Errorf("stream tls=%v id=%q; want TLS and the peer's id", ps.tls, ps.id)
	}
	if a := <-alpn; a != "xmpp-server" {
		t.Errorf("ALPN %q; want xmpp-server", a)
	}
}
