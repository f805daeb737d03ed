package conf

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// Size is a number of bytes. In TOML it is an integer (bytes) or a string:
// a number, optionally with a fraction, followed by a unit, with or without
// a space between them: B, KiB, MiB, GiB (powers of 1024) or KB, MB, GB
// (powers of 1000; kB is also accepted). "256KiB", "1.5MB" and "512" are
// sizes; "256 kb" is not, because kb is not a unit.
type Size int64

// Units of [Size].
const (
	B   Size = 1
	KiB Size = 1 << 10
	MiB Size = 1 << 20
	GiB Size = 1 << 30
	KB  Size = 1000
	MB  Size = 1000 * KB
	GB  Size = 1000 * MB
)

// sizeUnits is ordered from largest to smallest within each base, binary
// first, which is the order String prefers.
var sizeUnits = []struct {
	name string
	size Size
}{
	{"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB},
	{"GB", GB}, {"MB", MB}, {"KB", KB},
}

// sizeForms says what a size may look like, for error messages.
const sizeForms = `write a number of bytes (65536) or a number and a unit, like "256KiB" or "1.5MB"; ` +
	`the units are B, KiB, MiB, GiB (×1024) and KB, MB, GB (×1000)`

// String returns the size in the largest unit that holds it exactly,
// preferring binary units: "256KiB", "1500KB", "17B". Parsing it gives the
// same size back.
func (s Size) String() string {
	if s != 0 {
		for _, u := range sizeUnits {
			if s%u.size == 0 {
				return strconv.FormatInt(int64(s/u.size), 10) + u.name
			}
		}
	}
	return strconv.FormatInt(int64(s), 10) + "B"
}

// MarshalText implements [encoding.TextMarshaler] with [Size.String].
func (s Size) MarshalText() ([]byte, error) {
	return []byte(s.String()), nil
}

// UnmarshalText implements [encoding.TextUnmarshaler]; see [Size] for the
// accepted forms.
func (s *Size) UnmarshalText(text []byte) error {
	v, err := parseSize(string(text))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

func parseSize(text string) (Size, error) {
	bad := func(why string) (Size, error) {
		if why != "" {
			why += "; "
		}
		return 0, fmt.Errorf("%q is not a size; %s%s", text, why, sizeForms)
	}
	t := strings.TrimSpace(text)
	n := 0
	for n < len(t) && (t[n] >= '0' && t[n] <= '9' || t[n] == '.') {
		n++
	}
	num, unit := t[:n], strings.TrimSpace(t[n:])
	if num == "" || num[0] == '.' || num[len(num)-1] == '.' || strings.Count(num, ".") > 1 {
		return bad("")
	}
	mult := Size(0)
	switch unit {
	case "", "B":
		mult = B
	case "kB":
		mult = KB
	default:
		for _, u := range sizeUnits {
			if unit == u.name {
				mult = u.size
			}
		}
	}
	if mult == 0 {
		return bad(fmt.Sprintf("%q is not a unit", unit))
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return bad("")
	}
	r.Mul(r, new(big.Rat).SetInt64(int64(mult)))
	if !r.IsInt() {
		return bad("it is not a whole number of bytes")
	}
	if !r.Num().IsInt64() {
		return bad("it is too large")
	}
	return Size(r.Num().Int64()), nil
}

// Duration is a [time.Duration] that is a string in TOML, written as Go
// writes durations: "10s", "5m", "1h30m", "250ms". The integer 0 is also
// accepted.
type Duration struct{ time.Duration }

// durationForms says what a duration may look like, for error messages.
const durationForms = `write a number and a unit (ms, s, m or h), like "10s", "5m" or "1h30m"`

// MarshalText implements [encoding.TextMarshaler] with
// [time.Duration.String].
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(d.Duration.String()), nil
}

// UnmarshalText implements [encoding.TextUnmarshaler] with
// [time.ParseDuration].
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := parseDuration(string(text))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

func parseDuration(text string) (time.Duration, error) {
	v, err := time.ParseDuration(strings.TrimSpace(text))
	if err != nil {
		var why string
		if _, nerr := strconv.ParseFloat(strings.TrimSpace(text), 64); nerr == nil {
			why = "a number needs a unit; "
		}
		return 0, fmt.Errorf("%q is not a duration; %s%s", text, why, durationForms)
	}
	return v, nil
}
