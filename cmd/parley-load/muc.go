package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/xmpp"
)

// The MUC namespaces the scenario speaks (XEP-0045 §19.1) and the data
// forms one (XEP-0004), for the instant room.
const (
	nsMUC      = "http://jabber.org/protocol/muc"
	nsMUCUser  = "http://jabber.org/protocol/muc#user"
	nsMUCOwner = "http://jabber.org/protocol/muc#owner"
	nsXData    = "jabber:x:data"
	nsDelay    = "urn:xmpp:delay"
)

// mucResult is the JSON line of the muc scenario.
type mucResult struct {
	common
	Service   string `json:"service"`
	Rooms     int    `json:"rooms"`
	Occupants int    `json:"occupants"`
	Window    int    `json:"window"`
	BodyBytes int    `json:"body_bytes"`
	// OccupantRate is the messages per second each occupant offers
	// (-occupant-rate); 0 when they send as fast as the window lets them.
	OccupantRate float64 `json:"occupant_rate_per_s"`
	// Skipped counts the send slots that passed while an occupant was more
	// than one slot behind (its window full): the rate offered was lower
	// by that many messages.
	Skipped int64 `json:"rate_skipped,omitempty"`
	// Sent is the groupchat messages the occupants sent; Expected is the
	// deliveries they owe: each to every occupant of its room, the sender
	// included (the room reflects it, XEP-0045 §7.4).
	Sent     int64 `json:"sent"`
	Expected int64 `json:"expected"`
	// Delivered counts distinct deliveries: one message to one occupant.
	Delivered int64 `json:"delivered"`
	// Lost is Expected less Delivered after the drain; Duplicated counts
	// the copies that arrived a second time. Both must be 0.
	Lost       int64 `json:"lost"`
	Duplicated int64 `json:"duplicated"`
	// Bounced counts error replies to sent messages.
	Bounced int64 `json:"bounced"`
	// Foreign counts groupchat messages that were not this run's
	// (history, another room's), ignored.
	Foreign           int64    `json:"foreign"`
	DeliveriesPerS    float64  `json:"deliveries_per_s"`
	DeliveriesPerCPUS *float64 `json:"deliveries_per_server_cpu_s,omitempty"`
	// Latency is from the send to each delivery.
	Latency     latency `json:"latency"`
	DrainS      float64 `json:"drain_s"`
	RSSStartKiB int64   `json:"rss_start_kib,omitempty"`
	RSSPeakKiB  int64   `json:"rss_peak_kib,omitempty"`
}

// mucRoom is one room of the run and its occupants, slot k with nick o<k>.
type mucRoom struct {
	jid     string // room@service
	clients []*mucClient
}

// mucClient is one occupant: it sends to its room and checks that it
// receives every message of the room once.
type mucClient struct {
	c    *Conn
	room *mucRoom
	slot int
	nick string
	// win holds a token for each message sent and not yet reflected back.
	win  chan struct{}
	pace *pacer
	// setup gets the stanzas of the join (its own occupant's presence,
	// iq answers) until the run is armed.
	setup chan *etree.Element

	sent atomic.Int64
	// What the reader counts; seen and lat belong to the reader goroutine
	// and are read after it ended.
	delivered, duplicated, bounced, foreign atomic.Int64
	seen                                    [][]uint64 // per sender slot, a bit per sequence number
	lat                                     []time.Duration
}

// roomName is the local part of room i.
func roomName(i int) string { return "load" + strconv.Itoa(i) }

// runMUC runs the muc scenario: o.Rooms rooms of o.Occupants each, on the
// service o.MUCDomain; the first occupant creates its room and accepts
// the default configuration (an instant room), the others join; then
// every occupant sends groupchat messages for o.Duration, paced at
// o.OccupantRate with at most o.Window not yet reflected; then a drain.
func runMUC(ctx context.Context, o *options) report {
	r := &mucResult{Service: o.MUCDomain, Rooms: o.Rooms, Occupants: o.Occupants, Window: o.Window,
		BodyBytes: o.Size, OccupantRate: o.OccupantRate}
	n := o.Rooms * o.Occupants
	if err := prepare(ctx, o, n); err != nil {
		r.fail(err)
		return r
	}
	rooms := make([]*mucRoom, o.Rooms)
	clients := make([]*mucClient, n)
	for i := range rooms {
		rooms[i] = &mucRoom{jid: roomName(i) + "@" + o.MUCDomain}
		for k := range o.Occupants {
			cl := &mucClient{room: rooms[i], slot: k, nick: "o" + strconv.Itoa(k),
				win: make(chan struct{}, o.Window), setup: make(chan *etree.Element, 8),
				seen: make([][]uint64, o.Occupants)}
			rooms[i].clients = append(rooms[i].clients, cl)
			clients[i*o.Occupants+k] = cl
		}
	}
	var armed atomic.Bool
	handle := func(c *Conn, el *etree.Element) {
		cl := clients[c.Index]
		if armed.Load() {
			cl.receive(el)
			return
		}
		cl.beforeArmed(el)
	}
	o.progressf("logging in %d clients (%d rooms × %d occupants on %s)", n, o.Rooms, o.Occupants, o.MUCDomain)
	l := loginAll(ctx, o, n, o.Presence, true, handle)
	conns := l.conns
	defer func() { closeAll(conns) }()
	if !r.loggedIn(l) {
		return r
	}
	for i, cl := range clients {
		cl.c = l.conns[i]
	}
	o.progressf("joining the rooms")
	if err := joinRooms(ctx, o, rooms); err != nil {
		r.Errors++
		r.fail(err)
		return r
	}
	armed.Store(true)

	if o.OccupantRate > 0 {
		o.progressf("sending for %v, %g msgs/s per occupant, window %d, %d-byte bodies", o.Duration, o.OccupantRate, o.Window, o.Size)
	} else {
		o.progressf("sending for %v, window %d, %d-byte bodies", o.Duration, o.Window, o.Size)
	}
	m, err := startMeter(o.PID)
	if err != nil {
		r.fail(err)
		return r
	}
	var rss *rssSampler
	if o.PID > 0 {
		if rss, err = startRSS(o.PID, 50*time.Millisecond); err != nil {
			r.fail(err)
			return r
		}
	}
	if o.OccupantRate > 0 {
		for i, p := range newPacers(n, o.OccupantRate*float64(n), time.Now()) {
			clients[i].pace = p
		}
	}
	stop := make(chan struct{})
	sending := startSenders(ctx, stop, clients, o.Size)
	select {
	case <-time.After(o.Duration):
	case <-ctx.Done():
	}
	close(stop)
	sendErrs, sendErr := sending()

	r.DrainS, r.RSSStartKiB, r.RSSPeakKiB = drainAndStop(ctx, &r.common, o.Drain, func() (expected, done int64) {
		for _, cl := range clients {
			expected += cl.sent.Load() * int64(o.Occupants)
			done += cl.delivered.Load()
		}
		return expected, done
	}, m, rss)
	r.countDropped(conns)
	// Close before reading what the readers counted: they are done then.
	closeAll(conns)
	conns = nil
	var all []time.Duration
	for _, cl := range clients {
		r.Sent += cl.sent.Load()
		r.Delivered += cl.delivered.Load()
		r.Duplicated += cl.duplicated.Load()
		r.Bounced += cl.bounced.Load()
		r.Foreign += cl.foreign.Load()
		if cl.pace != nil {
			r.Skipped += cl.pace.skipped
		}
		all = append(all, cl.lat...)
	}
	r.Expected = r.Sent * int64(o.Occupants)
	r.Lost = r.Expected - r.Delivered
	r.Errors = sendErrs + r.DroppedStream + r.Bounced + r.Duplicated
	r.DeliveriesPerS = r.rate(r.Delivered)
	r.DeliveriesPerCPUS = r.perCPU(r.Delivered)
	r.Latency = summarize(all)
	r.fail(sendErr)
	if r.Duplicated > 0 {
		r.fail(fmt.Errorf("%d deliveries arrived twice", r.Duplicated))
	}
	if r.Lost != 0 {
		r.fail(fmt.Errorf("%d of %d deliveries were lost (%d messages bounced with an error)", r.Lost, r.Expected, r.Bounced))
	}
	return r
}

// joinRooms fills the rooms, all at once: in each, the first occupant
// joins, which creates the room, and when the room says so (status 201:
// created and locked until configured, XEP-0045 §10.1.1) accepts the
// default configuration (§10.1.2, an instant room; Prosody 0.12 and
// Parley both keep a new room locked until then); then the others join.
// A join is done when the occupant's own presence comes back.
func joinRooms(ctx context.Context, o *options, rooms []*mucRoom) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	fail := func(err error) { cancel(err) }
	for _, rm := range rooms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			created, err := rm.clients[0].join(ctx, o.StepTimeout)
			if err != nil {
				fail(err)
				return
			}
			if created {
				if err := rm.clients[0].instantRoom(ctx, o.StepTimeout); err != nil {
					fail(err)
					return
				}
			}
			var jwg sync.WaitGroup
			for _, cl := range rm.clients[1:] {
				jwg.Add(1)
				go func() {
					defer jwg.Done()
					if _, err := cl.join(ctx, o.StepTimeout); err != nil {
						fail(err)
					}
				}()
			}
			jwg.Wait()
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return nil
}

// join enters the room and waits for the occupant's own presence; created
// is whether the room says it was created by this join (status 201).
func (cl *mucClient) join(ctx context.Context, wait time.Duration) (created bool, err error) {
	occ := cl.room.jid + "/" + cl.nick
	// No history: messages of an earlier run are not this one's.
	if err := cl.c.send("<presence to='" + escape(occ) + "'><x xmlns='" + nsMUC + "'><history maxstanzas='0'/></x></presence>"); err != nil {
		return false, fmt.Errorf("joining %s: %w", occ, err)
	}
	el, err := cl.await(ctx, wait, "the presence of "+occ, func(el *etree.Element) bool {
		return el.Tag == "presence" && el.SelectAttrValue("from", "") == occ
	})
	if err != nil {
		return false, err
	}
	if el.SelectAttrValue("type", "") == "error" {
		return false, fmt.Errorf("joining %s as %s: %w", occ, cl.c.JID, stanzaError(el))
	}
	if x := xmpp.Child(el, nsMUCUser, "x"); x != nil {
		for _, s := range x.SelectElements("status") {
			if s.SelectAttrValue("code", "") == "201" {
				created = true
			}
		}
	}
	return created, nil
}

// instantRoom accepts the default configuration of the room the client
// has just created: an empty submitted form (XEP-0045 §10.1.2).
func (cl *mucClient) instantRoom(ctx context.Context, wait time.Duration) error {
	id := "instant-" + cl.nick
	if err := cl.c.send("<iq type='set' id='" + id + "' to='" + escape(cl.room.jid) + "'><query xmlns='" + nsMUCOwner +
		"'><x xmlns='" + nsXData + "' type='submit'/></query></iq>"); err != nil {
		return fmt.Errorf("configuring %s: %w", cl.room.jid, err)
	}
	el, err := cl.await(ctx, wait, "the answer to the instant room of "+cl.room.jid, func(el *etree.Element) bool {
		return el.Tag == "iq" && el.SelectAttrValue("id", "") == id
	})
	if err != nil {
		return err
	}
	if el.SelectAttrValue("type", "") != "result" {
		return fmt.Errorf("configuring %s as an instant room: %w", cl.room.jid, stanzaError(el))
	}
	return nil
}

// stanzaError returns the error of an error stanza.
func stanzaError(el *etree.Element) error {
	if se := xmpp.ParseStanzaError(el); se != nil {
		return se
	}
	return errors.New("an error without a condition")
}

// await waits up to wait for a stanza of the setup that matches.
func (cl *mucClient) await(ctx context.Context, wait time.Duration, what string, match func(*etree.Element) bool) (*etree.Element, error) {
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case el := <-cl.setup:
			if match(el) {
				return el, nil
			}
		case <-t.C:
			return nil, fmt.Errorf("%s: no answer within %v", what, wait)
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case <-cl.c.done:
			return nil, fmt.Errorf("%s: the stream ended: %v", what, cl.c.readErr)
		}
	}
}

// beforeArmed runs on the reader before the sending starts: the join's
// stanzas go to setup; the other occupants' presences and messages from
// before the run are not counted.
func (cl *mucClient) beforeArmed(el *etree.Element) {
	switch el.Tag {
	case "presence", "iq":
		if el.Tag == "presence" && el.SelectAttrValue("from", "") != cl.room.jid+"/"+cl.nick {
			return // another occupant's presence
		}
		select {
		case cl.setup <- el:
		default: // nobody waits for that many
		}
	case "message":
		if el.SelectElement("body") != nil {
			cl.foreign.Add(1) // not the subject: history, an earlier run's
		}
	}
}

// send sends groupchat messages to the room until stop is closed, with at
// most cap(win) not yet reflected, each in its slot when paced. The body
// is "t<send time> <sequence number> " and padding, size bytes.
func (cl *mucClient) send(ctx context.Context, stop <-chan struct{}, size int) error {
	return sendPaced(ctx, stop, sender{c: cl.c, win: cl.win, pace: cl.pace, sent: &cl.sent,
		head: "<message type='groupchat' to='" + escape(cl.room.jid) + "' id='g", withSeq: true}, size)
}

// receive runs on the reader for every stanza once the run is armed: it
// counts each groupchat message of the room once per sender and sequence
// number, and frees a window slot when the occupant's own comes back.
func (cl *mucClient) receive(el *etree.Element) {
	if el.Tag != "message" {
		return // presence, iq answers
	}
	if el.SelectAttrValue("type", "") == "error" {
		cl.bounced.Add(1)
		select {
		case <-cl.win:
		default:
		}
		return
	}
	body := el.SelectElement("body")
	if body == nil {
		return // a subject, a status message from the room
	}
	from := el.SelectAttrValue("from", "")
	nick, ok := strings.CutPrefix(from, cl.room.jid+"/o")
	if !ok || el.SelectAttrValue("type", "") != "groupchat" || xmpp.Child(el, nsDelay, "delay") != nil {
		cl.foreign.Add(1) // another room's, private, or history
		return
	}
	k, err := strconv.Atoi(nick)
	sentAt, err2 := sendTime(body.Text())
	seq, err3 := bodySeq(body.Text())
	if err != nil || err2 != nil || err3 != nil || k < 0 || k >= len(cl.seen) {
		cl.foreign.Add(1)
		return
	}
	bits := cl.seen[k]
	if w := seq / 64; w >= len(bits) {
		bits = append(bits, make([]uint64, max(w+1, 2*len(bits))-len(bits))...)
		cl.seen[k] = bits
	}
	if bits[seq/64]&(1<<(seq%64)) != 0 {
		cl.duplicated.Add(1)
		return
	}
	bits[seq/64] |= 1 << (seq % 64)
	cl.lat = append(cl.lat, time.Since(epoch)-sentAt)
	if k == cl.slot {
		select {
		case <-cl.win:
		default:
		}
	}
	cl.delivered.Add(1)
}

// bodySeq reads the sequence number after the send time in a body.
func bodySeq(body string) (int, error) {
	_, rest, ok := strings.Cut(body, " ")
	if !ok {
		return 0, errors.New("no sequence number")
	}
	if i := strings.IndexByte(rest, ' '); i >= 0 {
		rest = rest[:i]
	}
	seq, err := strconv.Atoi(rest)
	if err == nil && seq < 0 {
		err = errors.New("negative sequence number")
	}
	return seq, err
}

func (r *mucResult) summary(w io.Writer) {
	paced := ", unpaced"
	if r.OccupantRate > 0 {
		paced = fmt.Sprintf(", %g msgs/s per occupant (%d slots skipped)", r.OccupantRate, r.Skipped)
	}
	fmt.Fprintf(w, "muc: %d rooms × %d occupants on %s, window %d, %d-byte bodies%s: %d sent, %d of %d deliveries in %.2f s (%.2f s of it draining): %.0f deliveries/s\n",
		r.Rooms, r.Occupants, r.Service, r.Window, r.BodyBytes, paced, r.Sent, r.Delivered, r.Expected, r.WindowS, r.DrainS, r.DeliveriesPerS)
	fmt.Fprintf(w, "  latency: %s\n", r.Latency)
	fmt.Fprintf(w, "  lost: %d, duplicated: %d, bounced: %d, foreign: %d, dropped streams: %d\n",
		r.Lost, r.Duplicated, r.Bounced, r.Foreign, r.DroppedStream)
	r.cpuLine(w, r.Delivered, "deliveries")
	if r.RSSPeakKiB > 0 {
		fmt.Fprintf(w, "  server RSS: %d KiB when the sending started, peak %d KiB (+%d KiB)\n",
			r.RSSStartKiB, r.RSSPeakKiB, r.RSSPeakKiB-r.RSSStartKiB)
	}
}
