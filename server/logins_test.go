package server_test

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/parleytest"
)

// metric reads one sample of /metrics, by its name and labels as written.
func metric(t *testing.T, s *parleytest.Server, sample string) float64 {
	t.Helper()
	v, ok := metricOK(t, s, sample)
	if !ok {
		t.Fatalf("/metrics has no %s", sample)
	}
	return v
}

// metricOK is metric, reporting false for a sample not (yet) there.
func metricOK(t *testing.T, s *parleytest.Server, sample string) (float64, bool) {
	t.Helper()
	resp, err := http.Get(s.HTTPURL + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", sample, err)
			}
			return f, true
		}
	}
	return 0, false
}

// TestLoginLimits: twenty users behind one address (127.0.0.1, as an
// office behind NAT) while one client there keeps failing. Failed logins
// slow the one who fails and never refuse anyone; the others' answers are
// never held. Spraying many accounts from the address slows its attempts
// at accounts that never logged in from there. Whether an answer was held
// is read from the metrics, not the clock.
func TestLoginLimits(t *testing.T) {
	s := parleytest.Start(t, parleytest.WithConfig(func(c *conf.Config) {
		c.Limits.LoginBackoffAfter = 2
		c.Limits.LoginSprayAccounts = 3
		c.Limits.LoginAccountFailures = 1 << 20
		c.Limits.LoginBackoffMax = conf.Duration{Duration: 20 * time.Millisecond}
	}))
	const (
		pair    = `parley_c2s_login_delays_total{limit="login_backoff_after"}`
		spray   = `parley_c2s_login_delays_total{limit="login_spray_accounts"}`
		failed  = `parley_c2s_logins_total{result="failure"}`
		success = `parley_c2s_logins_total{result="success"}`
	)
	for i := range 20 {
		s.AddUser(fmt.Sprintf("u%d@localhost", i), "right")
	}
	s.AddUser("bot@localhost", "right")
	s.AddUser("carol@localhost", "right")
	attempt := func(user, password string) string {
		t.Helper()
		c := s.DialSecure("localhost")
		el := c.AuthPlain(user, password)
		if el.Tag == "failure" && len(el.ChildElements()) > 0 {
			return el.ChildElements()[0].Tag
		}
		return el.Tag
	}

	// Everyone logs in once: these addresses become known to them.
	for i := range 20 {
		if got := attempt(fmt.Sprintf("u%d", i), "right"); got != "success" {
			t.Fatalf("u%d: %s", i, got)
		}
	}

	t.Run("a client that keeps failing slows itself down and is never refused", func(t *testing.T) {
		for i := range 8 {
			if got := attempt("bot", "wrong"); got != "not-authorized" {
				t.Fatalf("attempt %d: %s, want not-authorized", i, got)
			}
		}
		// Attempts 3 to 8 came after two failures.
		if got := metric(t, s, pair); got != 6 {
			t.Errorf("%s = %v, want 6", pair, got)
		}
		if got := attempt("bot", "right"); got != "success" {
			t.Fatalf("the right password after failures: %s, want success (held, not refused)", got)
		}
		if got := metric(t, s, pair); got != 7 {
			t.Errorf("%s = %v, want 7: the right password is held like a wrong one", pair, got)
		}
	})

	t.Run("the twenty others behind the address log in without waiting", func(t *testing.T) {
		for range 3 {
			if got := attempt("bot", "wrong"); got != "not-authorized" {
				t.Fatalf("bot: %s", got)
			}
		}
		before := metric(t, s, pair) + metric(t, s, spray)
		for i := range 20 {
			if got := attempt(fmt.Sprintf("u%d", i), "right"); got != "success" {
				t.Fatalf("u%d: %s", i, got)
			}
		}
		if after := metric(t, s, pair) + metric(t, s, spray); after != before {
			t.Errorf("held answers went from %v to %v while the others logged in", before, after)
		}
	})

	t.Run("spraying accounts from the address slows attempts at new accounts only", func(t *testing.T) {
		for _, u := range []string{"nobody1", "nobody2", "nobody3"} {
			if got := attempt(u, "guess"); got != "not-authorized" {
				t.Fatalf("%s: %s", u, got)
			}
		}
		before := metric(t, s, spray)
		if got := attempt("carol", "right"); got != "success" {
			t.Fatalf("carol: %s, want success", got)
		}
		if got := metric(t, s, spray); got != before+1 {
			t.Errorf("%s = %v, want %v: carol never logged in from here", spray, got, before+1)
		}
		if got := attempt("u7", "right"); got != "success" {
			t.Fatalf("u7: %s", got)
		}
		if got := metric(t, s, spray); got != before+1 {
			t.Errorf("%s = %v, want %v: u7 logged in from here before", spray, got, before+1)
		}
	})

	if f, ok := metric(t, s, failed), metric(t, s, success); f != 14 || ok != 43 {
		t.Errorf("logins: %v failed, %v succeeded; want 14 and 43", f, ok)
	}

	t.Run("probes that stop after the first SCRAM message count as failures and are held", func(t *testing.T) {
		before, heldBefore := metric(t, s, failed), metric(t, s, pair)
		for i := range 4 {
			c := s.DialSecure("localhost")
			first := base64.StdEncoding.EncodeToString([]byte("n,,n=u3,r=probe" + strconv.Itoa(i)))
			c.Send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>%s</auth>", first)
			if el := c.Next(); el.Tag != "challenge" {
				t.Fatalf("probe %d: got %s", i, c.String(el))
			}
			if i%2 == 0 {
				c.Send("<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
				if el := c.Next(); el.Tag != "failure" {
					t.Fatalf("probe %d: abort got %s", i, c.String(el))
				}
			}
			c.Close()
			// A hang-up is seen when the server next reads: wait for
			// it to be counted before the next probe.
			waitUntil(t, "the probe counted as a failure", func() bool { return metric(t, s, failed) == before+float64(i+1) })
		}
		// u3 from here: two probes answered at once, the next two held.
		if got := metric(t, s, pair); got != heldBefore+2 {
			t.Errorf("%s = %v, want %v", pair, got, heldBefore+2)
		}
	})
}

// TestLimitMetrics: the per-account limits' refusals reach /metrics.
func TestLimitMetrics(t *testing.T) {
	s := parleytest.Start(t, parleytest.WithConfig(func(c *conf.Config) { c.Limits.SessionsPerAccount = 1 }))
	s.AddUser("alice@localhost", "secret")
	s.Login("alice@localhost", "secret", "one")
	c := s.DialSecure("localhost")
	if el := c.AuthPlain("alice", "secret"); el.Tag != "success" {
		t.Fatalf("auth: %s", c.String(el))
	}
	c.Open("localhost")
	c.Send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>two</resource></bind></iq>")
	if st := c.NextStanza(); st.Type != "error" {
		t.Fatalf("a second session past sessions_per_account = 1: %s", c.String(st.El))
	}
	const sample = `parley_limit_refusals_total{limit="sessions_per_account"}`
	if got := metric(t, s, sample); got != 1 {
		t.Errorf("%s = %v, want 1", sample, got)
	}
}

// TestRefusalMetrics: stream errors and SASL failures are counted on
// /metrics by condition.
func TestRefusalMetrics(t *testing.T) {
	s := parleytest.Start(t)
	c := s.DialRaw()
	c.Open("localhost")
	c.Send("<message to='bob@localhost'/>")
	c.ExpectStreamError("not-authorized")
	d := s.DialSecure("localhost")
	if el := d.AuthPlain("nobody", "x"); el.Tag != "failure" {
		t.Fatalf("got %s", d.String(el))
	}
	for sample, want := range map[string]float64{
		`parley_c2s_refusals_total{kind="stream",condition="not-authorized"}`: 1,
		`parley_c2s_refusals_total{kind="sasl",condition="not-authorized"}`:   1,
	} {
		waitUntil(t, sample, func() bool { v, ok := metricOK(t, s, sample); return ok && v == want })
	}
}
