package chclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"
)

func TestIsDataError(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want bool
	}{
		{"decimal overflow", fmt.Errorf("insert: %w", &clickhouse.Exception{Code: 407}), true},
		{"a value the client cannot convert", &proto.BlockError{Op: "AppendRow", ColumnName: "time", Err: errors.New("bad")}, true},
		{"wrong number of columns: ours", &proto.BlockError{Op: "Append", Err: errors.New("expected 3 arguments")}, false},
		{"busy", &clickhouse.Exception{Code: 202}, false},
		{"too many parts: merges catch up", &clickhouse.Exception{Code: 252}, false},
		{"unknown table", &clickhouse.Exception{Code: 60}, false},
		{"connection lost", io.ErrUnexpectedEOF, false},
		{"deadline", context.DeadlineExceeded, false},
		{"anything else", errors.New("what"), false},
	} {
		if got := IsDataError(tt.err); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}
