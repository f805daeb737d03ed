package webhook

import (
	"bytes"
	"reflect"
	"testing"
)

var replySeeds = []string{
	`{"body":"hi"}`, `{}`, `[]`, `[ ]`, `[{}]`, `[{"body":"a"},{"body":"b"}]`,
	`{"to":"a@b/c","from":"x@bots.example","kind":"message","type":"chat","id":"1","body":"yo","stanza":""}`,
	`{ "body" : "multi\nline \"quoted\" \\ \/ \t\b\f\r" , "id":"x" }`,
	`{"stanza":"<message to='a@b'><body>x</body></message>"}`,
	`{"body":"é 日本 🎉"}`, `{"body":"bad \xff"}`, `{"body":"\u00e9"}`, `{"body":"ctl ` + "\x01" + `"}`,
	`{"Body":"case"}`, `{"BODY":"case"}`, `{"other":"x"}`, `{"body":null}`, `{"body":1}`, `{"body":"a","body":"b"}`,
	`{"body":"x"}{}`, `{"body":"x"}]`, `[{"body":"x"},]`, `[{"body":"x"}`, `{"body":"x",}`, `{"body":"x"`, `{"body"}`,
	`[1]`, `[[]]`, `{"body":{"x":1}}`, `{"body":"\ud800"}`, `{"body":"a\"}`, `["x"]`,
}

func TestStrictJSONRefusesAnythingAfterTheValue(t *testing.T) {
	for _, s := range []string{`{"body":"x"}]`, `{"body":"x"}}`, `[{"body":"x"}]]`, `{}{}`, `{} x`, `[] 1`} {
		if _, err := decodeReplies([]byte(s)); err == nil || err.Error() != "data after the JSON value" {
			t.Errorf("%s: err = %v, want data after the JSON value", s, err)
		}
	}
	for _, s := range []string{`{"body":"x"}`, "{\"body\":\"x\"}\n\t ", `[]`} {
		if _, err := decodeReplies([]byte(s)); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
}

func TestFastRepliesAgreesWithEncodingJSON(t *testing.T) {
	fast := 0
	for _, s := range replySeeds {
		if checkFastReplies(t, []byte(s)) {
			fast++
		}
	}
	if fast < 10 {
		t.Fatalf("only %d of the seeds took the fast path", fast)
	}
	if _, ok := fastReplies([]byte(`{"body":"hi"}`)); !ok {
		t.Fatal("the commonest answer is not on the fast path")
	}
}

// checkFastReplies fails when fastReplies decodes body differently from
// encoding/json, and reports whether it decoded it.
func checkFastReplies(t *testing.T, body []byte) bool {
	t.Helper()
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return false
	}
	got, ok := fastReplies(body)
	if !ok {
		return false
	}
	want, err := decodeReplies(body)
	if err != nil {
		t.Fatalf("%q: the fast path took what encoding/json refuses (%v)", body, err)
	}
	if len(got) != len(want) || (len(got) > 0 && !reflect.DeepEqual(got, want)) {
		t.Fatalf("%q: fast %+v, encoding/json %+v", body, got, want)
	}
	return true
}

func FuzzFastReplies(f *testing.F) {
	for _, s := range replySeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) { checkFastReplies(t, body) })
}
