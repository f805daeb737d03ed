package conf

import (
	"strings"
	"testing"
	"time"
)

func TestSizeUnmarshalText(t *testing.T) {
	tests := []struct {
		name string
		text string
		want Size
		err  string // a part of the error; "" for none
	}{
		{name: "plain digits are bytes", text: "512", want: 512},
		{name: "B is bytes", text: "512B", want: 512},
		{name: "KiB is 1024 bytes", text: "256KiB", want: 256 << 10},
		{name: "MiB is 1024 KiB", text: "1MiB", want: 1 << 20},
		{name: "GiB is 1024 MiB", text: "2GiB", want: 2 << 30},
		{name: "KB is 1000 bytes", text: "64KB", want: 64000},
		{name: "kB is also 1000 bytes", text: "64kB", want: 64000},
		{name: "MB is a million bytes", text: "3MB", want: 3000000},
		{name: "GB is a billion bytes", text: "1GB", want: 1000000000},
		{name: "a fraction that makes whole bytes is fine", text: "1.5MB", want: 1500000},
		{name: "a binary fraction is fine", text: "1.5MiB", want: 3 << 19},
		{name: "a space before the unit is fine", text: "256 KiB", want: 256 << 10},
		{name: "zero is zero", text: "0", want: 0},
		{name: "a lower-case kb is not a unit", text: "256 kb", err: `"kb" is not a unit`},
		{name: "a word is not a unit", text: "5 bytes", err: `"bytes" is not a unit`},
		{name: "a fraction of a byte is refused", text: "0.5B", err: "whole number of bytes"},
		{name: "a negative size is refused", text: "-1", err: "not a size"},
		{name: "an empty string is refused", text: "", err: "not a size"},
		{name: "a unit alone is refused", text: "KiB", err: "not a size"},
		{name: "two dots are refused", text: "1.2.3KB", err: "not a size"},
		{name: "a trailing dot is refused", text: "1.KB", err: "not a size"},
		{name: "a size past int64 is refused", text: "9999999999GiB", err: "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Size
			err := s.UnmarshalText([]byte(tt.text))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("UnmarshalText(%q) = %v, %v; want an error containing %q", tt.text, s, err, tt.err)
				}
				if !strings.Contains(err.Error(), "KiB, MiB, GiB") {
					t.Errorf("error %q does not list the accepted units", err)
				}
				return
			}
			if err != nil || s != tt.want {
				t.Fatalf("UnmarshalText(%q) = %d, %v; want %d", tt.text, s, err, tt.want)
			}
		})
	}
}

func TestSizeString(t *testing.T) {
	tests := []struct {
		name string
		size Size
		want string
	}{
		{name: "zero is 0B", size: 0, want: "0B"},
		{name: "an odd count stays in bytes", size: 17, want: "17B"},
		{name: "a multiple of 1024 uses KiB", size: 256 * KiB, want: "256KiB"},
		{name: "a multiple of a MiB uses MiB", size: 3 * MiB, want: "3MiB"},
		{name: "a multiple of a GiB uses GiB", size: 4 * GiB, want: "4GiB"},
		{name: "a half MiB is KiB", size: 3 * MiB / 2, want: "1536KiB"},
		{name: "a decimal size uses decimal units", size: 1500 * KB, want: "1500KB"},
		{name: "a round million is MB", size: 2 * MB, want: "2MB"},
		{name: "binary wins when both divide", size: 1000 * KiB, want: "1000KiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.size.String(); got != tt.want {
				t.Errorf("Size(%d).String() = %q; want %q", int64(tt.size), got, tt.want)
			}
			var back Size
			text, _ := tt.size.MarshalText()
			if err := back.UnmarshalText(text); err != nil || back != tt.size {
				t.Errorf("round trip of %d through %q gave %d, %v", int64(tt.size), text, back, err)
			}
		})
	}
}

func TestDurationUnmarshalText(t *testing.T) {
	tests := []struct {
		name string
		text string
		want time.Duration
		err  string
	}{
		{name: "seconds", text: "10s", want: 10 * time.Second},
		{name: "minutes", text: "5m", want: 5 * time.Minute},
		{name: "hours and minutes", text: "1h30m", want: 90 * time.Minute},
		{name: "milliseconds", text: "250ms", want: 250 * time.Millisecond},
		{name: "zero seconds", text: "0s", want: 0},
		{name: "a bare zero", text: "0", want: 0},
		{name: "a number without a unit is refused", text: "10", err: "a number needs a unit"},
		{name: "words are refused", text: "5 minutes", err: "not a duration"},
		{name: "an empty string is refused", text: "", err: "not a duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d Duration
			err := d.UnmarshalText([]byte(tt.text))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), `"5m"`) {
					t.Fatalf("UnmarshalText(%q) = %v; want an error containing %q and an example", tt.text, err, tt.err)
				}
				return
			}
			if err != nil || d.Duration != tt.want {
				t.Fatalf("UnmarshalText(%q) = %v, %v; want %v", tt.text, d, err, tt.want)
			}
			text, _ := d.MarshalText()
			var back Duration
			if err := back.UnmarshalText(text); err != nil || back != d {
				t.Errorf("round trip through %q gave %v, %v", text, back, err)
			}
		})
	}
}
