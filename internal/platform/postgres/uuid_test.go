package postgres_test

import (
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/escqrs/platform/internal/platform/postgres"
)

func TestUUIDEncodesTheSameBytes(t *testing.T) {
	m := pgtype.NewMap()
	for _, id := range []uuid.UUID{uuid.Nil, uuid.MustParse("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"), uuid.New()} {
		viaValuer, err := m.Encode(pgtype.UUIDOID, pgtype.BinaryFormatCode, id, nil)
		if err != nil {
			t.Fatal(err)
		}
		direct, err := m.Encode(pgtype.UUIDOID, pgtype.BinaryFormatCode, postgres.UUID(id), nil)
		if err != nil {
			t.Fatal(err)
		}
		if string(direct) != string(viaValuer) || string(direct) != string(id[:]) {
			t.Errorf("%s: direct %x, through its Valuer %x", id, direct, viaValuer)
		}
	}
}

// BenchmarkEncode compares a uuid.UUID parameter, encoded through its
// driver.Valuer, with postgres.UUID.
func BenchmarkEncode(b *testing.B) {
	m := pgtype.NewMap()
	id := uuid.New()
	for _, c := range []struct {
		name string
		arg  any
	}{{"uuid.UUID", id}, {"postgres.UUID", postgres.UUID(id)},
		{"[]uuid.UUID", []uuid.UUID{id, id, id}}, {"[]pgtype.UUID", []pgtype.UUID{postgres.UUID(id), postgres.UUID(id), postgres.UUID(id)}}} {
		oid := uint32(pgtype.UUIDOID)
		if _, ok := c.arg.(pgtype.UUID); !ok && c.name[0] == '[' {
			oid = pgtype.UUIDArrayOID
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			buf := make([]byte, 0, 128)
			for b.Loop() {
				if _, err := m.Encode(oid, pgtype.BinaryFormatCode, c.arg, buf[:0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
