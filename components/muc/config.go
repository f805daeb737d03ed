package muc

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/xmpp"
)

// roomConfig is a room's configuration (XEP-0045 §10.2, the
// muc#roomconfig form), stored as JSON (storage.MUCRoom.Config).
type roomConfig struct {
	Name        string `json:"name,omitempty"`
	Desc        string `json:"desc,omitempty"`
	Persistent  bool   `json:"persistent"`
	Public      bool   `json:"public"`
	MembersOnly bool   `json:"members_only"`
	// Moderated makes those of no affiliation visitors when they join:
	// they may not speak until a moderator gives them voice.
	Moderated         bool   `json:"moderated"`
	PasswordProtected bool   `json:"password_protected"`
	Password          string `json:"password,omitempty"`
	// MaxUsers is the most occupants, 0 for no limit.
	MaxUsers int `json:"max_users"`
	// WhoIs is who sees occupants' real JIDs: "moderators" (a
	// semi-anonymous room) or "anyone" (non-anonymous).
	WhoIs string `json:"whois"`
	// ChangeSubject lets participants change the subject; moderators
	// always may.
	ChangeSubject bool `json:"change_subject"`
	// AllowPM is who may send private messages: anyone, participants,
	// moderators or none.
	AllowPM string `json:"allow_pm"`
	// AllowInvites lets the members of a members-only room invite
	// others (who become members); otherwise only its admins and owners
	// may. In an open room anyone in it may invite.
	AllowInvites bool `json:"allow_invites"`
	// Archive is whether the room keeps an archive (XEP-0313,
	// muc#roomconfig_enablearchiving); nil (a room stored before the
	// field) is the host's archive option, filled in by newRoom.
	Archive *bool `json:"archive,omitempty"`
}

// defaultConfig is a new room's configuration (Prosody's defaults: a
// public, temporary, semi-anonymous room).
func defaultConfig() roomConfig {
	return roomConfig{Public: true, WhoIs: "moderators", AllowPM: "anyone"}
}

func decodeConfig(b []byte) (roomConfig, error) {
	c := defaultConfig()
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("muc: room config: %w", err)
	}
	return c, nil
}

func (c roomConfig) encode() []byte {
	b, _ := json.Marshal(c) // plain fields: cannot fail
	return b
}

// The form's fields (XEP-0045 §15.5.3, the muc#roomconfig FORM_TYPE).
const (
	formRoomConfig = "http://jabber.org/protocol/muc#roomconfig"
	formRoomInfo   = "http://jabber.org/protocol/muc#roominfo"
	fName          = "muc#roomconfig_roomname"
	fDesc          = "muc#roomconfig_roomdesc"
	fPersistent    = "muc#roomconfig_persistentroom"
	fPublic        = "muc#roomconfig_publicroom"
	fMembersOnly   = "muc#roomconfig_membersonly"
	fModerated     = "muc#roomconfig_moderatedroom"
	fPasswordProt  = "muc#roomconfig_passwordprotectedroom"
	fSecret        = "muc#roomconfig_roomsecret"
	fMaxUsers      = "muc#roomconfig_maxusers"
	fWhoIs         = "muc#roomconfig_whois"
	fChangeSubject = "muc#roomconfig_changesubject"
	fAllowPM       = "muc#roomconfig_allowpm"
	fAllowInvites  = "muc#roomconfig_allowinvites"
	fArchive       = "muc#roomconfig_enablearchiving"
)

var (
	whoisOptions   = []string{"moderators", "anyone"}
	allowPMOptions = []string{"anyone", "participants", "moderators", "none"}
	maxUserOptions = []string{"10", "20", "30", "50", "100", "none"}
)

// form returns the room's configuration form with its current values.
func (c roomConfig) form() *etree.Element {
	x := xmpp.NewElementNS(NSData, "x")
	x.CreateAttr("type", "form")
	x.CreateElement("title").SetText("Room configuration")
	field(x, "FORM_TYPE", "hidden", "", nil, formRoomConfig)
	field(x, fName, "text-single", "Name", nil, c.Name)
	field(x, fDesc, "text-single", "Description", nil, c.Desc)
	field(x, fPersistent, "boolean", "Persistent (kept when empty)", nil, boolStr(c.Persistent))
	field(x, fPublic, "boolean", "Listed in the service's rooms", nil, boolStr(c.Public))
	field(x, fMembersOnly, "boolean", "Members only", nil, boolStr(c.MembersOnly))
	field(x, fModerated, "boolean", "Moderated (visitors need voice to speak)", nil, boolStr(c.Moderated))
	field(x, fPasswordProt, "boolean", "Password protected", nil, boolStr(c.PasswordProtected))
	field(x, fSecret, "text-private", "Password", nil, c.Password)
	max := "none"
	if c.MaxUsers > 0 {
		max = strconv.Itoa(c.MaxUsers)
	}
	field(x, fMaxUsers, "list-single", "Maximum occupants", maxUserOptions, max)
	field(x, fWhoIs, "list-single", "Who may see real JIDs", whoisOptions, c.WhoIs)
	field(x, fChangeSubject, "boolean", "Participants may change the subject", nil, boolStr(c.ChangeSubject))
	field(x, fAllowPM, "list-single", "Who may send private messages", allowPMOptions, c.AllowPM)
	field(x, fAllowInvites, "boolean", "Members may invite others to a members-only room", nil, boolStr(c.AllowInvites))
	field(x, fArchive, "boolean", "Archive messages (XEP-0313)", nil, boolStr(c.Archive != nil && *c.Archive))
	return x
}

// field adds a data form field to x.
func field(x *etree.Element, v, typ, label string, options []string, value string) *etree.Element {
	f := x.CreateElement("field")
	f.CreateAttr("var", v)
	if typ != "" {
		f.CreateAttr("type", typ)
	}
	if label != "" {
		f.CreateAttr("label", label)
	}
	for _, o := range options {
		opt := f.CreateElement("option")
		opt.CreateAttr("label", o)
		opt.CreateElement("value").SetText(o)
	}
	f.CreateElement("value").SetText(value)
	return f
}

func boolStr(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// submit applies a submitted form to c: every field must be one of the
// form's, with a value of its type (XEP-0004 §3.3), or the whole form is
// refused with the reason.
func (c roomConfig) submit(x *etree.Element) (roomConfig, error) {
	for _, f := range x.SelectElements("field") {
		v := f.SelectAttrValue("var", "")
		var values []string
		for _, val := range f.SelectElements("value") {
			values = append(values, val.Text())
		}
		one := ""
		if len(values) > 0 {
			one = values[0]
		}
		if len(values) > 1 {
			return c, fmt.Errorf("%s takes one value, not %d", v, len(values))
		}
		var err error
		switch v {
		case "FORM_TYPE":
			if one != formRoomConfig {
				return c, fmt.Errorf("FORM_TYPE is %q, not %s", one, formRoomConfig)
			}
		case fName:
			c.Name = one
		case fDesc:
			c.Desc = one
		case fPersistent:
			c.Persistent, err = parseBool(v, one)
		case fPublic:
			c.Public, err = parseBool(v, one)
		case fMembersOnly:
			c.MembersOnly, err = parseBool(v, one)
		case fModerated:
			c.Moderated, err = parseBool(v, one)
		case fPasswordProt:
			c.PasswordProtected, err = parseBool(v, one)
		case fSecret:
			c.Password = one
		case fMaxUsers:
			if one == "none" || one == "" {
				c.MaxUsers = 0
			} else if n, e := strconv.Atoi(one); e == nil && n > 0 {
				c.MaxUsers = n
			} else {
				err = fmt.Errorf("%s is %q: a positive number or none", v, one)
			}
		case fWhoIs:
			c.WhoIs, err = oneOf(v, one, whoisOptions)
		case fChangeSubject:
			c.ChangeSubject, err = parseBool(v, one)
		case fAllowPM:
			c.AllowPM, err = oneOf(v, one, allowPMOptions)
		case fAllowInvites:
			c.AllowInvites, err = parseBool(v, one)
		case fArchive:
			var on bool
			on, err = parseBool(v, one)
			c.Archive = &on
		default:
			return c, fmt.Errorf("%q is not a field of this form", v)
		}
		if err != nil {
			return c, err
		}
	}
	if c.PasswordProtected && c.Password == "" {
		return c, fmt.Errorf("%s is set without a password in %s", fPasswordProt, fSecret)
	}
	return c, nil
}

// parseBool reads an xs:boolean (XEP-0004 §3.3).
func parseBool(v, s string) (bool, error) {
	switch strings.TrimSpace(s) {
	case "1", "true":
		return true, nil
	case "0", "false":
		return false, nil
	}
	return false, fmt.Errorf("%s is %q, not a boolean (0, 1, false, true)", v, s)
}

func oneOf(v, s string, options []string) (string, error) {
	for _, o := range options {
		if s == o {
			return s, nil
		}
	}
	return "", fmt.Errorf("%s is %q, not one of %s", v, s, strings.Join(options, ", "))
}
