package storage

import (
	"context"
	"fmt"
)

// IterationCounts returns the PBKDF2 iteration counts of host's SCRAM-SHA-256
// keys and how many accounts have each, for the fake exchanges of unknown
// users (c2s/sasl), which must announce counts that real accounts have.
func (s *Store) IterationCounts(ctx context.Context, host string) (map[int]int, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT sha256_iterations, COUNT(*) FROM accounts WHERE host = ? AND sha256_iterations > 0 GROUP BY sha256_iterations`, host)
	if err != nil {
		return nil, fmt.Errorf("storage: iteration counts of %s: %w", host, err)
	}
	defer rows.Close()
	counts := make(map[int]int)
	for rows.Next() {
		var it, n int
		if err := rows.Scan(&it, &n); err != nil {
			return nil, fmt.Errorf("storage: iteration counts of %s: %w", host, err)
		}
		counts[it] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: iteration counts of %s: %w", host, err)
	}
	return counts, nil
}
