package local

import (
	"context"
	"fmt"
	"github.com/parley-im/parley/server"
	"log/slog"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// These tests build a local host around a store whose commits can be held,
// which the black-box tests of server_test cannot do: they stand in for an
// fsync that takes its time, and check that routing does not wait for it.

// acctDomain is the local host of these tests.
const acctDomain = "localhost"

// acctGuard bounds every wait of these tests. It only turns a hang into a
// failure; no test measures time.
const acctGuard = 10 * time.Second

// gatedStore is a userStore whose writes of one user's roster, pending
// requests and blocklist can be held at a gate, as a slow commit would
// hold them: a held write reports on entered which write it is, then waits
// until the gate opens. Reads and other users' writes pass.
type gatedStore struct {
	userStore
	user    string      // whose writes are held
	entered chan string // the held writes, in the order they reached the gate

	mu   sync.Mutex
	gate chan struct{} // nil while writes pass
}

// hold makes the user's writes wait from now on; release, safe to call
// more than once, lets them through and stops holding.
func (g *gatedStore) hold(t *testing.T) (release func()) {
	gate := make(chan struct{})
	g.mu.Lock()
	g.gate = gate
	g.mu.Unlock()
	var once sync.Once
	release = func() {
		once.Do(func() {
			g.mu.Lock()
			g.gate = nil
			g.mu.Unlock()
			close(gate)
		})
	}
	// A failed test still lets what it held finish.
	t.Cleanup(release)
	return release
}

// wait holds a write of user while the gate is closed.
func (g *gatedStore) wait(user, op string) {
	if user != g.user {
		return
	}
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	if gate == nil {
		return
	}
	g.entered <- op
	<-gate
}

func (g *gatedStore) PutRosterItem(ctx context.Context, host, user string, item storage.RosterItem) (int64, error) {
	g.wait(user, "put roster item "+item.JID)
	return g.userStore.PutRosterItem(ctx, host, user, item)
}

func (g *gatedStore) DeleteRosterItem(ctx context.Context, host, user, jid string) (int64, error) {
	g.wait(user, "delete roster item "+jid)
	return g.userStore.DeleteRosterItem(ctx, host, user, jid)
}

func (g *gatedStore) PutXML(ctx context.Context, host, user, kind, key string, xml []byte) error {
	g.wait(user, "put "+kind+" "+key)
	return g.userStore.PutXML(ctx, host, user, kind, key, xml)
}

func (g *gatedStore) DeleteXML(ctx context.Context, host, user, kind, key string) error {
	g.wait(user, "delete "+kind+" "+key)
	return g.userStore.DeleteXML(ctx, host, user, kind, key)
}

func (g *gatedStore) Block(ctx context.Context, host, user string, jids []string) error {
	g.wait(user, "block "+strings.Join(jids, " "))
	return g.userStore.Block(ctx, host, user, jids)
}

func (g *gatedStore) Unblock(ctx context.Context, host, user string, jids []string) error {
	g.wait(user, "unblock "+strings.Join(jids, " "))
	return g.userStore.Unblock(ctx, host, user, jids)
}

// testSession is a bound session that keeps what it is delivered.
type testSession struct {
	jid xmpp.JID
	got chan *xmpp.Stanza

	// closing is set by Close, or by the first Deliver after
	// closeOnDeliver is set, which then refuses its stanza: a session
	// that starts closing between the router's lookup and its delivery.
	closing        atomic.Bool
	closeOnDeliver atomic.Bool

	presenceState
}

// presenceState is the presence half of a test Session, shared by the
// test sessions; mu guards the fields of the session that embeds it too.
type presenceState struct {
	mu        sync.Mutex
	available bool
	priority  int
}

func (s *presenceState) Available() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.available
}

func (s *presenceState) Priority() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.priority
}

func (s *presenceState) SetPresence(available bool, priority int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// As c2s.Session does: unavailable keeps the last priority.
	s.available = available
	if available {
		s.priority = priority
	}
}

func (s *testSession) JID() xmpp.JID { return s.jid }

func (s *testSession) Deliver(el *etree.Element) bool {
	if s.closeOnDeliver.Load() {
		s.closing.Store(true)
	}
	if s.closing.Load() {
		return false
	}
	st, err := xmpp.NewStanza(el.Copy())
	if err != nil {
		return false
	}
	select {
	case s.got <- st:
		return true
	default:
		return false
	}
}

func (s *testSession) Closing() bool             { return s.closing.Load() }
func (s *testSession) Close(e *xmpp.StreamError) { s.closing.Store(true) }

// await reads what s was delivered until a stanza match accepts, skipping
// the others, and fails the test if none comes within acctGuard.
func (s *testSession) await(t *testing.T, what string, match func(*xmpp.Stanza) bool) *xmpp.Stanza {
	t.Helper()
	guard := time.After(acctGuard)
	for {
		select {
		case st := <-s.got:
			if match(st) {
				return st
			}
		case <-guard:
			t.Fatalf("%s: no %s within %v", s.jid, what, acctGuard)
			return nil
		}
	}
}

// acctHost is a local host over a gated in-memory store; client stanzas
// enter by its FromClient, as c2s hands them over.
type acctHost struct {
	h     *localHost
	store *storage.Store
	gated *gatedStore
}

// newAcctHost builds the host with the accounts alice, bob and carol; the
// writes of held are the ones the gate holds. prepare, when not nil, writes
// to the store before anyone logs in.
func newAcctHost(t *testing.T, held string, prepare func(ctx context.Context, st *storage.Store) error) *acctHost {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), acctGuard)
	defer cancel()
	store, err := storage.Open(ctx, storage.Memory)
	if err != nil {
		t.Fatalf("opening the store: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	for _, u := range []string{"alice", "bob", "carol"} {
		if err := store.CreateAccount(ctx, storage.Account{Host: acctDomain, Username: u}); err != nil {
			t.Fatalf("creating %s: %v", u, err)
		}
	}
	if prepare != nil {
		if err := prepare(ctx, store); err != nil {
			t.Fatalf("preparing the store: %v", err)
		}
	}
	log := slog.New(slog.DiscardHandler)
	gated := &gatedStore{userStore: store, user: held, entered: make(chan string, 16)}
	r := server.NewRouter(log)
	h := newLocalHost(acctDomain, r, gated, hostLimits{roster: 100, offline: 100}, log)
	h.coreServices()
	r.SetHost(acctDomain, h)
	return &acctHost{h: h, store: store, gated: gated}
}

// send enters st as a client's stanza, from its session, and returns a
// channel closed once the server is done with it. The server handles it in
// a goroutine of its own, so that a test can see it wait.
func (x *acctHost) send(t *testing.T, from, format string, args ...any) <-chan struct{} {
	t.Helper()
	st, err := parseStanza([]byte(fmt.Sprintf(format, args...)))
	if err != nil {
		t.Fatalf("stanza %q: %v", format, err)
	}
	st.SetFrom(xmpp.MustParse(from))
	done := make(chan struct{})
	go func() {
		defer close(done)
		x.h.FromClient(st)
	}()
	return done
}

// route routes st as a contact's server would, without a session behind
// it, and returns a channel closed once the server is done with it.
func (x *acctHost) route(t *testing.T, format string, args ...any) <-chan struct{} {
	t.Helper()
	st, err := parseStanza([]byte(fmt.Sprintf(format, args...)))
	if err != nil {
		t.Fatalf("stanza %q: %v", format, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		x.h.router.Route(st)
	}()
	return done
}

// login binds full and, when available, sends its initial presence and
// waits until the server is done with it.
func (x *acctHost) login(t *testing.T, full string, available bool) *testSession {
	t.Helper()
	s := &testSession{jid: xmpp.MustParse(full), got: make(chan *xmpp.Stanza, 256)}
	if err := x.h.bind(s); err != nil {
		t.Fatalf("binding %s: %v", full, err)
	}
	if available {
		awaitDone(t, x.send(t, full, "<presence/>"), "the initial presence of "+full)
	}
	return s
}

// setBlocked changes alice's block list as the blocking module does (the
// module's protocol is tested through a server in server/), in a
// goroutine, and returns a channel closed once the change is done.
func (x *acctHost) setBlocked(j xmpp.JID, block bool) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), acctGuard)
		defer cancel()
		if _, err := x.h.setBlocked(ctx, "alice", []xmpp.JID{j}, block); err != nil {
			panic(fmt.Sprintf("setBlocked(%s, %v): %v", j, block, err))
		}
	}()
	return done
}

// awaitDone waits for done, failing the test after acctGuard.
func awaitDone(t *testing.T, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(acctGuard):
		t.Fatalf("%s did not finish within %v", what, acctGuard)
	}
}

// isMessage matches the message with id.
func isMessage(id string) func(*xmpp.Stanza) bool {
	return func(st *xmpp.Stanza) bool { return st.Kind == xmpp.KindMessage && st.ID == id }
}

// isResult matches the result of the iq with id.
func isResult(id string) func(*xmpp.Stanza) bool {
	return func(st *xmpp.Stanza) bool { return st.Kind == xmpp.KindIQ && st.ID == id && st.Type == "result" }
}

// isPresence matches an available presence from from whose show is show.
func isPresence(from, show string) func(*xmpp.Stanza) bool {
	return func(st *xmpp.Stanza) bool {
		if st.Kind != xmpp.KindPresence || st.Type != "" || st.From.String() != from {
			return false
		}
		got := ""
		if el := xmpp.Child(st.El, "", "show"); el != nil {
			got = el.Text()
		}
		return got == show
	}
}

// userState is what the IM core keeps of a user, as the store or the
// memory of an online user holds it.
type userState struct {
	roster  map[xmpp.JID]*storage.RosterItem
	ver     int64
	pending map[xmpp.JID][]byte
	blocked map[xmpp.JID]bool
}

// stored reads local's state from the store.
func (x *acctHost) stored(t *testing.T, local string) userState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), acctGuard)
	defer cancel()
	roster, ver, pending, blocked, err := x.h.readUser(ctx, local)
	if err != nil {
		t.Fatalf("reading %s from the store: %v", local, err)
	}
	return userState{roster, ver, pending, blocked}
}

// inMemory copies the state of the online user local.
func (x *acctHost) inMemory(t *testing.T, local string) userState {
	t.Helper()
	a := x.h.loaded(local)
	if a == nil {
		t.Fatalf("%s is not online", local)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	u := userState{roster: make(map[xmpp.JID]*storage.RosterItem), ver: a.ver, pending: make(map[xmpp.JID][]byte), blocked: make(map[xmpp.JID]bool)}
	for j, it := range a.roster {
		c := *it
		u.roster[j] = &c
	}
	for j, d := range a.pending {
		u.pending[j] = d
	}
	for j := range a.blocked {
		u.blocked[j] = true
	}
	return u
}

// sameItem reports whether two roster items hold the same, a nil list of
// groups being the same as an empty one.
func sameItem(a, b *storage.RosterItem) bool {
	if !slices.Equal(a.Groups, b.Groups) {
		return false
	}
	ac, bc := *a, *b
	ac.Groups, bc.Groups = nil, nil
	return reflect.DeepEqual(ac, bc)
}

// checkMemoryIsStored fails the test unless the memory of the online user
// local holds what the store holds.
func (x *acctHost) checkMemoryIsStored(t *testing.T, local string) {
	t.Helper()
	mem, disk := x.inMemory(t, local), x.stored(t, local)
	if mem.ver != disk.ver {
		t.Errorf("%s's roster version: %d in memory, %d stored", local, mem.ver, disk.ver)
	}
	if !sameMap(mem.roster, disk.roster, sameItem) {
		t.Errorf("%s's roster in memory is not the stored one:\nmemory: %s\nstored: %s", local, dumpRoster(mem.roster), dumpRoster(disk.roster))
	}
	if !sameMap(mem.pending, disk.pending, func(a, b []byte) bool { return string(a) == string(b) }) {
		t.Errorf("%s's pending requests: %d in memory, %d stored", local, len(mem.pending), len(disk.pending))
	}
	if !sameMap(mem.blocked, disk.blocked, func(a, b bool) bool { return a == b }) {
		t.Errorf("%s's blocklist: %v in memory, %v stored", local, mem.blocked, disk.blocked)
	}
}

// sameMap reports whether a and b have the same keys and eq values.
func sameMap[V any](a, b map[xmpp.JID]V, eq func(V, V) bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !eq(v, w) {
			return false
		}
	}
	return true
}

func dumpRoster(r map[xmpp.JID]*storage.RosterItem) string {
	var out []string
	for _, it := range r {
		out = append(out, fmt.Sprintf("%+v", *it))
	}
	slices.Sort(out)
	return strings.Join(out, "; ")
}

// TestRoutingDoesNotWaitForACommit holds the commit of each kind of change
// of alice's roster, pending requests and blocklist, and checks that
// meanwhile a message to her and one from her are delivered, a contact's
// presence broadcast reaches her and her presence answers a contact's
// probe; then lets the commit through and checks that the change landed,
// in memory as in the store.
func TestRoutingDoesNotWaitForACommit(t *testing.T) {
	carol := xmpp.MustParse("carol@" + acctDomain)
	tests := []struct {
		name string
		// prepare writes to the store before anyone logs in.
		prepare func(ctx context.Context, st *storage.Store) error
		// change starts the change whose commit is held; it returns
		// when the server is done with it, and the id of the iq whose
		// result alice's session alice/a gets then, if any.
		change func(t *testing.T, x *acctHost) (<-chan struct{}, string)
		// landed checks the stored state of alice after the change.
		landed func(u userState) error
	}{
		{
			name: "roster set",
			change: func(t *testing.T, x *acctHost) (<-chan struct{}, string) {
				return x.send(t, "alice@"+acctDomain+"/a", "<iq type='set' id='set-1'><query xmlns='jabber:iq:roster'><item jid='%s' name='Carol'/></query></iq>", carol), "set-1"
			},
			landed: func(u userState) error {
				if it := u.roster[carol]; it == nil || it.Name != "Carol" {
					return fmt.Errorf("carol's item is %v, want one named Carol", it)
				}
				return nil
			},
		},
		{
			name: "roster remove",
			prepare: func(ctx context.Context, st *storage.Store) error {
				_, err := st.PutRosterItem(ctx, acctDomain, "alice", storage.RosterItem{JID: carol.String(), Subscription: "none"})
				return err
			},
			change: func(t *testing.T, x *acctHost) (<-chan struct{}, string) {
				return x.send(t, "alice@"+acctDomain+"/a", "<iq type='set' id='remove-1'><query xmlns='jabber:iq:roster'><item jid='%s' subscription='remove'/></query></iq>", carol), "remove-1"
			},
			landed: func(u userState) error {
				if it := u.roster[carol]; it != nil {
					return fmt.Errorf("carol's item is still there: %+v", *it)
				}
				return nil
			},
		},
		{
			name: "outbound subscription request",
			change: func(t *testing.T, x *acctHost) (<-chan struct{}, string) {
				return x.send(t, "alice@"+acctDomain+"/a", "<presence to='%s' type='subscribe'/>", carol), ""
			},
			landed: func(u userState) error {
				if it := u.roster[carol]; it == nil || !it.Ask {
					return fmt.Errorf("carol's item is %v, want one asked for", it)
				}
				return nil
			},
		},
		{
			name: "inbound subscription request",
			change: func(t *testing.T, x *acctHost) (<-chan struct{}, string) {
				return x.route(t, "<presence from='%s' to='alice@%s' type='subscribe'/>", carol, acctDomain), ""
			},
			landed: func(u userState) error {
				if _, ok := u.pending[carol]; !ok {
					return fmt.Errorf("carol's request is not kept")
				}
				return nil
			},
		},
		{
			name: "block",
			change: func(t *testing.T, x *acctHost) (<-chan struct{}, string) {
				return x.setBlocked(carol, true), ""
			},
			landed: func(u userState) error {
				if !u.blocked[carol] {
					return fmt.Errorf("carol is not blocked: %v", u.blocked)
				}
				return nil
			},
		},
		{
			name: "unblock",
			prepare: func(ctx context.Context, st *storage.Store) error {
				return st.Block(ctx, acctDomain, "alice", []string{carol.String()})
			},
			change: func(t *testing.T, x *acctHost) (<-chan struct{}, string) {
				return x.setBlocked(carol, false), ""
			},
			landed: func(u userState) error {
				if len(u.blocked) != 0 {
					return fmt.Errorf("the blocklist is %v, want it empty", u.blocked)
				}
				return nil
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := newAcctHost(t, "alice", func(ctx context.Context, st *storage.Store) error {
				for _, p := range [][2]string{{"alice", "bob"}, {"bob", "alice"}} {
					if _, err := st.PutRosterItem(ctx, acctDomain, p[0], storage.RosterItem{JID: p[1] + "@" + acctDomain, Subscription: "both"}); err != nil {
						return err
					}
				}
				if tt.prepare != nil {
					return tt.prepare(ctx, st)
				}
				return nil
			})
			aliceA := x.login(t, "alice@"+acctDomain+"/a", true)
			x.login(t, "alice@"+acctDomain+"/a2", true)
			bobB := x.login(t, "bob@"+acctDomain+"/b", true)

			release := x.gated.hold(t)
			changed, resultID := tt.change(t, x)
			select {
			case op := <-x.gated.entered:
				t.Logf("held: %s", op)
			case <-changed:
				t.Fatal("the change finished without writing to the store")
			case <-time.After(acctGuard):
				t.Fatalf("the change did not reach the store within %v", acctGuard)
			}

			// A message to alice: her block check and her session list.
			x.send(t, "bob@"+acctDomain+"/b", "<message to='alice@%s' type='chat' id='to-alice'><body>hi</body></message>", acctDomain)
			aliceA.await(t, "message from bob while alice's change commits", isMessage("to-alice"))
			// A message from alice's other resource: her block check as
			// a sender.
			x.send(t, "alice@"+acctDomain+"/a2", "<message to='bob@%s' type='chat' id='from-alice'><body>hi</body></message>", acctDomain)
			bobB.await(t, "message from alice while her change commits", isMessage("from-alice"))
			// Bob's presence broadcast reaches alice.
			x.send(t, "bob@"+acctDomain+"/b", "<presence><show>away</show></presence>")
			aliceA.await(t, "bob's presence broadcast while alice's change commits", isPresence("bob@"+acctDomain+"/b", "away"))
			// Bob's new resource probes alice, who answers from her roster.
			bobC := x.login(t, "bob@"+acctDomain+"/c", true)
			bobC.await(t, "the answer to bob's probe of alice while her change commits", isPresence("alice@"+acctDomain+"/a", ""))

			release()
			awaitDone(t, changed, "the change")
			if resultID != "" {
				aliceA.await(t, "the result of "+resultID, isResult(resultID))
			}
			if err := tt.landed(x.stored(t, "alice")); err != nil {
				t.Errorf("the change did not land: %v", err)
			}
			x.checkMemoryIsStored(t, "alice")
			x.checkNoUserLocks(t)
		})
	}
}

// checkNoUserLocks fails the test if a user's lock is still in the host's
// table once nobody holds or waits for one: the table would grow with
// every user ever changed.
func (x *acctHost) checkNoUserLocks(t *testing.T) {
	t.Helper()
	x.h.locksMu.Lock()
	defer x.h.locksMu.Unlock()
	if len(x.h.locks) != 0 {
		t.Errorf("%d users' locks are left in the table", len(x.h.locks))
	}
}

// TestChangesOfOneUserCommitInOrder holds the commit of a roster set and
// sends a second one for the same contact from another resource: the
// second must not reach the store before the first is committed, and both
// memory and store must end with the second.
func TestChangesOfOneUserCommitInOrder(t *testing.T) {
	carol := xmpp.MustParse("carol@" + acctDomain)
	x := newAcctHost(t, "alice", nil)
	aliceA := x.login(t, "alice@"+acctDomain+"/a", true)
	aliceB := x.login(t, "alice@"+acctDomain+"/b", true)

	release := x.gated.hold(t)
	set := "<iq type='set' id='%s'><query xmlns='jabber:iq:roster'><item jid='%s' name='%s'/></query></iq>"
	first := x.send(t, aliceA.jid.String(), set, "first", carol, "one")
	select {
	case op := <-x.gated.entered:
		t.Logf("held: %s", op)
	case <-time.After(acctGuard):
		t.Fatalf("the first change did not reach the store within %v", acctGuard)
	}
	second := x.send(t, aliceB.jid.String(), set, "second", carol, "two")
	// The second change must wait for the first to be committed, in the
	// user's lock; had it gone on, it would be at the gate.
	guard := time.After(acctGuard)
	for !waitingForLock("(*localHost).rosterSet") {
		select {
		case op := <-x.gated.entered:
			t.Fatalf("the second change reached the store (%s) while the first was committing", op)
		case <-second:
			t.Fatal("the second change finished while the first was committing")
		case <-guard:
			t.Fatalf("the second change was not seen waiting within %v", acctGuard)
		default:
			runtime.Gosched()
		}
	}
	release()
	awaitDone(t, first, "the first change")
	awaitDone(t, second, "the second change")
	aliceA.await(t, "the result of the first change", isResult("first"))
	aliceB.await(t, "the result of the second change", isResult("second"))
	if it := x.stored(t, "alice").roster[carol]; it == nil || it.Name != "two" {
		t.Errorf("stored: carol's item is %v, want the second change's, named two", it)
	}
	x.checkMemoryIsStored(t, "alice")
}

// waitingForLock reports whether a goroutine in the function fn of this
// package, such as "(*localHost).rosterSet", is blocked on a mutex.
func waitingForLock(fn string) bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "local."+fn+"(") && strings.Contains(g, "sync.(*Mutex).Lock") {
			return true
		}
	}
	return false
}

// TestWithdrawnRequestIsNotPendingAfterReload has a contact ask alice for
// a subscription, alice put the contact on her roster (which stores the
// waiting request on the item), and the contact withdraw the request:
// nothing visible changes on the item, but the request must be gone from
// the store too, or the next load would show it waiting again.
func TestWithdrawnRequestIsNotPendingAfterReload(t *testing.T) {
	carol := xmpp.MustParse("carol@" + acctDomain)
	x := newAcctHost(t, "", nil)
	aliceA := x.login(t, "alice@"+acctDomain+"/a", true)
	awaitDone(t, x.route(t, "<presence from='%s' to='alice@%s' type='subscribe'/>", carol, acctDomain), "carol's request")
	awaitDone(t, x.send(t, aliceA.jid.String(), "<iq type='set' id='add'><query xmlns='jabber:iq:roster'><item jid='%s' name='Carol'/></query></iq>", carol), "alice's roster set")
	aliceA.await(t, "the result of the roster set", isResult("add"))
	awaitDone(t, x.route(t, "<presence from='%s' to='alice@%s' type='unsubscribe'/>", carol, acctDomain), "carol's withdrawal")
	x.checkMemoryIsStored(t, "alice")

	fresh := newAccount("alice", acctDomain)
	if err := fresh.load(x.h); err != nil {
		t.Fatalf("loading alice again: %v", err)
	}
	fresh.mu.Lock()
	state, _ := fresh.state(carol)
	fresh.mu.Unlock()
	if state.PendingIn {
		t.Errorf("after a reload, carol's withdrawn request is waiting again: %v", state)
	}
}

// TestLoginWaitsForACommit holds the commit of a change of alice's data
// that no session of hers is there to see, logs her in meanwhile, then
// lets the commit through: the memory of her new login must hold what the
// store holds. A load that read the store before the commit would miss
// the change until her next login.
func TestLoginWaitsForACommit(t *testing.T) {
	carol := xmpp.MustParse("carol@" + acctDomain)
	aliceA := "alice@" + acctDomain + "/a"
	subscribe := func(typ string) func(t *testing.T, x *acctHost) <-chan struct{} {
		return func(t *testing.T, x *acctHost) <-chan struct{} {
			return x.route(t, "<presence from='%s' to='alice@%s' type='%s'/>", carol, acctDomain, typ)
		}
	}
	tests := []struct {
		name string
		// before runs before the gate closes.
		before func(t *testing.T, x *acctHost)
		// change starts the change whose commit is held; its channel
		// is closed once the server is done with it.
		change func(t *testing.T, x *acctHost) <-chan struct{}
		// held, when not nil, runs while the commit is held, before
		// alice logs in.
		held func(t *testing.T, x *acctHost)
		// landed checks the stored state of alice after the change.
		landed func(u userState) error
	}{
		{
			name:   "request to a user with no session",
			change: subscribe("subscribe"),
			landed: func(u userState) error {
				if _, ok := u.pending[carol]; !ok {
					return fmt.Errorf("carol's request is not kept")
				}
				return nil
			},
		},
		{
			name: "withdrawal to a user with no session",
			before: func(t *testing.T, x *acctHost) {
				awaitDone(t, subscribe("subscribe")(t, x), "carol's request")
			},
			change: subscribe("unsubscribe"),
			landed: func(u userState) error {
				if _, ok := u.pending[carol]; ok {
					return fmt.Errorf("carol's withdrawn request is still kept")
				}
				return nil
			},
		},
		{
			// The change began on the account of a session that ends
			// while it commits, so the login makes a new account.
			name: "roster set of a session that ends",
			before: func(t *testing.T, x *acctHost) {
				x.login(t, aliceA, false)
			},
			change: func(t *testing.T, x *acctHost) <-chan struct{} {
				return x.send(t, aliceA, "<iq type='set' id='set-1'><query xmlns='jabber:iq:roster'><item jid='%s' name='Carol'/></query></iq>", carol)
			},
			held: func(t *testing.T, x *acctHost) {
				x.h.unbind(x.h.session(xmpp.MustParse(aliceA)))
			},
			landed: func(u userState) error {
				if it := u.roster[carol]; it == nil || it.Name != "Carol" {
					return fmt.Errorf("carol's item is %v, want one named Carol", it)
				}
				return nil
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := newAcctHost(t, "alice", nil)
			if tt.before != nil {
				tt.before(t, x)
			}
			release := x.gated.hold(t)
			changed := tt.change(t, x)
			select {
			case op := <-x.gated.entered:
				t.Logf("held: %s", op)
			case <-changed:
				t.Fatal("the change finished without writing to the store")
			case <-time.After(acctGuard):
				t.Fatalf("the change did not reach the store within %v", acctGuard)
			}
			if tt.held != nil {
				tt.held(t, x)
			}

			s := &testSession{jid: xmpp.MustParse("alice@" + acctDomain + "/b"), got: make(chan *xmpp.Stanza, 256)}
			loggedIn := make(chan struct{})
			var bindErr error
			go func() {
				defer close(loggedIn)
				bindErr = x.h.bind(s)
			}()
			// The login either waits for the commit to read the store,
			// or (the race this test is about) finishes before it.
			guard := time.After(acctGuard)
		waiting:
			for !waitingForLock("(*account).load") {
				select {
				case <-loggedIn:
					t.Log("the login finished while the change was committing")
					break waiting
				case <-guard:
					t.Fatalf("the login neither finished nor waited within %v", acctGuard)
				default:
					runtime.Gosched()
				}
			}
			release()
			awaitDone(t, changed, "the change")
			awaitDone(t, loggedIn, "alice's login")
			if bindErr != nil {
				t.Fatalf("binding alice: %v", bindErr)
			}
			if err := tt.landed(x.stored(t, "alice")); err != nil {
				t.Errorf("the change did not land: %v", err)
			}
			x.checkMemoryIsStored(t, "alice")
			x.checkNoUserLocks(t)
		})
	}
}

// TestOfflineChangesOfOneUserCommitInOrder holds the commit of carol's
// subscription request to alice, who has no session, and routes carol's
// withdrawal meanwhile: the withdrawal must read the state the request
// committed, or it finds nothing to withdraw and the request stays.
func TestOfflineChangesOfOneUserCommitInOrder(t *testing.T) {
	carol := xmpp.MustParse("carol@" + acctDomain)
	x := newAcctHost(t, "alice", nil)
	release := x.gated.hold(t)
	request := x.route(t, "<presence from='%s' to='alice@%s' type='subscribe'/>", carol, acctDomain)
	select {
	case op := <-x.gated.entered:
		t.Logf("held: %s", op)
	case <-time.After(acctGuard):
		t.Fatalf("the request did not reach the store within %v", acctGuard)
	}
	withdrawal := x.route(t, "<presence from='%s' to='alice@%s' type='unsubscribe'/>", carol, acctDomain)
	guard := time.After(acctGuard)
waiting:
	for !waitingForLock("(*localHost).inboundSubscription") {
		select {
		case op := <-x.gated.entered:
			t.Errorf("the withdrawal reached the store (%s) while the request was committing", op)
			break waiting
		case <-withdrawal:
			t.Log("the withdrawal finished while the request was committing")
			break waiting
		case <-guard:
			t.Fatalf("the withdrawal was not seen waiting within %v", acctGuard)
		default:
			runtime.Gosched()
		}
	}
	release()
	awaitDone(t, request, "the request")
	awaitDone(t, withdrawal, "the withdrawal")
	if _, ok := x.stored(t, "alice").pending[carol]; ok {
		t.Error("carol's withdrawn request is still kept")
	}
	if it := x.stored(t, "alice").roster[carol]; it != nil && it.PendingIn {
		t.Errorf("carol's item still has her withdrawn request: %+v", *it)
	}
	x.checkNoUserLocks(t)
}
