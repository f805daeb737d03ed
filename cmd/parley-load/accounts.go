package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/xmpp"
)

// nsRegister is in-band registration (XEP-0077).
const nsRegister = "jabber:iq:register"

// logins is what loginAll did.
type logins struct {
	conns  []*Conn          // by account number; nil where the login failed
	times  []time.Duration  // connect-to-bound of each successful login
	errs   int64            // failed logins
	err    error            // the first failure
	mech   string           // the mechanism of the first login
	took   time.Duration    // from the first dial to the last bind
	causes map[string]int64 // failures by what went wrong, for the summary
}

// loginAll logs accounts 0..n-1 in, o.Concurrency at a time, and starts
// each stream's reader with handle. With stopOnError the first failure
// stops the logins not yet started.
func loginAll(ctx context.Context, o *options, n int, presence, stopOnError bool, handle func(*Conn, *etree.Element)) *logins {
	res := &logins{conns: make([]*Conn, n), times: make([]time.Duration, n), causes: map[string]int64{}}
	// The connections live as long as ctx; stopping ends only the logins
	// not yet started.
	stopping, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next atomic.Int64
		mu   sync.Mutex
		wg   sync.WaitGroup
	)
	start := time.Now()
	for range min(o.Concurrency, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for stopping.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				t := time.Now()
				c, err := login(ctx, o, i, presence)
				if err != nil {
					mu.Lock()
					res.errs++
					if res.err == nil {
						res.err = err
					}
					res.causes[failureKind(err)]++
					mu.Unlock()
					if stopOnError {
						cancel()
					}
					continue
				}
				res.times[i] = time.Since(t)
				res.conns[i] = c
				c.start(handle)
			}
		}()
	}
	wg.Wait()
	res.took = time.Since(start)
	ok := res.times[:0]
	for i, c := range res.conns {
		if c != nil {
			ok = append(ok, res.times[i])
			if res.mech == "" {
				res.mech = c.Mech
			}
		}
	}
	res.times = ok
	return res
}

// failureKind names the kind of a login failure, for counting.
func failureKind(err error) string {
	var ae *authError
	var se *xmpp.StreamError
	var ste *xmpp.StanzaError
	switch {
	case errors.As(err, &ae):
		return "auth " + ae.condition
	case errors.As(err, &se):
		return "stream " + string(se.Condition)
	case errors.As(err, &ste):
		return "stanza " + string(ste.Condition)
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return "timeout"
	}
	return "other"
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// createAccounts registers accounts 0..n-1 with in-band registration,
// o.Concurrency streams at a time, each registering one account after
// another. An account that exists already is left as it is.
func createAccounts(ctx context.Context, o *options, n int) (created, existed int64, err error) {
	o.progressf("creating %d accounts (%s) with in-band registration", n, o.user(0)+"@"+o.Domain+"…")
	start := time.Now()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		next       atomic.Int64
		nNew, nOld atomic.Int64
		wg         sync.WaitGroup
	)
	for range min(o.Concurrency, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c *Conn
			regs := 0 // accounts made on c
			defer func() {
				if c != nil {
					c.Close()
				}
			}()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				for attempt := 0; ; attempt++ {
					if c == nil {
						var derr error
						if c, derr = dialStream(ctx, o); derr != nil {
							cancel(fmt.Errorf("registration: %w", derr))
							return
						}
						regs = 0
					}
					err := c.register(o.user(i), o.Password)
					var se *xmpp.StanzaError
					switch {
					case err == nil:
						nNew.Add(1)
						regs++
					case errors.Is(err, xmpp.NewStanzaError(xmpp.Conflict, "")):
						nOld.Add(1)
					case attempt == 0 && (!errors.As(err, &se) || regs > 0):
						// The stream broke, or the server allows one
						// registration per stream: once more on a new one.
						c.Close()
						c = nil
						continue
					default:
						cancel(fmt.Errorf("registering %s@%s: %w (allow in-band registration on the server, as registration = \"open\" on a Parley host, or create the accounts another way)",
							o.user(i), o.Domain, err))
						return
					}
					break
				}
			}
		}()
	}
	wg.Wait()
	created, existed = nNew.Load(), nOld.Load()
	if ctx.Err() != nil {
		return created, existed, context.Cause(ctx)
	}
	o.progressf("%d accounts created, %d existed already, in %.1f s", created, existed, time.Since(start).Seconds())
	return created, existed, nil
}

// register asks for the account user with password on a stream that is
// secure and not authenticated (XEP-0077 §3.1, without the form: the
// fields are the two every server asks for).
func (c *Conn) register(user, password string) error {
	_, err := c.iq("reg", "<iq type='set' id='reg'><query xmlns='"+nsRegister+"'><username>"+escape(user)+
		"</username><password>"+escape(password)+"</password></query></iq>")
	return err
}
