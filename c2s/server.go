package c2s

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/c2s/sasl"
	"github.com/parley-im/parley/internal/clientaddr"
	"github.com/parley-im/parley/internal/ratelog"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// Router is what a session needs from the server: somewhere to send the
// stanzas of its user, and a registry of bound sessions. The server package
// satisfies it.
type Router interface {
	// Route delivers a stanza whose from the session has already stamped.
	Route(st *xmpp.Stanza)
	// Bind registers a session under its full JID. A session already bound
	// to that JID is replaced: the router closes it with <conflict/>.
	Bind(s *Session) error
	// Unbind removes a session; it is a no-op for a session that was
	// replaced or never bound.
	Unbind(s *Session)
	// Undelivered takes back stanzas that s queued but will never write,
	// because its connection failed or is gone. s is closing by then, so
	// Deliver refuses it anything more: the router routes them as if s
	// had already gone (RFC 6121 §8.5.3.2: a message to a resource that
	// is not there goes to the bare JID). It is called from s's writer,
	// once at most, holding no lock of s; the elements are in the order
	// they were queued and must not be changed, since other sessions may
	// hold them too.
	Undelivered(s *Session, els []*etree.Element)
}

// NonzaRouter is a Router that also takes the top-level elements a bound
// session sends that are not stanzas and that c2s does not handle itself
// (XEP-0352's <active/> and <inactive/>, say). Nonza reports whether
// someone took el; an element nobody takes ends the stream with
// <unsupported-stanza-type/>, as RFC 6120 §4.9.3.24 says.
type NonzaRouter interface {
	Nonza(s *Session, el *etree.Element) bool
}

// AckRouter is a Router with work to finish before the server
// acknowledges what a client sent (XEP-0198's <a h/> and <resumed h/>):
// an archived message is committed before it is acknowledged. BeforeAck
// runs on the session's goroutine, before it reads on; it may wait for
// the disk, not for the network.
type AckRouter interface {
	BeforeAck(s *Session)
}

// DetachRouter is a Router told when a resumable session detaches
// (XEP-0198: its connection is gone and it waits for a resume), with the
// stanzas it has not written or the client did not acknowledge, in order:
// push notifications (XEP-0357) wake the client's device for them.
// Detached is called once per detach, from the session's goroutine,
// holding no lock of s; the elements must not be changed.
type DetachRouter interface {
	Detached(s *Session, pending []*etree.Element)
}

// Accounts finds the account of a user of a local host, for SASL.
type Accounts interface {
	Account(ctx context.Context, host, username string) (storage.Account, error)
}

// Config is what a Server needs. Router, Accounts, TLS and IsLocalHost are
// required; zero limits take the defaults documented on each field.
type Config struct {
	Router   Router
	Accounts Accounts
	// TLS serves STARTTLS and direct TLS; its GetCertificate picks the
	// host's certificate by SNI.
	TLS *tls.Config
	// IsLocalHost reports whether domain is a host whose users log in here.
	IsLocalHost func(domain string) bool
	// Registrar serves in-band registration; nil means none.
	Registrar Registrar
	// ExtraFeatures returns stream features the server announces for a
	// host, before and after authentication (caps, roster versioning);
	// nil means none. The elements are copied.
	ExtraFeatures func(host string, authenticated bool) []*etree.Element
	// RequireTLS refuses authentication on an unencrypted stream.
	RequireTLS bool
	// AllowPlain offers SASL PLAIN on encrypted streams.
	AllowPlain bool
	// Iterations is the SCRAM iteration count of new keys; an unknown
	// user's fake exchange announces it when KeyIterations gives nothing.
	// Zero means the sasl default.
	Iterations int
	// FakeSecret keys unknown users' fake SCRAM salts: see
	// sasl.Config.FakeSecret. Empty means one drawn per process.
	FakeSecret []byte
	// KeyIterations returns the iteration counts of a host's accounts'
	// keys, for unknown users' fake exchanges (sasl.Config.KeyIterations);
	// nil means none are known. It is called at every SASL exchange and
	// must be cheap (the server caches).
	KeyIterations func(host string) []sasl.IterationCount
	// Limits bound what a client may send.
	Limits xmpp.Limits
	// Queue is the number of stanzas that may wait for one session's
	// writer; default DefaultQueue.
	Queue int
	// QueueBytes bounds the memory those stanzas hold, as weight
	// estimates it; default DefaultQueueBytes. One stanza is always let in when
	// nothing waits, so the largest one gets through.
	QueueBytes int64
	// IdleTimeout closes a stream that sent nothing for this long with
	// <connection-timeout/>; 0 means never. A configuration's default is
	// DefaultIdleTimeout.
	IdleTimeout time.Duration
	// ParkAfter is how long a bound session waits for its client in its
	// own goroutine; after that it parks, holding no goroutine until the
	// client sends again (on systems without epoll it never parks). 0
	// turns off the whole idle-memory machinery (idlemem.go): besides
	// parking, the wait without a read buffer and the shared writer
	// goroutines. A configuration's default is DefaultParkAfter.
	ParkAfter time.Duration
	// ResumeTimeout is how long a session with stream management
	// (XEP-0198) whose connection is gone stays bound for its client to
	// resume it; 0 means sessions are not resumable. A configuration's
	// default is DefaultResumeTimeout.
	ResumeTimeout time.Duration
	// Tokens stores FAST tokens (XEP-0484), offered in SASL2 with
	// HT-SHA-256-NONE; nil means no FAST.
	Tokens Tokens
	// TokenTTL is how long a FAST token is good for; default
	// DefaultTokenTTL. A token used in the second half of its life is
	// replaced by a new one.
	TokenTTL time.Duration
	// ResumeLocation is the address a client should resume at (the
	// location of XEP-0198's <enabled/>); empty means this one, and no
	// location is sent.
	ResumeLocation string
	// WriteTimeout bounds one flush to a client; default
	// DefaultWriteTimeout.
	WriteTimeout time.Duration
	// HandshakeTimeout bounds the TLS handshake and everything before
	// bind; default DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// AuthFailures is how many failed SASL attempts a stream may make
	// before it is closed; default DefaultAuthFailures.
	AuthFailures int
	// ChannelBinding offers SCRAM-*-PLUS and XEP-0440 in the SASL
	// mechanisms, and refuses a client's "y" as a downgrade: see
	// sasl.Config.ChannelBinding for why it is off by default.
	ChannelBinding bool
	// Logins slow password guessing down; zero fields take their
	// defaults.
	Logins LoginLimits
	// RegistrationsPerIP is how many in-band registrations one IP address
	// may attempt per minute; default DefaultRegistrationsPerIP, negative
	// means no limit.
	RegistrationsPerIP int
	// UnauthenticatedPerIP is how many connections from one IP address
	// may be open and not bound yet at once; past it a new one is closed
	// with <policy-violation/> (at once, without TLS, on the direct TLS
	// port). Default DefaultUnauthenticatedPerIP, negative means no limit. Logging in takes a
	// fraction of a second, so an office behind one NAT address rarely
	// has more than a few at once, while a flood of streams that never
	// log in is held to this many (each also closed HandshakeTimeout
	// after accept, whatever it sends).
	UnauthenticatedPerIP int
	// SMCounts keeps the counts of ended resumable sessions across a
	// restart (Shutdown saves them, RestoreSMCounts reads them back);
	// nil keeps them in memory only.
	SMCounts SMCounts
	// Logger receives the server's logs; default slog.Default().
	Logger *slog.Logger
}

// The defaults of Config: NewServer gives them to the fields left zero, and
// package conf takes from here the defaults of the keys that set those
// fields ([limits] queue, queue_bytes, auth_failures, registrations_per_ip,
// unauthenticated_per_ip; [c2s] idle_timeout, park_after). They are written
// nowhere else. They are untyped so that a config's sizes can use them as
// they are.
const (
	// DefaultQueue is how many stanzas may wait for one session's writer:
	// ejabberd's max_fsm_queue. A join to a room of N occupants queues
	// N+2 stanzas at once (XEP-0045 §7.2.3), so a room of 1,000 needs more
	// than 1,000; DefaultQueueBytes bounds the memory all the same.
	DefaultQueue = 10000
	// DefaultQueueBytes is the memory those stanzas may hold: 8 MiB.
	DefaultQueueBytes = 8 << 20
	// DefaultWriteTimeout bounds one flush to a client.
	DefaultWriteTimeout = 30 * time.Second
	// DefaultHandshakeTimeout bounds everything before bind, so it is
	// also the longest a stream that does not log in stays open.
	DefaultHandshakeTimeout = 30 * time.Second
	// DefaultAuthFailures is how many failed SASL attempts a stream may
	// make before it is closed.
	DefaultAuthFailures = 3
	// DefaultRegistrationsPerIP is how many in-band registrations one
	// address may attempt per minute.
	DefaultRegistrationsPerIP = 10
	// DefaultUnauthenticatedPerIP is how many connections from one
	// address may be open and not bound at once.
	DefaultUnauthenticatedPerIP = 32

	// DefaultIdleTimeout is the idle timeout a configuration starts from.
	// NewServer does not fill it in: a zero Config.IdleTimeout means
	// never.
	DefaultIdleTimeout = 5 * time.Minute
	// DefaultParkAfter is the ParkAfter a configuration starts from.
	// NewServer does not fill it in: a zero Config.ParkAfter turns the
	// idle-memory machinery off.
	DefaultParkAfter = 10 * time.Second
	// DefaultTokenTTL is the TokenTTL of a Config that sets none.
	DefaultTokenTTL = 30 * 24 * time.Hour
	// DefaultResumeTimeout is the ResumeTimeout a configuration starts
	// from: Prosody's smacks_hibernation_time is 5 minutes too.
	DefaultResumeTimeout = 5 * time.Minute
)

func (c *Config) setDefaults() {
	c.Limits = c.Limits.WithDefaults()
	if c.TokenTTL <= 0 {
		c.TokenTTL = DefaultTokenTTL
	}
	if c.Queue <= 0 {
		c.Queue = DefaultQueue
	}
	if c.QueueBytes <= 0 {
		c.QueueBytes = DefaultQueueBytes
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.AuthFailures <= 0 {
		c.AuthFailures = DefaultAuthFailures
	}
	c.Logins.setDefaults(c.HandshakeTimeout)
	if c.RegistrationsPerIP == 0 {
		c.RegistrationsPerIP = DefaultRegistrationsPerIP
	}
	if c.UnauthenticatedPerIP == 0 {
		c.UnauthenticatedPerIP = DefaultUnauthenticatedPerIP
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("c2s: server closed")

// Server accepts client connections and runs one Session for each.
type Server struct {
	cfg Config

	// mu guards listeners, sessions and closed. It is never held while
	// calling into a session or the router.
	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	sessions  map[*Session]struct{}
	closed    bool
	wg        sync.WaitGroup

	// idle is the idle-memory machinery (idlemem.go): what saves memory
	// while sessions wait. The session's lifecycle calls it at a few
	// points; plainIdle when Config.ParkAfter is 0.
	idle idleMem

	// drainBy is when, during Shutdown, every write must be over (Unix
	// nanoseconds; 0 before Shutdown): see Session.flush.
	drainBy atomic.Int64

	logins        *loginGuard         // failed logins
	registrations *clientaddr.Limiter // registration attempts; nil: no limit

	// refusals rations the logging of refusals, refusalCounts counts
	// them (lograte.go).
	refusals      ratelog.Limiter
	refusalCounts counts

	// unauth counts, under mu, the connections of each address that are
	// not bound yet; refused counts those closed for too many.
	unauth  map[string]int
	refused atomic.Int64

	// resumable holds, under mu, the sessions that may be resumed by
	// their stream management id (sm.go); nil until the first.
	resumable map[string]*Session
	// gone remembers the counts of resumable sessions that ended, for
	// the <failed h/> of a late resume (sm.go).
	gone smGone

	// tokenKey derives FAST tokens' secrets from their stored ids
	// (sasl2.go), from Config.FakeSecret.
	tokenKey []byte
}

// NewServer returns a Server; call Serve for each listener.
func NewServer(cfg Config) *Server {
	cfg.setDefaults()
	var registrations *clientaddr.Limiter
	if cfg.RegistrationsPerIP > 0 {
		registrations = clientaddr.NewLimiter(cfg.RegistrationsPerIP, time.Minute, time.Now)
	}
	s := &Server{
		cfg:           cfg,
		listeners:     make(map[net.Listener]struct{}),
		sessions:      make(map[*Session]struct{}),
		logins:        newLoginGuard(cfg.Logins),
		unauth:        make(map[string]int),
		registrations: registrations,
	}
	s.idle = newIdleMem(s)
	s.tokenKey = newTokenKey(cfg.FakeSecret)
	return s
}

// Serve accepts connections on l until Shutdown. With directTLS the
// connection starts with a TLS handshake (XEP-0368); otherwise it starts in
// the clear and may upgrade with STARTTLS.
func (s *Server) Serve(l net.Listener, directTLS bool) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	s.idle.start()
	var tlsConfig *tls.Config
	if directTLS {
		// One config for the listener's connections: each tls.Conn keeps
		// the one it was made with for its whole life.
		tlsConfig = s.cfg.TLS.Clone()
		tlsConfig.NextProtos = []string{"xmpp-client"}
	}
	var delay time.Duration
	for {
		conn, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Out of file descriptors and the like: back off.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.cfg.Logger.Warn("c2s: accept failed, backing off", "err", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("c2s: accept on %s: %w", l.Addr(), err)
		}
		delay = 0
		conn = s.idle.wrap(conn)
		if directTLS {
			conn = tls.Server(conn, tlsConfig)
		}
		if !s.start(conn, directTLS) {
			conn.Close()
			return ErrServerClosed
		}
	}
}

// serveSession runs sess on its own goroutine, to its end. It is the
// goroutine's first frame, and an idle session waits beneath it: it is
// kept small (see Session.idle).
// A parked session's goroutine returns early, and the one that resumes it
// comes here again.
func (s *Server) serveSession(sess *Session) {
	if sess.serve() {
		return
	}
	s.ended(sess)
}

// ended forgets a session that ended: in its goroutine, or at the expiry
// of a detached one (which has none).
func (s *Server) ended(sess *Session) {
	s.idle.done(sess)
	s.mu.Lock()
	delete(s.sessions, sess)
	s.authenticated(sess)
	if sm := sess.sm; sm != nil && sm.id != "" && s.resumable[sm.id] == sess {
		delete(s.resumable, sm.id)
	}
	s.mu.Unlock()
	s.wg.Done()
}

// admit counts a new session against its address's unauthenticated
// connections, or marks it refused when the address has too many; s.mu
// is held.
func (s *Server) admit(sess *Session) {
	limit := s.cfg.UnauthenticatedPerIP
	if limit < 0 {
		return
	}
	ip := remoteIP(sess.tcp.RemoteAddr())
	if s.unauth[ip] >= limit {
		sess.refused = true
		s.refused.Add(1)
		return
	}
	s.unauth[ip]++
	sess.unauth = true
}

// authenticated takes a session off its address's count of
// unauthenticated connections, once: at bind, or at its end; s.mu is
// held.
func (s *Server) authenticated(sess *Session) {
	if !sess.unauth {
		return
	}
	sess.unauth = false
	ip := remoteIP(sess.tcp.RemoteAddr())
	if s.unauth[ip]--; s.unauth[ip] <= 0 {
		delete(s.unauth, ip)
	}
}

// Refusals returns how many streams ended with each stream error
// ("stream:<condition>") and how many SASL exchanges failed with each
// condition ("sasl:<condition>"), since the server started.
func (s *Server) Refusals() map[string]int64 { return s.refusalCounts.snapshot() }

// Refused returns how many connections were closed at accept for too many
// unauthenticated ones from their address.
func (s *Server) Refused() int64 { return s.refused.Load() }

// Shutdown stops accepting, closes every stream with <system-shutdown/>
// (which ends every session's context, and so the store calls they wait
// on) and waits until the sessions are gone or ctx ends. When ctx ends
// first, it logs the sessions still open, with what each is doing, and
// returns an error that counts them.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	sessions := make([]*Session, 0, len(s.sessions))
	for sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	// Writes get half the time left: a client that does not read its
	// stream must not hold its session past ctx, or what waits in its
	// queue could not be handed back (stored offline) before the store
	// closes. At least a second, though: a write cut short breaks the TLS
	// record it was writing, and a client that reads must get its last
	// stanzas and the stream's end whole even when ctx is nearly spent.
	var drainBy time.Time
	if dl, ok := ctx.Deadline(); ok {
		drainBy = time.Now().Add(max(time.Until(dl)/2, minDrain))
		s.drainBy.Store(drainBy.UnixNano())
	}
	for _, sess := range sessions {
		sess.Close(xmpp.NewStreamError(xmpp.SystemShutdown, "the server is shutting down"))
		if !drainBy.IsZero() {
			// A writer blocked now waits no longer either.
			_ = sess.tcp.SetWriteDeadline(drainBy)
		}
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	// The idle-memory machinery goes once the sessions are gone, or
	// when ctx ends: every parked one was woken by Close above.
	defer s.idle.stop()
	select {
	case <-done:
		s.saveSMCounts(ctx, sessions)
		return nil
	case <-ctx.Done():
		// The sessions still open still count: only the ended ones'.
		s.saveSMCounts(ctx, nil)
		// Name who held the shutdown up, for the operator.
		open := s.sessionList(nil)
		s.logHanging(open)
		return fmt.Errorf("c2s: %d sessions still open: %w", len(open), ctx.Err())
	}
}

// sessionList appends the open sessions to list.
func (s *Server) sessionList(list []*Session) []*Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sess := range s.sessions {
		list = append(list, sess)
	}
	return list
}

// minDrain is the least time Shutdown gives a session's last writes.
const minDrain = time.Second

// Sessions returns how many sessions are open.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// LoginStats reads the login limits' counters.
func (s *Server) LoginStats() LoginStats { return s.logins.stats() }

// newElementNS is a shorthand.
func newElementNS(ns, local string) *etree.Element { return xmpp.NewElementNS(ns, local) }
