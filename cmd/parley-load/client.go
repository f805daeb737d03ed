package main

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/xmpp"
	"mellium.im/sasl"
)

// closeWait is how long Close waits for the server's closing tag before it
// drops the connection.
const closeWait = 2 * time.Second

// Conn is one client stream of the load tool. Negotiation runs in the
// goroutine that calls login; after bind, one reader goroutine per Conn
// reads what the server sends and hands it to the scenario's handler.
// Writes come from any goroutine and are serialized by wmu.
type Conn struct {
	nc net.Conn // the transport: TCP, then TLS after STARTTLS; or a wsConn
	r  *xmpp.Reader
	// ws is XMPP over WebSocket: <open/> and <close/> frame the stream,
	// and there is no STARTTLS.
	ws bool
	// tls is the connection's TLS state once it has one: after STARTTLS,
	// or from the start over wss://.
	tlsState *tls.ConnectionState
	// JID is the bound full JID.
	JID xmpp.JID
	// Index is the account's number in the -users pattern.
	Index int
	// Mech is the SASL mechanism the stream authenticated with.
	Mech string

	features *etree.Element
	step     time.Duration // bound on one negotiation step or write
	stop     func() bool   // stops closing nc when the run's context ends

	wmu sync.Mutex

	// sm is stream management (XEP-0198) on: the reader counts the
	// stanzas it reads in h and answers every <r/>.
	sm bool
	h  uint32

	started   bool          // the reader goroutine runs; set before it starts
	done      chan struct{} // closed when the reader goroutine exits
	readErr   error         // why the reader stopped; read after done
	closing   atomic.Bool   // Close was called or the run ended: the stream's end is expected
	closeOnce sync.Once
}

// authError is a SASL <failure/>.
type authError struct {
	mech, condition, text string
}

func (e *authError) Error() string {
	s := "authentication (" + e.mech + ") failed: " + e.condition
	if e.text != "" {
		s += " (" + e.text + ")"
	}
	return s
}

// dialStream connects to o.Addr, opens a stream to o.Domain and negotiates
// STARTTLS. The connection is closed when ctx ends.
func dialStream(ctx context.Context, o *options) (*Conn, error) {
	return dialStreamBuf(ctx, o, 0)
}

// dialStreamBuf is dialStream with a socket receive buffer of rcvBuf
// bytes, set before the connection is made so that the TCP window stays
// that small (0: the system's default, which grows).
func dialStreamBuf(ctx context.Context, o *options, rcvBuf int) (*Conn, error) {
	if o.Transport == transportWS {
		return dialWSStream(ctx, o)
	}
	d := net.Dialer{Timeout: o.StepTimeout}
	if rcvBuf > 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			if err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvBuf)
			}); err != nil {
				return err
			}
			return serr
		}
	}
	nc, err := d.DialContext(ctx, "tcp", o.Addr)
	if err != nil {
		return nil, err
	}
	c := &Conn{
		nc:   nc,
		r:    xmpp.NewReader(nc, xmpp.Limits{MaxStanza: 1 << 20}),
		step: o.StepTimeout,
		done: make(chan struct{}),
	}
	// Closing the TCP connection also ends a TLS connection over it.
	c.stop = context.AfterFunc(ctx, func() {
		c.closing.Store(true)
		nc.Close()
	})
	fail := func(err error) (*Conn, error) {
		c.stop()
		nc.Close()
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, err
	}
	if err := c.open(o.Domain); err != nil {
		return fail(err)
	}
	if xmpp.Child(c.features, xmpp.NSTLS, "starttls") == nil {
		return fail(errors.New("the server does not offer STARTTLS"))
	}
	if err := c.startTLS(ctx, o); err != nil {
		return fail(err)
	}
	return c, nil
}

// login connects and logs account i in: STARTTLS, SASL, bind, the session
// iq when the server requires it, and initial presence when presence is
// set. The stream is ready for the reader when it returns.
func login(ctx context.Context, o *options, i int, presence bool) (*Conn, error) {
	return loginBuf(ctx, o, i, presence, 0)
}

// loginBuf is login with the socket receive buffer of dialStreamBuf.
func loginBuf(ctx context.Context, o *options, i int, presence bool, rcvBuf int) (*Conn, error) {
	c, err := dialStreamBuf(ctx, o, rcvBuf)
	if err != nil {
		return nil, err
	}
	c.Index = i
	user := o.user(i)
	err = c.authenticate(o, user)
	if err == nil {
		err = c.bind()
	}
	if err == nil && o.SM {
		err = c.enableSM()
	}
	if err == nil && presence {
		err = c.send("<presence/>")
	}
	if err != nil {
		c.stop()
		c.nc.Close()
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, fmt.Errorf("%s: %w", user, err)
	}
	return c, nil
}

// deadline bounds the next negotiation step.
func (c *Conn) deadline() {
	_ = c.nc.SetDeadline(time.Now().Add(c.step))
}

// send writes s as it is. XML in s must already be escaped.
func (c *Conn) send(s string) error {
	return c.write([]byte(s))
}

// write writes b in one call: a whole stanza goes out as one TLS record.
func (c *Conn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.step))
	_, err := c.nc.Write(b)
	return err
}

// open sends a stream header and reads the server's header and features.
func (c *Conn) open(domain string) error {
	c.deadline()
	header := "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='" + xmpp.NSStream +
		"' to='" + escape(domain) + "' version='1.0'>"
	if c.ws {
		header = wsFrameOpen(domain)
	}
	if err := c.send(header); err != nil {
		return err
	}
	c.r.Restart()
	if _, err := c.r.ReadHeader(); err != nil {
		return fmt.Errorf("stream header: %w", err)
	}
	el, err := c.next()
	if err != nil {
		return fmt.Errorf("stream features: %w", err)
	}
	if !isStream(el, "features") {
		return fmt.Errorf("expected <stream:features/>, got <%s/>", el.Tag)
	}
	c.features = el
	return nil
}

// next reads the next element. A stream error comes back as a
// *xmpp.StreamError, the server's closing tag as xmpp.ErrStreamClosed.
func (c *Conn) next() (*etree.Element, error) {
	el, err := c.r.ReadElement()
	if err != nil {
		return nil, err
	}
	if se := xmpp.ParseStreamError(el); se != nil {
		return el, se
	}
	return el, nil
}

func isStream(el *etree.Element, local string) bool {
	return el != nil && el.Tag == local && xmpp.NS(el) == xmpp.NSStream
}

// startTLS negotiates STARTTLS and opens the stream again.
func (c *Conn) startTLS(ctx context.Context, o *options) error {
	c.deadline()
	if err := c.send("<starttls xmlns='" + xmpp.NSTLS + "'/>"); err != nil {
		return err
	}
	el, err := c.next()
	if err != nil {
		return fmt.Errorf("starttls: %w", err)
	}
	if el.Tag != "proceed" {
		return fmt.Errorf("starttls: the server answered <%s/>", el.Tag)
	}
	tc := tls.Client(c.nc, o.tls)
	hctx, cancel := context.WithTimeout(ctx, c.step)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	cs := tc.ConnectionState()
	c.nc, c.tlsState = tc, &cs
	c.r.Reset(tc)
	return c.open(o.Domain)
}

// mechanisms maps the SASL mechanisms the tool speaks to mellium.im/sasl.
var mechanisms = map[string]sasl.Mechanism{
	"SCRAM-SHA-256-PLUS": sasl.ScramSha256Plus,
	"SCRAM-SHA-256":      sasl.ScramSha256,
	"SCRAM-SHA-1-PLUS":   sasl.ScramSha1Plus,
	"SCRAM-SHA-1":        sasl.ScramSha1,
	"PLAIN":              sasl.Plain,
}

// preferred is the order mechanisms are chosen in without -mech. The
// -PLUS variants are left to -mech: they cost the same to the server and
// not every server offers them.
var preferred = []string{"SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"}

// chooseMechanism picks want (when set) or the first preferred mechanism
// the server offers.
func chooseMechanism(offered []string, want string) (string, error) {
	has := func(m string) bool {
		for _, o := range offered {
			if o == m {
				return true
			}
		}
		return false
	}
	if want != "" {
		if !has(want) {
			return "", fmt.Errorf("the server does not offer %s (it offers %s)", want, strings.Join(offered, ", "))
		}
		return want, nil
	}
	for _, m := range preferred {
		if has(m) {
			return m, nil
		}
	}
	return "", fmt.Errorf("no mechanism in common: the server offers %s", strings.Join(offered, ", "))
}

// authenticate runs SASL with user's credentials and opens the
// authenticated stream.
func (c *Conn) authenticate(o *options, user string) error {
	var offered []string
	if m := xmpp.Child(c.features, xmpp.NSSASL, "mechanisms"); m != nil {
		for _, el := range m.SelectElements("mechanism") {
			offered = append(offered, strings.TrimSpace(el.Text()))
		}
	}
	name, err := chooseMechanism(offered, o.Mech)
	if err != nil {
		return err
	}
	opts := []sasl.Option{
		sasl.Credentials(func() ([]byte, []byte, []byte) { return []byte(user), []byte(o.Password), nil }),
		sasl.RemoteMechanisms(offered...),
	}
	if c.tlsState != nil {
		opts = append(opts, sasl.TLSState(*c.tlsState))
	}
	n := sasl.NewClient(mechanisms[name], opts...)
	_, resp, err := n.Step(nil)
	if err != nil {
		return fmt.Errorf("sasl %s: %w", name, err)
	}
	c.deadline()
	if err := c.send("<auth xmlns='" + xmpp.NSSASL + "' mechanism='" + name + "'>" + encodeSASL(resp) + "</auth>"); err != nil {
		return err
	}
	scram := strings.HasPrefix(name, "SCRAM-")
	for {
		el, err := c.next()
		if err != nil {
			return fmt.Errorf("sasl: %w", err)
		}
		if xmpp.NS(el) != xmpp.NSSASL {
			return fmt.Errorf("sasl: unexpected <%s/>", el.Tag)
		}
		data, err := decodeSASL(el.Text())
		if err != nil {
			return fmt.Errorf("sasl: %w", err)
		}
		switch el.Tag {
		case "challenge":
			// A server may also send SCRAM's server-final message as a
			// challenge; Step verifies it then, and the answer is empty.
			_, resp, err := n.Step(data)
			if err != nil {
				return fmt.Errorf("sasl %s: %w", name, err)
			}
			c.deadline()
			if err := c.send("<response xmlns='" + xmpp.NSSASL + "'>" + encodeSASL(resp) + "</response>"); err != nil {
				return err
			}
		case "success":
			if len(data) > 0 {
				if _, _, err := n.Step(data); err != nil {
					return fmt.Errorf("sasl %s: the server's proof: %w", name, err)
				}
			}
			if scram && n.State()&sasl.StepMask != sasl.ValidServerResponse {
				return fmt.Errorf("sasl %s: success without the server's proof", name)
			}
			c.Mech = name
			return c.open(o.Domain)
		case "failure":
			e := &authError{mech: name}
			for _, ch := range el.ChildElements() {
				if ch.Tag == "text" {
					e.text = ch.Text()
				} else {
					e.condition = ch.Tag
				}
			}
			return e
		default:
			return fmt.Errorf("sasl: unexpected <%s/>", el.Tag)
		}
	}
}

// encodeSASL is the text of <auth/> or <response/>: "=" for an empty
// message (RFC 6120 §6.4.2).
func encodeSASL(b []byte) string {
	if len(b) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(b)
}

func decodeSASL(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "=" {
		return nil, nil
	}
	return base64.StdEncoding.DecodeString(s)
}

// bind asks the server for a resource (RFC 6120 §7), then establishes a
// session when the server offers one that is not optional (RFC 3921).
func (c *Conn) bind() error {
	if xmpp.Child(c.features, xmpp.NSBind, "bind") == nil {
		return errors.New("the server does not offer resource binding")
	}
	res, err := c.iq("bind", "<iq type='set' id='bind'><bind xmlns='"+xmpp.NSBind+"'/></iq>")
	if err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	jidEl := res.FindElement("bind/jid")
	if jidEl == nil {
		return errors.New("bind: no JID in the result")
	}
	if c.JID, err = xmpp.Parse(strings.TrimSpace(jidEl.Text())); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	if s := xmpp.Child(c.features, xmpp.NSSession, "session"); s != nil && s.SelectElement("optional") == nil {
		if _, err := c.iq("session", "<iq type='set' id='session'><session xmlns='"+xmpp.NSSession+"'/></iq>"); err != nil {
			return fmt.Errorf("session: %w", err)
		}
	}
	return nil
}

// iq sends an iq during negotiation and returns its result; an error
// answer comes back as a *xmpp.StanzaError.
func (c *Conn) iq(id, raw string) (*etree.Element, error) {
	c.deadline()
	if err := c.send(raw); err != nil {
		return nil, err
	}
	for {
		el, err := c.next()
		if err != nil {
			return nil, err
		}
		if el.Tag != "iq" || el.SelectAttrValue("id", "") != id {
			continue // whatever the server sends meanwhile
		}
		switch el.SelectAttrValue("type", "") {
		case "result":
			return el, nil
		case "error":
			if se := xmpp.ParseStanzaError(el); se != nil {
				return nil, se
			}
			return nil, errors.New("an error without a condition")
		}
	}
}

// start clears the negotiation deadlines and starts the reader goroutine,
// which passes every element but the iqs it answers itself to handle (may
// be nil). handle runs on the reader goroutine and must not block for
// long.
func (c *Conn) start(handle func(*Conn, *etree.Element)) {
	_ = c.nc.SetDeadline(time.Time{})
	c.started = true
	go c.read(handle)
}

func (c *Conn) read(handle func(*Conn, *etree.Element)) {
	defer close(c.done)
	for {
		el, err := c.next()
		if err != nil {
			c.readErr = err
			return
		}
		if c.sm {
			if xmpp.NS(el) == nsSM {
				if el.Tag == "r" {
					_ = c.send("<a xmlns='" + nsSM + "' h='" + strconv.FormatUint(uint64(c.h), 10) + "'/>")
				}
				continue
			}
			c.h++ // every stanza read is handled: acked at the next <r/>
		}
		if xmpp.KindOf(el) == xmpp.KindIQ {
			if t := el.SelectAttrValue("type", ""); t == "get" || t == "set" {
				c.answerIQ(el)
				continue
			}
		}
		if handle != nil {
			handle(c, el)
		}
	}
}

// nsSM is stream management's namespace (XEP-0198).
const nsSM = "urn:xmpp:sm:3"

// enableSM enables stream management, without resumption: the reader
// then acknowledges every stanza the server asks about.
func (c *Conn) enableSM() error {
	c.deadline()
	if err := c.send("<enable xmlns='" + nsSM + "'/>"); err != nil {
		return err
	}
	el, err := c.next()
	if err != nil {
		return fmt.Errorf("enable stream management: %w", err)
	}
	if el.Tag != "enabled" || xmpp.NS(el) != nsSM {
		return fmt.Errorf("enable stream management: got <%s/>", el.Tag)
	}
	c.sm = true
	return nil
}

// answerIQ answers a request from the server: a ping (XEP-0199) with a
// result, anything else with service-unavailable.
func (c *Conn) answerIQ(el *etree.Element) {
	id, from := escape(el.SelectAttrValue("id", "")), el.SelectAttrValue("from", "")
	to := ""
	if from != "" {
		to = " to='" + escape(from) + "'"
	}
	if p := xmpp.Child(el, xmpp.NSPing, "ping"); p != nil {
		_ = c.send("<iq type='result' id='" + id + "'" + to + "/>")
		return
	}
	_ = c.send("<iq type='error' id='" + id + "'" + to + "><error type='cancel'><service-unavailable xmlns='" +
		xmpp.NSStanzas + "'/></error></iq>")
}

// Dropped reports whether the server ended the stream before Close, and
// why.
func (c *Conn) Dropped() (bool, error) {
	if !c.started || c.closing.Load() {
		return false, nil
	}
	select {
	case <-c.done:
		return true, c.readErr
	default:
		return false, nil
	}
}

// Close ends the stream: it sends the closing tag, waits up to closeWait
// for the server's, and closes the connection.
func (c *Conn) Close() {
	c.closeOnce.Do(func() {
		c.closing.Store(true)
		// A stream that never started its reader (registration) has
		// nothing to wait for.
		closing := "</stream:stream>"
		if c.ws {
			closing = wsFrameClose
		}
		if c.send(closing) == nil && c.started {
			t := time.NewTimer(closeWait)
			select {
			case <-c.done:
			case <-t.C:
			}
			t.Stop()
		}
		c.stop()
		c.nc.Close()
		if c.started {
			<-c.done
		}
	})
}

// closeAll closes conns, many at a time.
func closeAll(conns []*Conn) {
	const parallel = 256
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for _, c := range conns {
		if c == nil {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Close()
			<-sem
		}()
	}
	wg.Wait()
}

// escape escapes s for XML text or an attribute value in quotes.
func escape(s string) string {
	if !strings.ContainsAny(s, "<>&'\"\r\n\t") {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		case '\'':
			b.WriteString("&apos;")
		case '"':
			b.WriteString("&quot;")
		case '\r':
			b.WriteString("&#xD;")
		case '\n':
			b.WriteString("&#xA;")
		case '\t':
			b.WriteString("&#x9;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
