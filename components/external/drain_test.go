package external_test

import (
	"context"
	"errors"
	"testing"

	"github.com/parley-im/parley/parleytest"
	"github.com/parley-im/parley/xmpp"
)

// TestShutdownDrains: at shutdown the component gets what was queued,
// then <system-shutdown/>; what it sends before its closing tag still
// reaches the clients, which close after it.
func TestShutdownDrains(t *testing.T) {
	s, addr := start(t)
	s.AddUser("alice@localhost", "a")
	alice := s.Login("alice@localhost", "a", "phone")
	c, err := login(t, addr, gw, secret)
	if err != nil {
		t.Fatal(err)
	}
	alice.Send("<message to='bob@%s' id='before'><body>x</body></message>", gw)
	if st := c.Next(); st.ID != "before" {
		t.Fatalf("the component got %s", str(st.El))
	}
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(context.Background()) }()
	_, err = c.NextErr()
	var se *xmpp.StreamError
	if !errors.As(err, &se) || se.Condition != xmpp.SystemShutdown {
		t.Fatalf("the component got %v, want system-shutdown", err)
	}
	c.Send("<message from='bob@%s' to='alice@localhost/phone' id='last'><body>bye</body></message></stream:stream>", gw)
	if _, err := c.NextErr(); !errors.Is(err, xmpp.ErrStreamClosed) {
		t.Errorf("after system-shutdown: %v, want the closing tag", err)
	}
	got, _ := alice.WaitFor("the component's last message", func(st *xmpp.Stanza) bool { return st.ID == "last" })
	if parleytest.Body(got) != "bye" {
		t.Errorf("alice got %s", alice.String(got.El))
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}
