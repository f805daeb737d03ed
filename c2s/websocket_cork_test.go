package c2s

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// countingConn records each Write it gets.
type countingConn struct {
	net.Conn
	mu     sync.Mutex
	writes []string
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes = append(c.writes, string(p))
	return len(p), nil
}

func (c *countingConn) SetWriteDeadline(time.Time) error { return nil }

func TestCorkConn(t *testing.T) {
	tests := []struct {
		name string
		run  func(c *corkConn)
		want []string // the writes the socket got, in order
	}{
		{"uncorked_writes_go_through_one_by_one", func(c *corkConn) {
			_, _ = c.Write([]byte("<a/>"))
			_, _ = c.Write([]byte("<b/>"))
		}, []string{"<a/>", "<b/>"}},
		{"corked_writes_leave_in_one_write_at_uncork", func(c *corkConn) {
			c.cork()
			_, _ = c.Write([]byte("<a/>"))
			_, _ = c.Write([]byte("<b/>"))
			_, _ = c.Write([]byte("<c/>"))
			_ = c.uncork(time.Time{})
		}, []string{"<a/><b/><c/>"}},
		{"after_uncork_writes_go_through_again", func(c *corkConn) {
			c.cork()
			_, _ = c.Write([]byte("<a/>"))
			_ = c.uncork(time.Now().Add(time.Second))
			_, _ = c.Write([]byte("<b/>"))
		}, []string{"<a/>", "<b/>"}},
		{"uncork_with_nothing_held_writes_nothing", func(c *corkConn) {
			c.cork()
			_ = c.uncork(time.Time{})
		}, nil},
		{"another_goroutine's_write_while_corked_joins_the_batch_whole", func(c *corkConn) {
			c.cork()
			_, _ = c.Write([]byte("<a/>"))
			done := make(chan struct{})
			go func() {
				_, _ = c.Write([]byte("<pong/>"))
				close(done)
			}()
			<-done
			_, _ = c.Write([]byte("<b/>"))
			_ = c.uncork(time.Time{})
		}, []string{"<a/><pong/><b/>"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			under := &countingConn{}
			tt.run(&corkConn{Conn: under})
			if strings.Join(under.writes, "|") != strings.Join(tt.want, "|") || len(under.writes) != len(tt.want) {
				t.Errorf("writes %q, want %q", under.writes, tt.want)
			}
		})
	}
}

// passConn counts the writes it passes through.
type passConn struct {
	net.Conn
	mu     sync.Mutex
	writes int
}

func (c *passConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes++
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// TestWSFlushIsOneWrite: the frames of one Flush reach the client as
// separate messages, in order, from one write to the socket.
func TestWSFlushIsOneWrite(t *testing.T) {
	type accepted struct {
		c     *wsConn
		under *passConn
	}
	got := make(chan accepted, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &corkResponse{ResponseWriter: w}
		ws, err := websocket.Accept(cw, r, &websocket.AcceptOptions{Subprotocols: []string{WebSocketSubprotocol}})
		if err != nil {
			t.Error(err)
			return
		}
		under := &passConn{Conn: cw.conn.Conn}
		cw.conn.Conn = under // nothing was written since the handshake
		c := newWSConn(ws, &net.TCPAddr{})
		c.cork = cw.conn
		got <- accepted{c, under}
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), &websocket.DialOptions{Subprotocols: []string{WebSocketSubprotocol}})
	if err != nil {
		t.Fatal(err)
	}
	defer client.CloseNow()
	a := <-got
	defer a.c.ws.CloseNow()
	frames := []string{"<message id='1'/>", "<message id='2'/>", "<message id='3'/>"}
	for _, f := range frames {
		_, _ = a.c.Write([]byte(f))
		a.c.EndFrame()
	}
	if err := a.c.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, want := range frames {
		_, data, err := client.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(data) != want {
			t.Fatalf("got message %q, want %q", data, want)
		}
	}
	a.under.mu.Lock()
	defer a.under.mu.Unlock()
	if a.under.writes != 1 {
		t.Errorf("%d writes to the socket for one flush of %d frames, want 1", a.under.writes, len(frames))
	}
}
