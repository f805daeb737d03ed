package server_test

// Integration tests with a third-party client, mellium.im/xmpp, against a
// real Parley: what a user's client sees on the wire, not what the
// server's packages think they did.

import (
	"encoding/xml"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/disco"
	"mellium.im/xmpp/disco/info"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"
	"mellium.im/xmpp/version"
	"mellium.im/xmpp/xtime"
)

// melliumStart starts a server with the accounts alice and bob.
func melliumStart(t *testing.T, opts ...parleytest.Option) *parleytest.Server {
	t.Helper()
	s := parleytest.Start(t, opts...)
	s.AddUser("alice@localhost", "alice-password")
	s.AddUser("bob@localhost", "bob-password")
	return s
}

// strictIfPlus starts a server that offers channel binding when mech
// needs it: by default ("compatible") no -PLUS is offered.
func strictIfPlus(mech sasl.Mechanism) parleytest.Option {
	return parleytest.WithConfig(func(c *conf.Config) {
		if strings.HasSuffix(mech.Name, "-PLUS") {
			c.Auth.ChannelBinding = conf.ChannelBindingStrict
		}
	})
}

func TestMelliumLoginAndChat(t *testing.T) {
	for _, mech := range []sasl.Mechanism{
		sasl.ScramSha1,
		sasl.ScramSha256,
		sasl.ScramSha1Plus,
		sasl.ScramSha256Plus,
		sasl.Plain,
	} {
		t.Run("with_"+mech.Name, func(t *testing.T) {
			ctx := melliumContext(t)
			s := melliumStart(t, strictIfPlus(mech))
			sess, err := melliumDialSTARTTLS(ctx, t, s, "alice@localhost", "alice-password", mech)
			if err != nil {
				t.Fatalf("alice logs in with %s only: %v", mech.Name, err)
			}
			alice := melliumServe(t, sess)
			bob := melliumLogin(ctx, t, s, "bob@localhost", "bob-password")

			const body = "hi bob <&> 'quoted' \"too\" ☃"
			alice.sendChat(ctx, t, bob.JID(), body)
			got := bob.nextMessage(ctx, t)
			if got.Body != body {
				t.Errorf("bob got body %q, want %q", got.Body, body)
			}
			if got.From != alice.JID().String() {
				t.Errorf("bob got from=%q, want alice's bound JID %q", got.From, alice.JID())
			}
			if got.To != bob.JID().String() {
				t.Errorf("bob got to=%q, want his bound JID %q", got.To, bob.JID())
			}
			if got.Type != "chat" {
				t.Errorf("bob got type=%q, want chat", got.Type)
			}
		})
	}
}

func TestMelliumMessageToBareJID(t *testing.T) {
	t.Run("goes_to_the_highest_priority_resource_only", func(t *testing.T) {
		ctx := melliumContext(t)
		s := melliumStart(t)
		high := melliumLogin(ctx, t, s, "bob@localhost/high", "bob-password")
		low := melliumLogin(ctx, t, s, "bob@localhost/low", "bob-password")
		high.sendPresence(ctx, t, "5")
		low.sendPresence(ctx, t, "1")
		alice := melliumLogin(ctx, t, s, "alice@localhost", "alice-password")

		alice.sendChat(ctx, t, jid.MustParse("bob@localhost"), "to the bare JID")
		alice.sendChat(ctx, t, low.JID(), "to low directly")

		if got := high.nextMessage(ctx, t); got.Body != "to the bare JID" {
			t.Errorf("priority 5 resource got %q first, want the bare JID message", got.Body)
		}
		// alice's two messages are routed in order: if the bare JID one
		// had gone to low as well, low would see it first.
		if got := low.nextMessage(ctx, t); got.Body != "to low directly" {
			t.Errorf("priority 1 resource got %q first, want only the message to its full JID", got.Body)
		}
	})
	t.Run("goes_to_every_resource_of_equal_highest_priority", func(t *testing.T) {
		ctx := melliumContext(t)
		s := melliumStart(t)
		one := melliumLogin(ctx, t, s, "bob@localhost/one", "bob-password")
		two := melliumLogin(ctx, t, s, "bob@localhost/two", "bob-password")
		one.sendPresence(ctx, t, "3")
		two.sendPresence(ctx, t, "3")
		alice := melliumLogin(ctx, t, s, "alice@localhost", "alice-password")

		alice.sendChat(ctx, t, jid.MustParse("bob@localhost"), "to both")
		for _, c := range []*melliumClient{one, two} {
			if got := c.nextMessage(ctx, t); got.Body != "to both" || got.From != alice.JID().String() {
				t.Errorf("%s got body %q from %q, want %q from %q", c.JID(), got.Body, got.From, "to both", alice.JID())
			}
		}
	})
}

func TestMelliumWrongPasswordFailsThenRightOneWorks(t *testing.T) {
	for _, mech := range []sasl.Mechanism{sasl.ScramSha256Plus, sasl.ScramSha256, sasl.ScramSha1, sasl.Plain} {
		t.Run("with_"+mech.Name, func(t *testing.T) {
			ctx := melliumContext(t)
			s := melliumStart(t, strictIfPlus(mech))
			_, err := melliumDialSTARTTLS(ctx, t, s, "alice@localhost", "not-alice-password", mech)
			if err == nil {
				t.Fatal("logged in with a wrong password")
			}
			if got := melliumSASLCondition(err); got != "not-authorized" {
				t.Errorf("wrong password: error %v, SASL condition %q, want not-authorized", err, got)
			}
			sess, err := melliumDialSTARTTLS(ctx, t, s, "alice@localhost", "alice-password", mech)
			if err != nil {
				t.Fatalf("right password after a wrong one: %v", err)
			}
			melliumServe(t, sess).sync(ctx, t)
		})
	}
}

func TestMelliumDirectTLSLoginAndPing(t *testing.T) {
	ctx := melliumContext(t)
	s := melliumStart(t)
	sess, err := melliumDialDirectTLS(ctx, t, s, "alice@localhost", "alice-password", melliumMechanisms...)
	if err != nil {
		t.Fatalf("log in over direct TLS: %v", err)
	}
	alice := melliumServe(t, sess)
	if err := melliumPing(ctx, alice.Session, jid.MustParse(s.Domain)); err != nil {
		t.Fatalf("ping the server over direct TLS: %v", err)
	}
}

func TestMelliumChannelBinding(t *testing.T) {
	for _, mech := range []sasl.Mechanism{sasl.ScramSha256Plus, sasl.ScramSha1Plus} {
		for _, tc := range []struct {
			name      string
			otherConn bool
		}{
			{"to_the_same_connection_logs_in", false},
			{"to_another_connection_is_not_authorized", true},
		} {
			t.Run(mech.Name+"/"+tc.name, func(t *testing.T) {
				ctx := melliumContext(t)
				s := melliumStart(t, strictIfPlus(mech))
				conn := melliumDialTLS(ctx, t, s, s.Domain)
				state := conn.ConnectionState()
				if tc.otherConn {
					state = melliumDialTLS(ctx, t, s, s.Domain).ConnectionState()
				}
				origin := jid.MustParse("alice@localhost")
				// The wrapper hides the *tls.Conn, so say the session is secure.
				sess, err := xmpp.NewSession(ctx, origin.Domain(), origin, melliumTLSStateOf{conn, state}, xmpp.Secure,
					xmpp.NewNegotiator(func(*xmpp.Session, *xmpp.StreamConfig) xmpp.StreamConfig {
						return xmpp.StreamConfig{Features: []xmpp.StreamFeature{
							xmpp.SASL("", "alice-password", mech),
							xmpp.BindResource(),
						}}
					}))
				if !tc.otherConn {
					if err != nil {
						t.Fatalf("log in with the connection's own channel binding: %v", err)
					}
					melliumServe(t, sess).sync(ctx, t)
					return
				}
				if err == nil {
					t.Fatal("logged in with another connection's channel binding")
				}
				if got := melliumSASLCondition(err); got != "not-authorized" {
					t.Errorf("another connection's channel binding: error %v, SASL condition %q, want not-authorized", err, got)
				}
			})
		}
	}
}

func TestMelliumServerAnswersIQs(t *testing.T) {
	ctx := melliumContext(t)
	s := melliumStart(t)
	alice := melliumLogin(ctx, t, s, "alice@localhost", "alice-password")
	server := jid.MustParse(s.Domain)

	t.Run("disco_info_lists_identity_and_features", func(t *testing.T) {
		got, err := disco.GetInfo(ctx, "", server, alice.Session)
		if err != nil {
			t.Fatalf("disco#info: %v", err)
		}
		if !slices.ContainsFunc(got.Identity, func(id info.Identity) bool { return id.Category == "server" && id.Type == "im" }) {
			t.Errorf("disco#info identities %+v, want category=server type=im", got.Identity)
		}
		var features []string
		for _, f := range got.Features {
			features = append(features, f.Var)
		}
		for _, want := range []string{"http://jabber.org/protocol/disco#info", "urn:xmpp:ping", "jabber:iq:version", "urn:xmpp:time"} {
			if !slices.Contains(features, want) {
				t.Errorf("disco#info features %q lack %q", features, want)
			}
		}
	})
	t.Run("version_is_Parley", func(t *testing.T) {
		v, err := version.Get(ctx, alice.Session, server)
		if err != nil {
			t.Fatalf("version: %v", err)
		}
		if v.Name != "Parley" || v.Version == "" {
			t.Errorf("version: name %q version %q, want name Parley and a version", v.Name, v.Version)
		}
	})
	t.Run("time_is_now", func(t *testing.T) {
		got, err := xtime.Get(ctx, alice.Session, server)
		if err != nil {
			t.Fatalf("time: %v", err)
		}
		if d := time.Since(got); d < -time.Minute || d > time.Minute {
			t.Errorf("time: server says %v, %v away from ours", got, d)
		}
	})
	t.Run("ping_is_a_result", func(t *testing.T) {
		if err := melliumPing(ctx, alice.Session, server); err != nil {
			t.Fatalf("ping: %v", err)
		}
	})
	t.Run("unknown_namespace_is_service_unavailable", func(t *testing.T) {
		iq := stanza.IQ{Type: stanza.GetIQ, To: server}
		payload := xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: "urn:example:no-such-thing", Local: "query"}})
		err := alice.UnmarshalIQ(ctx, iq.Wrap(payload), nil)
		var se stanza.Error
		if !errors.As(err, &se) {
			t.Fatalf("unknown iq: got %v, want a stanza error", err)
		}
		if se.Condition != stanza.ServiceUnavailable || se.Type != stanza.Cancel {
			t.Errorf("unknown iq: got %s/%s, want cancel/service-unavailable", se.Type, se.Condition)
		}
	})
}

func TestMelliumServerStampsFromWithTheSendersFullJID(t *testing.T) {
	ctx := melliumContext(t)
	s := melliumStart(t)
	alice := melliumLogin(ctx, t, s, "alice@localhost", "alice-password")
	bob := melliumLogin(ctx, t, s, "bob@localhost", "bob-password")

	for _, tc := range []struct{ name, from string }{
		{"another_local_user", "eve@localhost/x"},
		{"the_recipient", bob.JID().String()},
		{"the_senders_bare_JID", "alice@localhost"},
		{"the_senders_other_resource", "alice@localhost/other"},
		{"a_remote_user", "mallory@evil.example/x"},
		{"the_server", s.Domain},
	} {
		t.Run("claiming_"+tc.name, func(t *testing.T) {
			msg := stanza.Message{To: bob.JID(), From: jid.MustParse(tc.from), Type: stanza.ChatMessage}
			body := "claiming to be " + tc.from
			if err := alice.Send(ctx, msg.Wrap(melliumBody(body))); err != nil {
				t.Fatalf("send: %v", err)
			}
			got := bob.nextMessage(ctx, t)
			if got.Body != body {
				t.Fatalf("bob got %q, want %q", got.Body, body)
			}
			if got.From != alice.JID().String() {
				t.Errorf("alice sent from=%q: bob sees from=%q, want %q", tc.from, got.From, alice.JID())
			}
		})
	}
}

func TestMelliumUndeliverableMessageBouncesWithError(t *testing.T) {
	ctx := melliumContext(t)
	s := melliumStart(t)
	alice := melliumLogin(ctx, t, s, "alice@localhost", "alice-password")

	for _, tc := range []struct {
		name string
		to   string
		want stanza.Condition
	}{
		{"unknown_local_user", "nobody@localhost", stanza.ServiceUnavailable},
		{"unknown_local_user_full_JID", "nobody@localhost/x", stanza.ServiceUnavailable},
		{"domain_not_served", "someone@nowhere.example", stanza.RemoteServerNotFound},
	} {
		t.Run(tc.name+"_is_"+string(tc.want), func(t *testing.T) {
			msg := stanza.Message{To: jid.MustParse(tc.to), Type: stanza.ChatMessage, ID: "bounce-" + tc.name}
			if err := alice.Send(ctx, msg.Wrap(melliumBody("anyone there?"))); err != nil {
				t.Fatalf("send: %v", err)
			}
			got := alice.nextMessage(ctx, t)
			if got.Type != "error" || got.Error == nil {
				t.Fatalf("alice got type=%q error=%v body=%q, want an error message", got.Type, got.Error, got.Body)
			}
			if got.Error.Condition != tc.want {
				t.Errorf("error condition %q, want %q", got.Error.Condition, tc.want)
			}
			if got.Error.Type != stanza.Cancel {
				t.Errorf("error type %q, want cancel", got.Error.Type)
			}
			if got.From != tc.to {
				t.Errorf("error from=%q, want the address alice wrote to, %q", got.From, tc.to)
			}
			if got.ID != msg.ID {
				t.Errorf("error id=%q, want the message's id %q", got.ID, msg.ID)
			}
		})
	}
}

func TestMelliumSameResourceReplacesTheOlderSession(t *testing.T) {
	ctx := melliumContext(t)
	s := melliumStart(t)
	first := melliumLogin(ctx, t, s, "alice@localhost/phone", "alice-password")
	second := melliumLogin(ctx, t, s, "alice@localhost/phone", "alice-password")

	if err := first.waitEnd(ctx, t); !errors.Is(err, stream.Conflict) {
		t.Errorf("first session ended with %v, want a conflict stream error", err)
	}

	if got, want := second.JID().String(), "alice@localhost/phone"; got != want {
		t.Errorf("second session bound %q, want %q", got, want)
	}
	bob := melliumLogin(ctx, t, s, "bob@localhost", "bob-password")
	bob.sendChat(ctx, t, second.JID(), "to the new phone")
	if got := second.nextMessage(ctx, t); got.Body != "to the new phone" {
		t.Errorf("second session got %q", got.Body)
	}
}

// TestMelliumChatWithParkedSessions: clients whose sessions have parked
// (no goroutine on the server while they are silent) are woken by their
// own stanzas and get what others send them, over and over.
func TestMelliumChatWithParkedSessions(t *testing.T) {
	ctx := melliumContext(t)
	s := parleytest.Start(t, parleytest.WithConfig(func(c *conf.Config) { c.C2S.ParkAfter.Duration = time.Millisecond }))
	s.AddUser("alice@localhost", "alice-password")
	s.AddUser("bob@localhost", "bob-password")
	alice := melliumLogin(ctx, t, s, "alice@localhost", "alice-password")
	bob := melliumLogin(ctx, t, s, "bob@localhost", "bob-password")
	parked := func() {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for sessionGoroutines() > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("after 5s, %d sessions still have their goroutines", sessionGoroutines())
			}
			time.Sleep(time.Millisecond)
		}
	}
	for i := range 3 {
		parked()
		body := fmt.Sprintf("to bob %d", i)
		alice.sendChat(ctx, t, bob.JID(), body)
		if got := bob.nextMessage(ctx, t); got.Body != body {
			t.Fatalf("bob got %q, want %q", got.Body, body)
		}
		parked()
		body = fmt.Sprintf("to alice %d", i)
		bob.sendChat(ctx, t, alice.JID(), body)
		if got := alice.nextMessage(ctx, t); got.Body != body {
			t.Fatalf("alice got %q, want %q", got.Body, body)
		}
	}
}
