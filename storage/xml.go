package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// PutXML stores the XML document xml of user on host under kind and key,
// replacing the one there was: kind "vcard" with key "" for the user's
// vCard, kind "private" with the namespace as key for private XML storage
// (XEP-0049). The store keeps the bytes as given and does not parse them.
// The error wraps [ErrNotFound] when user has no account on host.
func (s *Store) PutXML(ctx context.Context, host, user, kind, key string, xml []byte) error {
	if kind == "" {
		return fmt.Errorf("storage: put xml %q of %s@%s: empty kind", key, user, host)
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO xml_documents (host, username, kind, doc_key, xml)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (host, username, kind, doc_key) DO UPDATE SET xml = excluded.xml`,
		host, user, kind, key, blob(xml))
	if err != nil {
		return fmt.Errorf("storage: put %s xml %q of %s@%s: %w", kind, key, user, host, noAccount(err))
	}
	return nil
}

// XML returns the XML document of user on host stored under kind and key.
// The error wraps [ErrNotFound] when there is none.
func (s *Store) XML(ctx context.Context, host, user, kind, key string) ([]byte, error) {
	var xml []byte
	err := s.db.QueryRowContext(ctx, `SELECT xml FROM xml_documents
		WHERE host = ? AND username = ? AND kind = ? AND doc_key = ?`, host, user, kind, key).Scan(&xml)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("storage: %s xml %q of %s@%s: %w", kind, key, user, host, err)
	}
	return xml, nil
}

// XMLDocs returns the XML documents of user on host stored under kind, by
// key: an empty map when there are none.
func (s *Store) XMLDocs(ctx context.Context, host, user, kind string) (map[string][]byte, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT doc_key, xml FROM xml_documents
		WHERE host = ? AND username = ? AND kind = ?`, host, user, kind)
	if err != nil {
		return nil, fmt.Errorf("storage: %s xml documents of %s@%s: %w", kind, user, host, err)
	}
	defer rows.Close()
	docs := make(map[string][]byte)
	for rows.Next() {
		var (
			key string
			xml []byte
		)
		if err := rows.Scan(&key, &xml); err != nil {
			return nil, fmt.Errorf("storage: %s xml documents of %s@%s: %w", kind, user, host, err)
		}
		docs[key] = xml
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: %s xml documents of %s@%s: %w", kind, user, host, err)
	}
	return docs, nil
}

// DeleteXML deletes the XML document of user on host stored under kind and
// key. Deleting a document that does not exist is not an error.
func (s *Store) DeleteXML(ctx context.Context, host, user, kind, key string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM xml_documents
		WHERE host = ? AND username = ? AND kind = ? AND doc_key = ?`, host, user, kind, key); err != nil {
		return fmt.Errorf("storage: delete %s xml %q of %s@%s: %w", kind, key, user, host, err)
	}
	return nil
}
