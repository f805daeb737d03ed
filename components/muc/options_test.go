package muc_test

import (
	"errors"
	"testing"

	"github.com/parley-im/parley/components/muc"
	"github.com/parley-im/parley/conf"
)

// TestOptions: the muc host's keys, their defaults and their refusals,
// with the file and line.
func TestOptions(t *testing.T) {
	const head = "[[host]]\nname = \"localhost\"\n\n[[host]]\nname = \"muc.localhost\"\ntype = \"muc\"\n"
	tests := []struct {
		name, src, wantErr string
		want               muc.Options
	}{
		{"the defaults", head, "", muc.Options{RestrictRoomCreation: "local", HistoryLength: 20, AvatarMaxBytes: 64 * conf.KiB, Archive: true, ArchiveExpiresAfter: "1w", MaxRooms: 10000, MaxUserRooms: 100}},
		{"anyone, no history, no room vCards", head + "restrict_room_creation = \"anyone\"\nhistory_length = 0\navatar_max_bytes = 0\n", "",
			muc.Options{RestrictRoomCreation: "anyone", HistoryLength: 0, Archive: true, ArchiveExpiresAfter: "1w", MaxRooms: 10000, MaxUserRooms: 100}},
		{"unaffiliated registration, bigger avatars", head + "allow_unaffiliated_register = true\navatar_max_bytes = \"256KiB\"\n", "",
			muc.Options{RestrictRoomCreation: "local", HistoryLength: 20, AllowUnaffiliatedRegister: true, AvatarMaxBytes: 256 * conf.KiB, Archive: true, ArchiveExpiresAfter: "1w", MaxRooms: 10000, MaxUserRooms: 100}},
		{"registered nicks enforced", head + "enforce_registered_nick = true\n", "",
			muc.Options{RestrictRoomCreation: "local", HistoryLength: 20, EnforceRegisteredNick: true, AvatarMaxBytes: 64 * conf.KiB, Archive: true, ArchiveExpiresAfter: "1w", MaxRooms: 10000, MaxUserRooms: 100}},
		{"avatars too large", head + "avatar_max_bytes = \"2MiB\"\n",
			`m.toml:7: host[1].avatar_max_bytes: 2MiB is not between 0 and 1MiB: a room's vCard is kept in memory; write "64KiB", or 0 for no room vCards`, muc.Options{}},
		{"no archive by default, kept forever", head + "archive = false\narchive_expires_after = \"never\"\n", "",
			func() muc.Options {
				o := muc.Options{RestrictRoomCreation: "local", HistoryLength: 20, AvatarMaxBytes: 64 * conf.KiB, ArchiveExpiresAfter: "never", MaxRooms: 10000, MaxUserRooms: 100}
				o.SetArchive(false)
				return o
			}()},
		{"no room limits", head + "max_rooms = 0\nmax_user_rooms = 0\n", "",
			muc.Options{RestrictRoomCreation: "local", HistoryLength: 20, AvatarMaxBytes: 64 * conf.KiB, Archive: true, ArchiveExpiresAfter: "1w"}},
		{"a negative room limit", head + "max_user_rooms = -1\n",
			`m.toml:7: host[1].max_user_rooms: -1 is negative; write how many rooms one user may be in at once, or 0 for no limit`, muc.Options{}},
		{"a retention of minutes", head + "archive_expires_after = \"5m\"\n",
			`m.toml:7: host[1].archive_expires_after: "5m" is less than an hour; use "1h" or more, or "never" to keep messages forever`, muc.Options{}},
		{"a retention of nothing, which is not forever", head + "archive_expires_after = \"0s\"\n",
			`m.toml:7: host[1].archive_expires_after: "0s" is less than an hour; use "1h" or more, or "never" to keep messages forever`, muc.Options{}},
		{"a retention that is no duration", head + "archive_expires_after = \"soon\"\n",
			`m.toml:7: host[1].archive_expires_after: "soon" is not a duration; write a number and a unit (h, d or w), like "1w", "30d" or "36h", or "never"`, muc.Options{}},
		{"an unknown creation rule", head + "restrict_room_creation = \"admins\"\n",
			`m.toml:7: host[1].restrict_room_creation: "admins" is not one of "local" (this server's users) or "anyone"`, muc.Options{}},
		{"too much history", head + "history_length = 5000\n",
			`m.toml:7: host[1].history_length: 5000 is not between 0 and 1000: a room's history is kept in memory`, muc.Options{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := conf.Parse("m.toml", []byte(tt.src))
			if tt.wantErr != "" {
				var errs conf.Errors
				if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Error() != tt.wantErr {
					t.Fatalf("Parse: %v\nwant %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := *muc.OptionsOf(&c.Hosts[1]); got != tt.want {
				t.Errorf("options %+v; want %+v", got, tt.want)
			}
		})
	}
}
