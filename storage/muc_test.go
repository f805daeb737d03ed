package storage

import (
	"reflect"
	"testing"
	"time"
)

func TestMUCRooms(t *testing.T) {
	at := time.Unix(1700000000, 123)
	room := MUCRoom{Name: "team", Config: []byte(`{"name":"Team"}`), Secret: []byte("k"),
		Subject: "hello", SubjectFrom: "alice", SubjectAt: at,
		Affiliations: map[string]string{"alice@example.com": "owner", "bob@example.com": "member"},
		Nicks:        map[string]string{"bob@example.com": "Bobby"}, VCard: []byte("<vCard xmlns='vcard-temp'/>")}
	runOnBackends(t, []storeTest{
		{"a room comes back as it was put, affiliations with it", func(t *testing.T, s *Store) {
			if err := s.PutMUCRoom(t.Context(), testHost, room); err != nil {
				t.Fatal(err)
			}
			got, err := s.MUCRooms(t.Context(), testHost)
			if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], room) {
				t.Fatalf("MUCRooms = %+v, %v; want [%+v]", got, err, room)
			}
			if other, err := s.MUCRooms(t.Context(), otherHost); err != nil || len(other) != 0 {
				t.Errorf("another host's rooms = %+v, %v; want none", other, err)
			}
		}},
		{"a second put replaces the config and the affiliations", func(t *testing.T, s *Store) {
			if err := s.PutMUCRoom(t.Context(), testHost, room); err != nil {
				t.Fatal(err)
			}
			r2 := room
			r2.Config = []byte(`{}`)
			r2.Subject, r2.SubjectFrom, r2.SubjectAt = "", "", time.Time{}
			r2.Affiliations = map[string]string{"carol@example.com": "owner"}
			r2.Nicks, r2.VCard = map[string]string{}, nil
			if err := s.PutMUCRoom(t.Context(), testHost, r2); err != nil {
				t.Fatal(err)
			}
			got, err := s.MUCRooms(t.Context(), testHost)
			if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], r2) {
				t.Fatalf("MUCRooms = %+v, %v; want [%+v]", got, err, r2)
			}
		}},
		{"a deleted room and its affiliations are gone", func(t *testing.T, s *Store) {
			if err := s.PutMUCRoom(t.Context(), testHost, room); err != nil {
				t.Fatal(err)
			}
			if err := s.DeleteMUCRoom(t.Context(), testHost, "team"); err != nil {
				t.Fatal(err)
			}
			if err := s.DeleteMUCRoom(t.Context(), testHost, "team"); err != nil {
				t.Errorf("deleting a room that is gone: %v; want nil", err)
			}
			got, err := s.MUCRooms(t.Context(), testHost)
			if err != nil || len(got) != 0 {
				t.Fatalf("MUCRooms = %+v, %v; want none", got, err)
			}
			var n int
			if err := s.db.QueryRow(`SELECT count(*) FROM muc_affiliations`).Scan(&n); err != nil || n != 0 {
				t.Errorf("%d affiliation rows left (%v); want 0", n, err)
			}
		}},
	})
}
