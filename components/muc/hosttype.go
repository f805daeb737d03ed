package muc

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/server"
	"github.com/parley-im/parley/server/local"
)

// HostType is the name of the multi-user chat host type.
const HostType = "muc"

// Who may create rooms (restrict_room_creation), after Prosody's option
// of the same name: its false is "anyone", its "local" ours. Prosody's
// true (admins only) waits for a notion of server admins in Parley.
const (
	// CreateLocal lets the users of this server's local hosts create rooms.
	CreateLocal = "local"
	// CreateAnyone lets any JID that reaches the service create rooms.
	CreateAnyone = "anyone"
)

// Options are the keys of a muc host's [[host]] table.
type Options struct {
	// RestrictRoomCreation says who may create a room by joining it:
	// "local" (default) or "anyone".
	RestrictRoomCreation string `toml:"restrict_room_creation"`
	// HistoryLength is how many groupchat messages a room keeps for
	// those who join (XEP-0045 §7.2.15). Default 20, at most 1000.
	HistoryLength int `toml:"history_length"`
	// AllowUnaffiliatedRegister lets users of no affiliation register a
	// nick with a room that is not members-only, which makes them
	// members (XEP-0045 §7.10). Default false, as Prosody's option of
	// the same name: membership gives voice in a moderated room.
	AllowUnaffiliatedRegister bool `toml:"allow_unaffiliated_register"`
	// EnforceRegisteredNick keeps users who registered a nick with a
	// room (XEP-0045 §7.10) to it, as Prosody's
	// enforce_registered_nickname: a join under another nick enters
	// under the registered one (status 210), a change to another nick
	// gets not-acceptable, and registering a nick kicks the user's
	// occupants under other nicks. Default false.
	EnforceRegisteredNick bool `toml:"enforce_registered_nick"`
	// AvatarMaxBytes bounds the vCard (with its avatar, XEP-0486) an
	// owner may set on a room, as serialized. Default 64 KiB, at most
	// 1 MiB; 0 turns room vCards off.
	AvatarMaxBytes conf.Size `toml:"avatar_max_bytes"`
	// Archive is whether new rooms keep an archive (XEP-0313), the
	// default of their muc#roomconfig_enablearchiving: true unless set
	// false (Prosody's muc_log_by_default). A config built in Go sets it
	// with [Options.SetArchive].
	Archive bool `toml:"archive"`
	// archiveOff remembers archive = false across checks (the file's
	// keys are known to the first only).
	archiveOff bool
	// ArchiveExpiresAfter is how long rooms' archived messages are kept,
	// as the local hosts' key of the same name: "1w" by default
	// (Prosody's muc_log_expires_after), at least "1h", or "never".
	ArchiveExpiresAfter string `toml:"archive_expires_after"`
	// MaxRooms bounds the rooms of the service, persistent or not: a
	// join that would create one more gets resource-constraint. Default
	// 10,000; 0 means no limit.
	MaxRooms int `toml:"max_rooms"`
	// MaxUserRooms bounds the rooms one user (bare JID) is in at once,
	// as ejabberd's max_user_conferences: each occupancy holds memory and
	// costs every message of its room. Default 100; 0 means no limit.
	MaxUserRooms int `toml:"max_user_rooms"`
}

// SetArchive sets the archive option of a config built in Go.
func (o *Options) SetArchive(on bool) { o.Archive, o.archiveOff = on, !on }

// ArchiveRetention returns how long rooms' archived messages are kept, 0
// for forever; the options must have been checked.
func (o *Options) ArchiveRetention() time.Duration {
	d, _ := local.ParseRetention(o.ArchiveExpiresAfter)
	return d
}

// The defaults of max_rooms and max_user_rooms (ejabberd's
// max_user_conferences).
const (
	defaultMaxRooms     = 10000
	defaultMaxUserRooms = 100
)

// maxHistoryLength bounds history_length: history is kept in memory.
const maxHistoryLength = 1000

// defaultAvatarBytes and maxAvatarBytes are avatar_max_bytes's default
// (the bound of a user's vCard) and its largest value: a room's vCard
// is kept in memory.
const (
	defaultAvatarBytes = 64 * conf.KiB
	maxAvatarBytes     = conf.MiB
)

// OptionsOf returns the options of the muc host h.
func OptionsOf(h *conf.Host) *Options { return h.Options.(*Options) }

func checkOptions(c *conf.HostCheck, o *Options) {
	switch o.RestrictRoomCreation {
	case "":
		o.RestrictRoomCreation = CreateLocal
	case CreateLocal, CreateAnyone:
	default:
		c.Errorf("restrict_room_creation", "%q is not one of \"local\" (this server's users) or \"anyone\"", o.RestrictRoomCreation)
	}
	if o.HistoryLength == 0 && !c.IsSet("history_length") {
		o.HistoryLength = 20
	}
	if o.MaxRooms == 0 && !c.IsSet("max_rooms") {
		o.MaxRooms = defaultMaxRooms
	}
	if o.MaxRooms < 0 {
		c.Errorf("max_rooms", "%d is negative; write how many rooms the service may hold, or 0 for no limit", o.MaxRooms)
	}
	if o.MaxUserRooms == 0 && !c.IsSet("max_user_rooms") {
		o.MaxUserRooms = defaultMaxUserRooms
	}
	if o.MaxUserRooms < 0 {
		c.Errorf("max_user_rooms", "%d is negative; write how many rooms one user may be in at once, or 0 for no limit", o.MaxUserRooms)
	}
	if o.HistoryLength < 0 || o.HistoryLength > maxHistoryLength {
		c.Errorf("history_length", "%d is not between 0 and %d: a room's history is kept in memory", o.HistoryLength, maxHistoryLength)
	}
	// 0 is a setting (no room vCards): the default fills in only a key
	// a file leaves out.
	if o.AvatarMaxBytes == 0 && c.FromFile() && !c.IsSet("avatar_max_bytes") {
		o.AvatarMaxBytes = defaultAvatarBytes
	}
	if o.AvatarMaxBytes < 0 || o.AvatarMaxBytes > maxAvatarBytes {
		c.Errorf("avatar_max_bytes", "%v is not between 0 and %v: a room's vCard is kept in memory; write \"64KiB\", or 0 for no room vCards",
			o.AvatarMaxBytes, maxAvatarBytes)
	}
	if c.IsSet("archive") {
		o.archiveOff = !o.Archive
	}
	o.Archive = !o.archiveOff
	local.CheckArchiveExpiry(c, &o.ArchiveExpiresAfter)
}

var registerOnce sync.Once

// Register registers the muc host type. Package std calls it from its
// init, after the types it imports registered themselves, so that the
// types are listed in one fixed order (local, http_component, muc, ...)
// whatever order packages are initialized in (by import path, this one
// would come before http_component).
func Register() {
	registerOnce.Do(func() {
		conf.RegisterHostType(HostType, conf.HostType[Options]{Check: checkOptions})
		server.RegisterHostType(HostType, server.HostType{New: newHost})
	})
}

// newHost builds the service of a muc host and loads its stored rooms.
func newHost(env *server.HostEnv) (server.Handler, error) {
	locals := map[string]bool{}
	for _, h := range env.Config.Hosts {
		if h.Type == local.HostLocal {
			locals[h.Name] = true
		}
	}
	s, err := New(Config{
		Domain:       env.Host.Name,
		Options:      *OptionsOf(env.Host),
		LocalDomains: locals,
		Router:       env.Router,
		Store:        env.Store,
		Logger:       env.Log,
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := env.Router.StoreContext()
	defer cancel()
	if err := s.load(ctx); err != nil {
		return nil, fmt.Errorf("muc: load rooms: %w", err)
	}
	if err := s.startArchive(ctx, env.Router); err != nil {
		return nil, err
	}
	env.Router.Go(s.saveLoop)
	return s, nil
}

// Close saves what rooms changed since their last save; the save loop
// does the same when the server's context ends.
func (s *Service) Close(ctx context.Context) error { return s.saveDirty(ctx) }
