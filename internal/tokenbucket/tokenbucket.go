// Package tokenbucket is a token bucket as a value: no lock (its owner
// locks it) and no clock or rates of its own, so that every account can
// hold one (24 bytes). The HTTP send API and the per-account roster
// limit use it.
package tokenbucket

import "time"

// Bucket counts the tokens taken and not earned back yet, so the zero
// value is full.
type Bucket struct {
	used float64
	at   time.Time // when used was last brought up to date
}

// Refill earns back what rate tokens a second gave since the last call.
func (b *Bucket) Refill(now time.Time, rate float64) {
	if !b.at.IsZero() {
		b.used = max(0, b.used-now.Sub(b.at).Seconds()*rate)
	}
	b.at = now
}

// Missing reports whether n tokens are there with burst at most; when
// they are not, it returns how long until they will be.
func (b *Bucket) Missing(n int, rate, burst float64) (time.Duration, bool) {
	short := b.used + float64(n) - burst
	if short <= 0 {
		return 0, true
	}
	return time.Duration(short / rate * float64(time.Second)), false
}

// Take takes n tokens at now when they are there; when they are not it
// takes none and returns how long until they will be.
func (b *Bucket) Take(now time.Time, n int, rate, burst float64) (time.Duration, bool) {
	b.Refill(now, rate)
	wait, ok := b.Missing(n, rate, burst)
	if ok {
		b.used += float64(n)
	}
	return wait, ok
}
