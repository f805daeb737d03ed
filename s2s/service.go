package s2s

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-im/parley/xmpp"
)

// Router is what the service needs of the server: which domains are its
// own, and where the stanzas of remote servers go.
type Router interface {
	// Route delivers a stanza whose from has been verified.
	Route(st *xmpp.Stanza)
	// Bounce answers st with an error, unless st is itself an error or
	// an answer.
	Bounce(st *xmpp.Stanza, e *xmpp.StanzaError)
	// Serves reports whether a host of this server serves domain.
	Serves(domain string) bool
}

// Defaults of the Config fields left zero.
const (
	DefaultConnectTimeout = 30 * time.Second
	DefaultQueue          = 1000
	DefaultPort           = "5269"
)

// Config is what a Service runs with.
type Config struct {
	Router Router
	// TLS is the server side configuration, with the hosts'
	// certificates (GetCertificate); the service asks peers for theirs.
	TLS *tls.Config
	// Certificate is a local domain's certificate, which outbound
	// streams present to the peer (for SASL EXTERNAL).
	Certificate func(domain string) (*tls.Certificate, bool)
	// Roots are the authorities peers' certificates are checked against;
	// nil means the system's.
	Roots *x509.CertPool
	// Routes map a remote domain to "host:port", before any DNS lookup;
	// "tls://host:port" dials with direct TLS (XEP-0368, ALPN
	// xmpp-server) instead of STARTTLS.
	Routes map[string]string
	// RequireTLS refuses streams, both ways, without TLS.
	RequireTLS bool
	// RequireValidCerts refuses peers whose certificates do not validate:
	// no dialback.
	RequireValidCerts bool
	// Allow, when not empty, are the only remote domains federated
	// with; Deny are never federated with.
	Allow, Deny []string
	// ConnectTimeout bounds connecting and authenticating one stream.
	ConnectTimeout time.Duration
	// IdleTimeout closes a stream that carried nothing this long; 0
	// never does.
	IdleTimeout time.Duration
	// PingInterval is how long an outbound stream may write nothing
	// before it pings the peer (XEP-0199): NAT state stays alive, and a
	// peer that does not answer within ConnectTimeout is dead and its
	// stream closed. 0 never pings.
	PingInterval time.Duration
	// MaxStreamsPerDomain bounds the inbound streams of one remote
	// domain (its headers' from; the peer's address when they have
	// none); 0 is no bound.
	MaxStreamsPerDomain int
	// Queue bounds the stanzas waiting for one outbound stream.
	Queue int
	// Limits are the reader's limits on inbound streams.
	Limits xmpp.Limits
	// Resolver looks up SRV and addresses; nil is net.DefaultResolver.
	Resolver *net.Resolver
	Logger   *slog.Logger
}

// Service is federation for one server: its outbound streams, by domain
// pair, and the inbound streams its listeners accept.
type Service struct {
	cfg    Config
	log    *slog.Logger
	secret []byte // the dialback secret: random, this process's only
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	closed    bool
	out       map[pair]*outStream
	in        map[*inStream]struct{}
	listeners []net.Listener
	wg        sync.WaitGroup
	// inPerKey counts the inbound streams of each remote domain (or
	// address), for MaxStreamsPerDomain.
	inPerKey map[string]int
	// pings are the outbound streams' pings waiting for an answer, by id.
	pings map[string]*outStream

	// How streams authenticated, for Stats.
	outExternal, outDialback, inExternal, inDialback atomic.Int64
	pingsSent, pingsAnswered, deadPeers, refused     atomic.Int64
	stanzasIn, stanzasOut                            atomic.Int64
}

// Stats counts the streams that authenticated, by direction and method,
// the pings of idle outbound streams, and what the limits refused.
type Stats struct {
	OutExternal, OutDialback, InExternal, InDialback int64
	// PingsSent and PingsAnswered are XEP-0199 pings on idle outbound
	// streams; DeadPeers the streams closed for a ping not answered.
	PingsSent, PingsAnswered, DeadPeers int64
	// StreamsRefused are inbound streams over MaxStreamsPerDomain.
	StreamsRefused int64
}

// Stats returns how many streams authenticated so far, and how, and the
// counts of pings and refusals.
func (s *Service) Stats() Stats {
	return Stats{
		OutExternal: s.outExternal.Load(), OutDialback: s.outDialback.Load(),
		InExternal: s.inExternal.Load(), InDialback: s.inDialback.Load(),
		PingsSent: s.pingsSent.Load(), PingsAnswered: s.pingsAnswered.Load(), DeadPeers: s.deadPeers.Load(),
		StreamsRefused: s.refused.Load(),
	}
}

// Stanzas returns how many stanzas inbound streams routed and outbound
// streams wrote.
func (s *Service) Stanzas() (in, out int64) { return s.stanzasIn.Load(), s.stanzasOut.Load() }

// pair is a local domain and a remote one.
type pair struct{ local, remote string }

// New returns a service that sends nothing until RouteRemote and accepts
// nothing until Serve.
func New(cfg Config) (*Service, error) {
	if cfg.Router == nil || cfg.TLS == nil || cfg.Certificate == nil {
		return nil, errors.New("s2s: Router, TLS and Certificate are required")
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultQueue
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	cfg.Limits = cfg.Limits.WithDefaults()
	s := &Service{cfg: cfg, log: cfg.Logger, out: map[pair]*outStream{}, in: map[*inStream]struct{}{},
		inPerKey: map[string]int{}, pings: map[string]*outStream{}}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.secret = make([]byte, 32)
	if _, err := rand.Read(s.secret); err != nil {
		return nil, fmt.Errorf("s2s: dialback secret: %w", err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// allowed reports whether this server federates with the remote domain.
func (s *Service) allowed(domain string) bool {
	if slices.Contains(s.cfg.Deny, domain) {
		return false
	}
	return len(s.cfg.Allow) == 0 || slices.Contains(s.cfg.Allow, domain)
}

// RouteRemote sends st, from a local domain, to its remote domain's
// server over the pair's stream, which it starts when there is none.
// It never blocks: the stream's queue is bounded, and what does not fit
// or cannot be delivered bounces.
func (s *Service) RouteRemote(st *xmpp.Stanza) {
	from, to := st.From.Domain(), st.To.Domain()
	if !s.cfg.Router.Serves(from) {
		// Only this server's own domains go out: never a relay for a
		// remote server's stanza (a bounce of one, say).
		s.log.Debug("s2s: stanza from a domain not served here dropped", "from", st.From.String(), "to", st.To.String())
		return
	}
	if !s.allowed(to) {
		s.cfg.Router.Bounce(st, xmpp.NewStanzaError(xmpp.RemoteServerNotFound, "this server does not federate with "+to))
		return
	}
	for range 2 {
		o := s.outStream(pair{local: from, remote: to})
		if o == nil {
			s.cfg.Router.Bounce(st, xmpp.NewStanzaError(xmpp.RemoteServerNotFound, "the server is shutting down"))
			return
		}
		switch o.enqueue(st) {
		case enqueued:
			return
		case queueFull:
			s.cfg.Router.Bounce(st, xmpp.NewStanzaError(xmpp.ResourceConstraint, "too many stanzas wait for "+to))
			return
		}
		if e := o.failure(); e != nil {
			// It failed before st got in (a refused connection fails at
			// once): st gets the answer those queued in it got.
			s.cfg.Router.Bounce(st, e)
			return
		}
		// The stream closed meanwhile (idle, say): a new one.
	}
	s.cfg.Router.Bounce(st, xmpp.NewStanzaError(xmpp.RemoteServerTimeout, "the stream to "+to+" keeps closing"))
}

// outStream returns the pair's stream, started if there was none; nil
// after Shutdown.
func (s *Service) outStream(p pair) *outStream {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	if o := s.out[p]; o != nil {
		return o
	}
	o := newOutStream(s, p)
	s.out[p] = o
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		o.run()
	}()
	return o
}

// forget removes o from the table, if it is still the pair's stream.
func (s *Service) forget(o *outStream) {
	s.mu.Lock()
	if s.out[o.pair] == o {
		delete(s.out, o.pair)
	}
	s.mu.Unlock()
}

// Serve accepts server streams on l until Shutdown.
func (s *Service) Serve(l net.Listener) error { return s.serve(l, false) }

// ServeDirectTLS accepts server streams with TLS from the first byte
// (XEP-0368, ALPN xmpp-server) on l until Shutdown.
func (s *Service) ServeDirectTLS(l net.Listener) error { return s.serve(l, true) }

func (s *Service) serve(l net.Listener, directTLS bool) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
	for {
		c, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("s2s: accept: %w", err)
		}
		in := newInStream(s, c)
		in.directTLS = directTLS
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return ErrServerClosed
		}
		s.in[in] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			in.serve()
			s.mu.Lock()
			delete(s.in, in)
			s.mu.Unlock()
			s.claimIn(in.key, "")
		}()
	}
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("s2s: closed")

// Shutdown stops accepting, closes every stream with <system-shutdown/>
// (what still waits for an outbound stream bounces), and waits for the
// streams' goroutines or ctx.
func (s *Service) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for _, l := range s.listeners {
		l.Close()
	}
	outs := make([]*outStream, 0, len(s.out))
	for _, o := range s.out {
		outs = append(outs, o)
	}
	ins := make([]*inStream, 0, len(s.in))
	for in := range s.in {
		ins = append(ins, in)
	}
	s.mu.Unlock()
	s.cancel()
	for _, o := range outs {
		o.shutdown()
	}
	for _, in := range ins {
		in.shutdown()
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("s2s: shutdown: %w", ctx.Err())
	}
}

// Streams returns how many outbound and inbound streams are open or
// opening.
func (s *Service) Streams() (out, in int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.out), len(s.in)
}

// verifyCert checks a peer's chain for domain (RFC 6125's DNS-ID) against
// the configured roots. A client certificate is checked the same way as
// a server's: the peer is a server either way.
func (s *Service) verifyCert(chain []*x509.Certificate, domain string) error {
	if len(chain) == 0 {
		return errors.New("no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{
		DNSName:       domain,
		Roots:         s.cfg.Roots,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	return err
}

// claimIn moves an inbound stream's count from the key old to new (a
// remote domain, or an address; "" is none), unless new is at
// MaxStreamsPerDomain: then it reports false and counts nothing.
func (s *Service) claimIn(old, new string) bool {
	if old == new {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if new != "" {
		if max := s.cfg.MaxStreamsPerDomain; max > 0 && s.inPerKey[new] >= max {
			s.refused.Add(1)
			return false
		}
		s.inPerKey[new]++
	}
	if old != "" {
		if s.inPerKey[old]--; s.inPerKey[old] <= 0 {
			delete(s.inPerKey, old)
		}
	}
	return true
}

// pong takes the answer to an outbound stream's ping, reporting whether
// st was one: a result or error (XEP-0199 §4.3: an error answers too)
// from the pinged domain itself to the pinging one.
func (s *Service) pong(st *xmpp.Stanza) bool {
	if st.Kind != xmpp.KindIQ || (st.Type != "result" && st.Type != "error") || !strings.HasPrefix(st.ID, pingPrefix) {
		return false
	}
	s.mu.Lock()
	o := s.pings[st.ID]
	ok := o != nil && st.From.String() == o.remote && st.To.String() == o.local
	if ok {
		delete(s.pings, st.ID)
	}
	s.mu.Unlock()
	if !ok {
		return false
	}
	s.pingsAnswered.Add(1)
	select {
	case o.pong <- st.ID:
	default:
	}
	return true
}
