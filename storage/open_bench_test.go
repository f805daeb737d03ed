package storage

import (
	"context"
	"testing"
)

// BenchmarkOpenMemory measures opening and closing an in-memory Store:
// "open" is Open alone; "open_and_query" adds a first query, which makes
// SQLite load the schema (parse the CREATE statements of sqlite_schema) on
// a connection that has not yet read it.
func BenchmarkOpenMemory(b *testing.B) {
	ctx := context.Background()
	b.Run("open", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s, err := Open(ctx, Memory)
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
	b.Run("open_and_query", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s, err := Open(ctx, Memory)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.Account(ctx, testHost, "alice"); err == nil {
				b.Fatal("an account in a new store")
			}
			b.StopTimer()
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
}
