package query

import (
	"encoding/csv"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/tally-oss/tally/query/usage"
)

// csvContentType is what a usage query answers with for Accept: text/csv,
// for spreadsheets and billing exports.
const csvContentType = "text/csv; charset=utf-8"

// wantsCSV reports whether the client accepts text/csv and prefers it to
// JSON. Without an Accept header, or with */*, the answer is JSON.
func wantsCSV(r *http.Request) bool {
	var csvQ, jsonQ float64 = -1, -1
	for _, accept := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(accept, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			q := 1.0
			if v, ok := params["q"]; ok {
				q = parseQuality(v)
			}
			switch mt {
			case "text/csv":
				csvQ = max(csvQ, q)
			case "application/json":
				jsonQ = max(jsonQ, q)
			}
		}
	}
	return csvQ > 0 && csvQ >= jsonQ
}

// parseQuality reads an Accept q value; a malformed one counts as 0.
func parseQuality(s string) float64 {
	q, err := strconv.ParseFloat(s, 64)
	if err != nil || q < 0 {
		return 0
	}
	return min(q, 1)
}

// writeCSV writes the usage as CSV: window_start, window_end, one column per
// requested group key in request order, and value, written from the exact
// decimal as in JSON. encoding/csv quotes group values that hold commas,
// quotes or line breaks.
//
// Group values and customer ids are the callers' text, and a spreadsheet
// opening the file runs a cell that starts with =, +, -, @, a tab or a
// carriage return as a formula (CSV injection): such cells are written
// with a leading single quote, which spreadsheets show as text (OWASP's
// advice). The cells Tally writes itself are left as they are, so that
// a negative value stays a number: times in RFC 3339, values as decimals.
// JSON is the exact form of every cell.
func writeCSV(w http.ResponseWriter, q usage.Query, rows []usage.Row) {
	w.Header().Set("Content-Type", csvContentType)
	w.WriteHeader(http.StatusOK)
	cw := csv.NewWriter(w)
	header := []string{"window_start", "window_end"}
	for _, key := range q.GroupBy {
		header = append(header, csvText(key))
	}
	_ = cw.Write(append(header, "value"))
	record := make([]string, 0, len(header)+1)
	for _, row := range rows {
		record = append(record[:0], formatTime(row.WindowStart, q.Location), formatTime(row.WindowEnd, q.Location))
		for _, v := range row.GroupValues {
			record = append(record, csvText(v))
		}
		_ = cw.Write(append(record, row.Value.String()))
	}
	cw.Flush() // an error here means the client went away; nothing to tell it
}

// csvText returns a text cell that no spreadsheet runs as a formula: s
// with a leading single quote when it starts with one of the characters
// that begin a formula (=, +, -, @) or that a spreadsheet skips before
// one (tab, carriage return).
func csvText(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
