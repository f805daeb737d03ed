package conf

import (
	"errors"
	"os"
	"testing"
)

// FuzzParse checks that no input makes Parse panic, and that every problem
// in a file comes with a line.
func FuzzParse(f *testing.F) {
	f.Add(DefaultTOML)
	if full, err := os.ReadFile("../testdata/conf/full.toml"); err == nil {
		f.Add(full)
	}
	f.Add([]byte("[[host]]\nname = \"a\"\nheaders = { \"X.Y\" = 1, b = [1, {c = 2}] }\n"))
	f.Add([]byte("host = [{ name = 'a', rooms = ['''x\n@y'''] }]\n[c2s]\nlisten = [5222]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.toml", data)
		if err == nil {
			if c == nil {
				t.Fatal("no config and no error")
			}
			return
		}
		var errs Errors
		if !errors.As(err, &errs) {
			t.Fatalf("error %T is not Errors", err)
		}
		for _, e := range errs {
			if e.Line < 1 {
				t.Errorf("problem without a line: %v", e)
			}
		}
	})
}
