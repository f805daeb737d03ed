package storage

import (
	"errors"
	"reflect"
	"testing"
)

func TestXML(t *testing.T) {
	const (
		vcard   = `<vCard xmlns="vcard-temp"><FN>Alice</FN></vCard>`
		vcard2  = `<vCard xmlns="vcard-temp"><FN>Alice B.</FN></vCard>`
		private = `<storage xmlns="storage:bookmarks"/>`
	)
	// wantXML fails the test unless the document under kind and key of
	// user@host is want.
	wantXML := func(t *testing.T, s *Store, host, user, kind, key, want string) {
		t.Helper()
		got, err := s.XML(t.Context(), host, user, kind, key)
		if err != nil {
			t.Fatalf("XML(%s@%s, %s, %q): %v", user, host, kind, key, err)
		}
		if string(got) != want {
			t.Errorf("XML(%s@%s, %s, %q) = %q, want %q", user, host, kind, key, got, want)
		}
	}
	// wantNone fails the test unless user@host has no document under kind
	// and key.
	wantNone := func(t *testing.T, s *Store, host, user, kind, key string) {
		t.Helper()
		if got, err := s.XML(t.Context(), host, user, kind, key); !errors.Is(err, ErrNotFound) {
			t.Errorf("XML(%s@%s, %s, %q) = %q, %v, want ErrNotFound", user, host, kind, key, got, err)
		}
	}
	put := func(t *testing.T, s *Store, host, user, kind, key, xml string) {
		t.Helper()
		if err := s.PutXML(t.Context(), host, user, kind, key, []byte(xml)); err != nil {
			t.Fatalf("PutXML(%s@%s, %s, %q): %v", user, host, kind, key, err)
		}
	}
	runOnBackends(t, []storeTest{
		{"a put document reads back unchanged", func(t *testing.T, s *Store) {
			withUsers(t, s)
			put(t, s, testHost, "alice", "vcard", "", vcard)
			wantXML(t, s, testHost, "alice", "vcard", "", vcard)
		}},
		{"a missing document is ErrNotFound", func(t *testing.T, s *Store) {
			withUsers(t, s)
			wantNone(t, s, testHost, "alice", "vcard", "")
			_, err := s.XML(t.Context(), testHost, "alice", "private", "storage:bookmarks")
			if want := `storage: private xml "storage:bookmarks" of alice@example.com: not found`; err == nil || err.Error() != want {
				t.Errorf("error = %v, want %q", err, want)
			}
		}},
		{"putting a document again replaces it", func(t *testing.T, s *Store) {
			withUsers(t, s)
			put(t, s, testHost, "alice", "vcard", "", vcard)
			put(t, s, testHost, "alice", "vcard", "", vcard2)
			wantXML(t, s, testHost, "alice", "vcard", "", vcard2)
		}},
		{"a deleted document is gone and deleting it again is no error", func(t *testing.T, s *Store) {
			withUsers(t, s)
			put(t, s, testHost, "alice", "vcard", "", vcard)
			for range 2 {
				if err := s.DeleteXML(t.Context(), testHost, "alice", "vcard", ""); err != nil {
					t.Fatalf("DeleteXML: %v", err)
				}
			}
			wantNone(t, s, testHost, "alice", "vcard", "")
		}},
		{"kinds, keys, users and hosts are separate", func(t *testing.T, s *Store) {
			withUsers(t, s)
			put(t, s, testHost, "alice", "vcard", "", vcard)
			put(t, s, testHost, "alice", "private", "storage:bookmarks", private)
			put(t, s, testHost, "alice", "private", "storage:rosternotes", "<notes/>")
			put(t, s, otherHost, "alice", "vcard", "", vcard2)
			if err := s.DeleteXML(t.Context(), testHost, "alice", "private", "storage:rosternotes"); err != nil {
				t.Fatal(err)
			}
			wantXML(t, s, testHost, "alice", "vcard", "", vcard)
			wantXML(t, s, testHost, "alice", "private", "storage:bookmarks", private)
			wantNone(t, s, testHost, "alice", "private", "storage:rosternotes")
			wantNone(t, s, testHost, "alice", "private", "")
			wantNone(t, s, testHost, "alice", "vcard", "storage:bookmarks")
			wantXML(t, s, otherHost, "alice", "vcard", "", vcard2)
			wantNone(t, s, testHost, "bob", "vcard", "")
		}},
		{"the documents of a kind list by key", func(t *testing.T, s *Store) {
			withUsers(t, s)
			put(t, s, testHost, "alice", "subreq", "romeo@example.net", "<presence type='subscribe'/>")
			put(t, s, testHost, "alice", "subreq", "juliet@example.net", "<presence/>")
			put(t, s, testHost, "alice", "vcard", "", vcard)
			put(t, s, testHost, "bob", "subreq", "nurse@example.net", "<presence/>")
			docs, err := s.XMLDocs(t.Context(), testHost, "alice", "subreq")
			if err != nil {
				t.Fatal(err)
			}
			want := map[string][]byte{
				"romeo@example.net":  []byte("<presence type='subscribe'/>"),
				"juliet@example.net": []byte("<presence/>"),
			}
			if !reflect.DeepEqual(docs, want) {
				t.Errorf("XMLDocs() = %q, want %q", docs, want)
			}
			docs, err = s.XMLDocs(t.Context(), otherHost, "alice", "subreq")
			if err != nil || docs == nil || len(docs) != 0 {
				t.Errorf("XMLDocs() of a user without any = %q, %v, want an empty map", docs, err)
			}
		}},
		{"an empty kind is refused", func(t *testing.T, s *Store) {
			withUsers(t, s)
			if err := s.PutXML(t.Context(), testHost, "alice", "", "", []byte(vcard)); err == nil {
				t.Error("PutXML with an empty kind succeeded")
			}
		}},
	})
}
