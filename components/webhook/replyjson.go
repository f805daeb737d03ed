package webhook

import (
	"strings"
	"unicode/utf8"
)

// fastReplies decodes the answers most webhooks give, one Reply object or
// an array of them whose members are the Reply fields, lower case, with
// string values, without encoding/json's reflection. ok is false for
// anything else (other keys, other spellings, null, numbers, \u escapes,
// invalid UTF-8, syntax errors...): the caller then decodes with
// encoding/json, which has the final word, so this never changes what an
// answer means. body has no surrounding whitespace.
func fastReplies(body []byte) (replies []Reply, ok bool) {
	p := replyParser{b: body}
	switch {
	case p.eat('{'):
		var r Reply
		if !p.object(&r) {
			return nil, false
		}
		replies = []Reply{r}
	case p.eat('['):
		replies = []Reply{}
		p.space()
		if !p.eat(']') {
			for {
				p.space()
				var r Reply
				if !p.eat('{') || !p.object(&r) {
					return nil, false
				}
				replies = append(replies, r)
				p.space()
				if p.eat(']') {
					break
				}
				if !p.eat(',') {
					return nil, false
				}
			}
		}
	default:
		return nil, false
	}
	if p.i != len(p.b) {
		return nil, false
	}
	return replies, true
}

// replyParser reads JSON from b at i.
type replyParser struct {
	b []byte
	i int
}

// eat consumes c if it comes next.
func (p *replyParser) eat(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// space skips JSON whitespace.
func (p *replyParser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// object reads the members of an object after its '{', and the '}'.
func (p *replyParser) object(r *Reply) bool {
	p.space()
	if p.eat('}') {
		return true
	}
	for {
		p.space()
		key, ok := p.key()
		if !ok {
			return false
		}
		p.space()
		if !p.eat(':') {
			return false
		}
		p.space()
		v, ok := p.str()
		if !ok {
			return false
		}
		switch key {
		case "to":
			r.To = v
		case "from":
			r.From = v
		case "kind":
			r.Kind = v
		case "type":
			r.Type = v
		case "id":
			r.ID = v
		case "body":
			r.Body = v
		case "stanza":
			r.Stanza = v
		default:
			return false
		}
		p.space()
		if p.eat('}') {
			return true
		}
		if !p.eat(',') {
			return false
		}
	}
}

// key reads an object key: plain ASCII letters only. It returns a
// constant string, not a copy.
func (p *replyParser) key() (string, bool) {
	if !p.eat('"') {
		return "", false
	}
	start := p.i
	for p.i < len(p.b) && 'a' <= p.b[p.i] && p.b[p.i] <= 'z' {
		p.i++
	}
	k := p.b[start:p.i]
	if !p.eat('"') {
		return "", false
	}
	switch string(k) {
	case "to":
		return "to", true
	case "from":
		return "from", true
	case "kind":
		return "kind", true
	case "type":
		return "type", true
	case "id":
		return "id", true
	case "body":
		return "body", true
	case "stanza":
		return "stanza", true
	}
	return "", false
}

// str reads a string of valid UTF-8 without control characters, whose
// only escapes are the two-character ones.
func (p *replyParser) str() (string, bool) {
	if !p.eat('"') {
		return "", false
	}
	start := p.i
	escaped := false
	ascii := true
	for {
		if p.i >= len(p.b) {
			return "", false
		}
		c := p.b[p.i]
		switch {
		case c == '"':
			raw := p.b[start:p.i]
			p.i++
			if !ascii && !utf8.Valid(raw) {
				return "", false
			}
			if !escaped {
				return string(raw), true
			}
			return unescape(raw), true
		case c == '\\':
			if p.i+1 >= len(p.b) {
				return "", false
			}
			switch p.b[p.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			default:
				return "", false // \u and errors: for encoding/json
			}
			escaped = true
			p.i += 2
		case c < ' ':
			return "", false
		default:
			if c >= utf8.RuneSelf {
				ascii = false
			}
			p.i++
		}
	}
}

// unescape decodes the two-character escapes of raw, checked by str.
func unescape(raw []byte) string {
	var out strings.Builder
	out.Grow(len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			out.WriteByte(c)
			continue
		}
		i++
		switch raw[i] {
		case 'b':
			c = '\b'
		case 'f':
			c = '\f'
		case 'n':
			c = '\n'
		case 'r':
			c = '\r'
		case 't':
			c = '\t'
		default: // '"', '\\', '/'
			c = raw[i]
		}
		out.WriteByte(c)
	}
	return out.String()
}
