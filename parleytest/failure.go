package parleytest

import (
	"fmt"
	"runtime"
	"testing"
)

// FailureOf runs fn with a testing.TB that records the first failure
// (Fatal, Fatalf, Error, Errorf, FailNow) instead of failing t, and
// returns its message: "" when fn did not fail. It is for tests of test
// helpers, which must show that the helper fails when it should. fn runs
// on a goroutine of its own, since a Fatal ends it; it must not call t
// itself.
func FailureOf(t testing.TB, fn func(tb testing.TB)) string {
	t.Helper()
	f := &recordingTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f.msg
}

// recordingTB is the testing.TB of FailureOf.
type recordingTB struct {
	testing.TB
	msg    string
	failed bool
}

func (f *recordingTB) Helper() {}

func (f *recordingTB) record(msg string) {
	if !f.failed {
		f.failed, f.msg = true, msg
		if f.msg == "" {
			f.msg = "(failed without a message)"
		}
	}
}

func (f *recordingTB) Error(args ...any)                 { f.record(fmt.Sprint(args...)) }
func (f *recordingTB) Errorf(format string, args ...any) { f.record(fmt.Sprintf(format, args...)) }
func (f *recordingTB) Fail()                             { f.record("") }
func (f *recordingTB) Failed() bool                      { return f.failed }
func (f *recordingTB) FailNow()                          { f.record(""); runtime.Goexit() }
func (f *recordingTB) Fatal(args ...any)                 { f.record(fmt.Sprint(args...)); runtime.Goexit() }
func (f *recordingTB) Fatalf(format string, args ...any) {
	f.record(fmt.Sprintf(format, args...))
	runtime.Goexit()
}
