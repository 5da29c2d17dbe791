package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/shopspring/decimal"

	"github.com/tally-oss/tally/schemas"
)

// usageRecord is a PriceOps usage record that passed parseUsageRecord.
type usageRecord struct {
	id         string // usage_record_id
	customerID string
	items      []usageItem
}

// usageItem is one item of usage_data.
type usageItem struct {
	index        int    // in usage_data
	resource     string // a meter key
	quantity     decimal.Decimal
	quantityText string // the JSON number as sent, which the event carries
}

var (
	recordFields = []string{"usage_record_id", "customer_id", "usage_data"}
	itemFields   = []string{"resource", "quantity"}
)

// parseUsageRecord decodes a usage record strictly: every missing,
// mistyped or unknown field is a problem naming it. err is a body that is
// not JSON at all (a *requestError). rec.items holds the items that have
// no problem, so that their meters can be checked too and one answer
// names every problem.
func parseUsageRecord(body []byte) (rec usageRecord, problems []fieldProblem, err error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return rec, nil, malformed("the body is empty; send a usage record {\"usage_record_id\", \"customer_id\", \"usage_data\"}")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return rec, nil, syntaxError(body, dec, err)
	}
	if rest := bytes.TrimLeft(body[dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return rec, nil, malformed("invalid JSON at %s: unexpected data after the usage record; send one record per request",
			position(body, int64(len(body)-len(rest))))
	}
	obj, p := object(raw, "usage_record", recordFields)
	if p != nil {
		return rec, p, nil
	}
	// usage_record_id may hold ':': a meter key never does, so the event
	// ids id + ":" + resource of different records stay distinct.
	rec.id, _ = stringField(obj, "usage_record_id", schemas.MaxEventIDLen, &problems)
	rec.customerID, _ = stringField(obj, "customer_id", schemas.MaxCustomerIDLen, &problems)
	problems = append(problems, unknownFields(obj, "", recordFields)...)

	items, ok := obj["usage_data"]
	if !ok || isNull(items) {
		return rec, append(problems, problem("usage_data", "is required: an array of {\"resource\", \"quantity\"}")), nil
	}
	var list []json.RawMessage
	if json.Unmarshal(items, &list) != nil {
		return rec, append(problems, problem("usage_data", "must be an array of {\"resource\", \"quantity\"}")), nil
	}
	switch {
	case len(list) == 0:
		return rec, append(problems, problem("usage_data", "must hold at least one item")), nil
	case len(list) > MaxUsageItems:
		return rec, append(problems, problem("usage_data", "has %d items, at most %d allowed; send the others in another usage record", len(list), MaxUsageItems)), nil
	}
	first := map[string]int{} // resource -> index of its first item
	idTooLong := false
	for i, raw := range list {
		field := fmt.Sprintf("usage_data[%d]", i)
		item, itemProblems := parseUsageItem(raw, field)
		item.index = i
		problems = append(problems, itemProblems...)
		if len(itemProblems) > 0 {
			continue
		}
		if j, dup := first[item.resource]; dup {
			problems = append(problems, problem(field+".resource", "%q repeats usage_data[%d].resource; send one item per resource, with the quantities added", item.resource, j))
			continue
		}
		first[item.resource] = i
		if n := utf8.RuneCountInString(rec.id) + 1 + len(item.resource); rec.id != "" && n > schemas.MaxEventIDLen && !idTooLong {
			idTooLong = true // said once, for the first resource
			problems = append(problems, problem("usage_record_id", "is too long for the resource %q: the event id <usage_record_id>:%s is %d characters, at most %d allowed",
				item.resource, item.resource, n, schemas.MaxEventIDLen))
		}
		rec.items = append(rec.items, item)
	}
	return rec, problems, nil
}

// parseUsageItem decodes one item of usage_data.
func parseUsageItem(raw json.RawMessage, field string) (item usageItem, problems []fieldProblem) {
	obj, problems := object(raw, field, itemFields)
	if problems != nil {
		return item, problems
	}
	if res, ok := stringField(obj, field+".resource", 0, &problems); ok {
		if !schemas.MeterKeyPattern.MatchString(res) {
			problems = append(problems, problem(field+".resource", "%q is not a meter key (keys match %s)", res, schemas.MeterKeyPattern))
		}
		item.resource = res
	}
	problems = append(problems, unknownFields(obj, field+".", itemFields)...)
	q, ok := obj["quantity"]
	if !ok || isNull(q) {
		return item, append(problems, problem(field+".quantity", "is required: a JSON number"))
	}
	item.quantityText = string(bytes.TrimSpace(q))
	var err error
	if item.quantity, err = quantity(item.quantityText); err != nil {
		problems = append(problems, problem(field+".quantity", "%v", err))
	}
	return item, problems
}

// quantity reads a JSON number as an exact decimal. Strings are refused,
// even numeric ones: PriceOps sends numbers, and "5000" for a number is a
// client bug worth seeing.
func quantity(text string) (decimal.Decimal, error) {
	switch text[0] {
	case '"':
		return decimal.Decimal{}, fmt.Errorf("must be a JSON number, not the string %s", clip(text))
	case 't', 'f':
		return decimal.Decimal{}, fmt.Errorf("must be a JSON number, not the boolean %s", text)
	case '{', '[':
		return decimal.Decimal{}, fmt.Errorf("must be a JSON number, not an object or array")
	}
	if len(text) > maxQuantityLen {
		return decimal.Decimal{}, fmt.Errorf("is %d characters long, at most %d allowed", len(text), maxQuantityLen)
	}
	// Checked before decimal reads it: it refuses large exponents as "not
	// a number", which 1e1000000000 is.
	if i := strings.IndexAny(text, "eE"); i >= 0 {
		if exp, err := strconv.Atoi(text[i+1:]); err != nil || exp > maxQuantityExponent || exp < -maxQuantityExponent {
			return decimal.Decimal{}, fmt.Errorf("%s is out of range (at most ±10^%d)", text, schemas.ValuePrecision-schemas.ValueScale)
		}
	}
	d, err := decimal.NewFromString(text)
	if err != nil {
		return decimal.Decimal{}, fmt.Errorf("%s is not a number", clip(text))
	}
	return d, nil
}

// object decodes raw as a JSON object; a problem names field otherwise.
// Names are matched exactly, and a name twice is a problem rather than
// the last value winning (schemas.DecodeObject); unknown names are in
// the map, with nil values, for unknownFields.
func object(raw json.RawMessage, field string, fields []string) (map[string]json.RawMessage, []fieldProblem) {
	values, unknown, err := schemas.DecodeObject(raw, fields)
	var fe *schemas.FieldError
	switch {
	case errors.As(err, &fe):
		at := fe.Field
		if field != "usage_record" {
			at = field + "." + at
		}
		return nil, []fieldProblem{problem(at, "%s", fe.Message)}
	case err != nil:
		return nil, []fieldProblem{problem(field, "must be a JSON object with %s", strings.Join(fields, ", "))}
	}
	obj := make(map[string]json.RawMessage, len(fields)+len(unknown))
	for i, name := range fields {
		if values[i] != nil {
			obj[name] = values[i]
		}
	}
	for _, name := range unknown {
		obj[name] = nil
	}
	return obj, nil
}

// stringField reads the required string obj[name] (the last segment of
// field); maxLen 0 is no limit. Problems are appended.
func stringField(obj map[string]json.RawMessage, field string, maxLen int, problems *[]fieldProblem) (string, bool) {
	name := field[strings.LastIndexByte(field, '.')+1:]
	raw, ok := obj[name]
	var s string
	switch {
	case !ok || isNull(raw):
		*problems = append(*problems, problem(field, "is required"))
	case json.Unmarshal(raw, &s) != nil:
		*problems = append(*problems, problem(field, "must be a string"))
	case s == "":
		*problems = append(*problems, problem(field, "must not be empty"))
	case strings.ContainsRune(s, utf8.RuneError):
		// encoding/json turns invalid UTF-8 into U+FFFD: ids differing only
		// there would become one id and the second record a duplicate.
		*problems = append(*problems, problem(field, "must be valid UTF-8 (U+FFFD is not allowed either)"))
	case maxLen > 0 && utf8.RuneCountInString(s) > maxLen:
		*problems = append(*problems, problem(field, "is %d characters long, at most %d allowed", utf8.RuneCountInString(s), maxLen))
	default:
		return s, true
	}
	return "", false
}

// unknownFields names the fields of obj not in known, sorted.
func unknownFields(obj map[string]json.RawMessage, prefix string, known []string) []fieldProblem {
	var out []fieldProblem
	for _, name := range slices.Sorted(maps.Keys(obj)) {
		if !slices.Contains(known, name) {
			out = append(out, problem(prefix+name, "unknown field (known: %s)", strings.Join(known, ", ")))
		}
	}
	return out
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// clip shortens a value echoed in a message.
func clip(s string) string {
	if r := []rune(s); len(r) > 40 {
		return string(r[:40]) + "…"
	}
	return s
}

// setPath sets the value at a canonical property path ("$.usage.tokens")
// in props, creating the objects on the way.
func setPath(props map[string]any, path string, v any) {
	segments := strings.Split(strings.TrimPrefix(path, "$."), ".")
	for _, seg := range segments[:len(segments)-1] {
		next, ok := props[seg].(map[string]any)
		if !ok {
			next = map[string]any{}
			props[seg] = next
		}
		props = next
	}
	props[segments[len(segments)-1]] = v
}
