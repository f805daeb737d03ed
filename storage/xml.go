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

// XMLDoc is one XML document of a user's kind, for [Store.PutXMLDocs].
type XMLDoc struct {
	Key string
	XML []byte
}

// PutXMLDocs stores docs of user on host under kind, each replacing the
// one of its key, in one transaction: all of them or, on error, none. When
// quota is above 0 and the documents of kind (keys and bytes) would then
// take more than quota bytes, nothing is stored and the error wraps
// [ErrQuota] as a [*QuotaError] in bytes, with what the user had. The
// error wraps [ErrNotFound] when user has no account on host.
func (s *Store) PutXMLDocs(ctx context.Context, host, user, kind string, docs []XMLDoc, quota int64) error {
	if kind == "" {
		return fmt.Errorf("storage: put xml documents of %s@%s: empty kind", user, host)
	}
	err := s.update(ctx, func(tx *sql.Tx) error {
		const size = `SELECT coalesce(sum(length(doc_key) + length(xml)), 0) FROM xml_documents
			WHERE host = ? AND username = ? AND kind = ?`
		var before, after int64
		if quota > 0 {
			if err := tx.QueryRowContext(ctx, size, host, user, kind).Scan(&before); err != nil {
				return err
			}
		}
		for _, d := range docs {
			if _, err := tx.ExecContext(ctx, `INSERT INTO xml_documents (host, username, kind, doc_key, xml)
				VALUES (?, ?, ?, ?, ?)
				ON CONFLICT (host, username, kind, doc_key) DO UPDATE SET xml = excluded.xml`,
				host, user, kind, d.Key, blob(d.XML)); err != nil {
				return err
			}
		}
		if quota <= 0 {
			return nil
		}
		if err := tx.QueryRowContext(ctx, size, host, user, kind).Scan(&after); err != nil {
			return err
		}
		// A change that shrinks what the user keeps is let through, so
		// that a user over a lowered quota can still tidy up.
		if after > quota && after > before {
			return &QuotaError{Unit: "bytes", Used: before, Limit: quota}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: put %d %s xml documents of %s@%s: %w", len(docs), kind, user, host, err)
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
