package chclient

import (
	"errors"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"
)

// dataErrorCodes are ClickHouse's exceptions about the values sent: the
// same rows fail the same way however often they are retried, and other
// rows do not. Availability (Classify's FailureUnavailable/Timeout), a
// query of ours the server refuses, a missing table and everything not
// listed here are not about the data.
var dataErrorCodes = map[int32]bool{
	6:   true, // CANNOT_PARSE_TEXT
	27:  true, // CANNOT_PARSE_INPUT_ASSERTION_FAILED
	38:  true, // CANNOT_PARSE_DATE
	41:  true, // CANNOT_PARSE_DATETIME
	53:  true, // TYPE_MISMATCH
	69:  true, // ARGUMENT_OUT_OF_BOUND
	70:  true, // CANNOT_CONVERT_TYPE
	72:  true, // CANNOT_PARSE_NUMBER
	117: true, // INCORRECT_DATA
	131: true, // TOO_LARGE_STRING_SIZE
	321: true, // VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
	407: true, // DECIMAL_OVERFLOW
}

// IsDataError reports whether err, from an insert, is about the values of
// the rows rather than the server or the statement: a value the client
// cannot convert to its column (clickhouse-go's AppendRow), or one of the
// exceptions above. A writer that retries forever must not retry such an
// error forever; it can find and set aside the rows that cause it.
// Anything unknown is not a data error, so it is retried: a stalled
// partition is visible and recovers, a row set aside is not metered.
//
// The kind of an error cannot tell a bad row from a changed table: a
// column whose type no longer matches (a rolling upgrade, an ALTER)
// refuses every row with the same conversion error as one bad value. So
// a data error alone is no reason to set a row aside; the aggregator does
// so only once the table is shown to take other rows (aggregator/retry.go,
// "Only rows are parked, never the table").
func IsDataError(err error) bool {
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		return dataErrorCodes[ex.Code]
	}
	var be *proto.BlockError
	return errors.As(err, &be) && be.Op == "AppendRow"
}
