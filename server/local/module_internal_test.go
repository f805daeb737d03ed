package local

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/xmpp"
)

// TestRegistrationMistakesPanic: a module's registration mistakes are
// bugs in its code, found when the binary starts, not when a stanza
// comes.
func TestRegistrationMistakesPanic(t *testing.T) {
	noop := func(Session, *xmpp.Stanza) bool { return false }
	host := &Host{lh: &localHost{server: newIQMux("server", "im", ""), account: newIQMux("account", "registered", "")}, module: "t"}
	RegisterModule(Module{Name: "test-registered-once", Start: func(*Host) error { return nil }})
	for _, tc := range []struct {
		name string
		do   func()
	}{
		{"a module without a name", func() { RegisterModule(Module{Start: func(*Host) error { return nil }}) }},
		{"a module without Start", func() { RegisterModule(Module{Name: "test-no-start"}) }},
		{"a second module of a name", func() {
			RegisterModule(Module{Name: "test-registered-once", Start: func(*Host) error { return nil }})
		}},
		{"a nil stanza handler", func() { host.Hook(ToBare, xmpp.KindMessage, 0, nil) }},
		{"a point that does not exist", func() { host.Hook(numPoints, xmpp.KindMessage, 0, noop) }},
		{"a handler for no stanza kind", func() { host.Hook(ToBare, xmpp.KindNone, 0, noop) }},
		{"an iq handler at ToFull", func() { host.HandleIQ(ToFull, "get", "urn:x", "q", "", pong) }},
		{"a second iq handler", func() {
			host.HandleIQ(ToHost, "get", "urn:x", "q", "", pong)
			host.HandleIQ(ToHost, "get", "urn:x", "q", "", pong)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			tc.do()
		})
	}
	if !slices.Contains(Modules(), "test-registered-once") {
		t.Errorf("Modules() = %v, want test-registered-once in it", Modules())
	}
}

// TestPipelineOrder: handlers run by descending priority, equal ones in
// the order they were added, and the first that returns true ends the
// run.
func TestPipelineOrder(t *testing.T) {
	var p pipeline
	var ran []string
	add := func(name string, prio int, handled bool) {
		p.add(ToBare, xmpp.KindMessage, prio, name, func(Session, *xmpp.Stanza) bool {
			ran = append(ran, name)
			return handled
		}, true)
	}
	add("low", -5, false)
	add("first-of-ten", 10, false)
	add("second-of-ten", 10, false)
	add("zero-takes-it", 0, true)
	add("never", -10, false)
	st := &xmpp.Stanza{Kind: xmpp.KindMessage}
	if !p.run(ToBare, nil, st) {
		t.Error("run = false, want true: a handler took the stanza")
	}
	if want := []string{"first-of-ten", "second-of-ten", "zero-takes-it"}; !slices.Equal(ran, want) {
		t.Errorf("ran %v, want %v", ran, want)
	}
	ran = nil
	if p.run(ToFull, nil, st) || p.run(ToBare, nil, &xmpp.Stanza{Kind: xmpp.KindPresence}) || len(ran) != 0 {
		t.Errorf("handlers of another point or kind ran: %v", ran)
	}
}

func pong(context.Context, *xmpp.Stanza) (*etree.Element, error) { return nil, nil }

// TestSessionValue: a module's value lives with one session: another
// session of the user does not see it, a session that is not bound keeps
// nothing, and a new login with the same resource starts from zero.
func TestSessionValue(t *testing.T) {
	x := newAcctHost(t, "", nil)
	host := &Host{lh: x.h, module: "t"}
	count := NewSessionValue[int](host)
	flag := NewSessionValue[bool](host)
	x.h.slotSet = make([]atomic.Int64, x.h.slots) // as startModules does
	a := x.login(t, "alice@"+acctDomain+"/a", false)
	b := x.login(t, "alice@"+acctDomain+"/b", false)
	if !count.Set(a, 3) || !flag.Set(b, true) {
		t.Fatal("Set on a bound session reported false")
	}
	if got := count.Get(a); got != 3 {
		t.Errorf("count of a = %d, want 3", got)
	}
	if count.Get(b) != 0 || flag.Get(a) {
		t.Errorf("a value leaked to another session or slot: count(b)=%d flag(a)=%v", count.Get(b), flag.Get(a))
	}
	gone := &testSession{jid: xmpp.MustParse("carol@" + acctDomain + "/x")}
	if count.Set(gone, 1) || count.Get(gone) != 0 {
		t.Error("a session that is not bound kept a value")
	}
	x.h.unbind(a)
	if count.Get(a) != 0 {
		t.Error("an unbound session still has its value")
	}
	again := x.login(t, "alice@"+acctDomain+"/a", false)
	if count.Get(again) != 0 || !flag.Get(b) {
		t.Errorf("after a new login: count = %d (want 0), b's flag = %v (want true)", count.Get(again), flag.Get(b))
	}
	// The counts behind Get's lock-free answer follow the sessions.
	if n, m := x.h.slotSet[count.slot].Load(), x.h.slotSet[flag.slot].Load(); n != 0 || m != 1 {
		t.Errorf("sessions with a value: count %d (want 0: a is gone), flag %d (want 1: b)", n, m)
	}
	x.h.unbind(b)
	if m := x.h.slotSet[flag.slot].Load(); m != 0 {
		t.Errorf("sessions with a flag after b left: %d, want 0", m)
	}
}

// TestHostValue: each host keeps its own value under a key, keys do not
// mix, and GetOrSet keeps the first value set.
func TestHostValue(t *testing.T) {
	a, b := &Host{lh: &localHost{}}, &Host{lh: &localHost{}}
	nums, names := NewHostValue[int](), NewHostValue[string]()
	if _, ok := nums.Get(a); ok {
		t.Fatal("a value before any was set")
	}
	nums.Set(a, 1)
	names.Set(a, "one")
	tests := []struct {
		h    *Host
		want int
		ok   bool
	}{{a, 1, true}, {b, 0, false}}
	for i, tt := range tests {
		if got, ok := nums.Get(tt.h); got != tt.want || ok != tt.ok {
			t.Errorf("host %d: Get = %d, %v; want %d, %v", i, got, ok, tt.want, tt.ok)
		}
	}
	if got, _ := names.Get(a); got != "one" {
		t.Errorf("names.Get = %q, want one", got)
	}
	if got := nums.GetOrSet(b, 2); got != 2 {
		t.Errorf("GetOrSet on an empty host = %d, want 2", got)
	}
	if got := nums.GetOrSet(b, 3); got != 2 {
		t.Errorf("GetOrSet on a set host = %d, want the first, 2", got)
	}
}
