package parleytest

import (
	"testing"
)

// iterTB is a testing.TB whose Cleanup functions run at the end of each
// benchmark iteration instead of at the end of the benchmark, so that b.N
// servers are not all alive at once.
type iterTB struct {
	testing.TB
	cleanups []func()
}

func (t *iterTB) Cleanup(f func()) { t.cleanups = append(t.cleanups, f) }

// done runs the cleanups, last registered first, like testing does.
func (t *iterTB) done() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
	t.cleanups = nil
}

// BenchmarkStart measures the fixture: "ready" is Start until the server
// listens, with its store migrated and its certificate made (shutdown is
// not timed); "first_login" adds AddUser and a client that connects,
// negotiates STARTTLS, authenticates with PLAIN and binds.
func BenchmarkStart(b *testing.B) {
	b.Run("ready", func(b *testing.B) {
		t := &iterTB{TB: b}
		b.ReportAllocs()
		for b.Loop() {
			Start(t)
			b.StopTimer()
			t.done()
			b.StartTimer()
		}
	})
	b.Run("first_login", func(b *testing.B) {
		t := &iterTB{TB: b}
		b.ReportAllocs()
		for b.Loop() {
			s := Start(t)
			s.AddUser("alice@localhost", "secret")
			c := s.Login("alice@localhost", "secret", "bench")
			c.Sync()
			b.StopTimer()
			t.done()
			b.StartTimer()
		}
	})
}
