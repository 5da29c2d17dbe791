package schemas

// The encoding/json definitions of the record layout, and the scanner
// EncodeRecord and DecodeRecord rely on, for the differential fuzzers and
// benchmarks of schemas_test.
var (
	EncodeRecordJSON = encodeRecordJSON
	DecodeRecordJSON = decodeRecordJSON
	IsCompactJSON    = isCompactJSON
	SkipJSONValue    = skipJSONValue
	ParseTimeFast    = parseTimeFast
)

const MaxSkipDepth = maxSkipDepth

// ReadsInOnePass reports whether DecodeRecord reads value without
// encoding/json.
func ReadsInOnePass(value []byte) bool {
	_, ok := readRecordValue(value)
	return ok
}
