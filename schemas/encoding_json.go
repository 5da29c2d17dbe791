package schemas

import "unicode/utf8"

// appendJSONString appends s as a JSON string exactly as encoding/json
// writes it with HTML escaping off: '"', '\\' and control characters are
// escaped (\b, \f, \n, \r, \t by name, the others as \u00XX), U+2028 and
// U+2029 as \u2028 and \u2029, and each byte that is not UTF-8 becomes
// \ufffd. EncodeRecord relies on the output being byte for byte the same
// (FuzzEncodeRecordDifferential).
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if jsonPlain[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case c == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case c == '\u2028' || c == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[c&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// jsonPlain tells the bytes that stand for themselves in a JSON string:
// all but '"', '\\' and the control characters (bytes of UTF-8 sequences
// included).
var jsonPlain = func() (plain [256]bool) {
	for c := 0x20; c < 256; c++ {
		plain[c] = c != '"' && c != '\\'
	}
	return plain
}()

// isCompactJSON reports whether raw is one JSON value without whitespace
// outside its strings, nested at most maxSkipDepth deep: encoding/json
// would copy it as it is. It is false for some JSON that encoding/json
// accepts (whitespace to remove, deeper nesting), never true for input it
// refuses.
func isCompactJSON(raw []byte) bool {
	end, spaced, ok := skipJSONValue(raw, 0)
	return ok && !spaced && end == len(raw)
}

// JSONValueEnd returns the index after the JSON value that starts at
// data[i] (no whitespace before it). ok is false if there is no JSON value
// there or it nests deeper than 64 levels; callers leave such input to
// encoding/json, for its verdict and its message. Ingest frames the events
// of a JSON array with it.
func JSONValueEnd(data []byte, i int) (end int, ok bool) {
	end, _, ok = skipJSONValue(data, i)
	return end, ok
}

// skipJSONValue reads the JSON value that starts at data[i] and returns
// the index after it; spaced tells whether whitespace was skipped inside
// it. ok is false if there is no JSON value there or it nests deeper than
// maxSkipDepth. Strings may hold bytes that are not UTF-8, as in
// encoding/json. It loops rather than recurses: the containers it is in
// are the bits of a word.
func skipJSONValue(data []byte, i int) (end int, spaced, ok bool) {
	var objects uint64 // bit d: the container at depth d+1 is an object
	depth := 0
	for {
		// A value starts at data[i].
		if i >= len(data) {
			return i, spaced, false
		}
		switch c := data[i]; {
		case c == '{' || c == '[':
			if depth == maxSkipDepth {
				return i, spaced, false
			}
			objects &^= 1 << depth
			if c == '{' {
				objects |= 1 << depth
			}
			depth++
			i++
			i = skipJSONSpace(data, i, &spaced)
			if i < len(data) && data[i] == c+2 { // '}' is '{'+2, ']' is '['+2
				i++
				depth--
				break
			}
			if c == '{' {
				if i, ok = skipJSONName(data, i, &spaced); !ok {
					return i, spaced, false
				}
			}
			continue
		case c == '"':
			if i, _, ok = skipJSONString(data, i); !ok {
				return i, spaced, false
			}
		case c == '-' || (c >= '0' && c <= '9'):
			if i, ok = skipJSONNumber(data, i); !ok {
				return i, spaced, false
			}
		case c == 't' && len(data)-i >= 4 && string(data[i:i+4]) == "true",
			c == 'n' && len(data)-i >= 4 && string(data[i:i+4]) == "null":
			i += 4
		case c == 'f' && len(data)-i >= 5 && string(data[i:i+5]) == "false":
			i += 5
		default:
			return i, spaced, false
		}
		// A value ended at data[i]: close the containers it ends.
		for {
			if depth == 0 {
				return i, spaced, true
			}
			object := objects&(1<<(depth-1)) != 0
			i = skipJSONSpace(data, i, &spaced)
			if i >= len(data) {
				return i, spaced, false
			}
			if data[i] == ',' {
				i = skipJSONSpace(data, i+1, &spaced)
				if object {
					if i, ok = skipJSONName(data, i, &spaced); !ok {
						return i, spaced, false
					}
				}
				break
			}
			if (object && data[i] != '}') || (!object && data[i] != ']') {
				return i, spaced, false
			}
			i++
			depth--
		}
	}
}

// skipJSONName reads a member name, the colon and the whitespace around
// it, up to the member's value.
func skipJSONName(data []byte, i int, spaced *bool) (int, bool) {
	i, _, ok := skipJSONString(data, i)
	if !ok {
		return i, false
	}
	i = skipJSONSpace(data, i, spaced)
	if i >= len(data) || data[i] != ':' {
		return i, false
	}
	return skipJSONSpace(data, i+1, spaced), true
}

func skipJSONSpace(data []byte, i int, spaced *bool) int {
	for ; i < len(data); i++ {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			*spaced = true
			continue
		}
		break
	}
	return i
}

// skipJSONString reads the string that starts at data[i] (a '"' or not)
// and returns the index after it, and whether it holds escapes.
func skipJSONString(data []byte, i int) (end int, escaped, ok bool) {
	if i >= len(data) || data[i] != '"' {
		return i, false, false
	}
	for i++; i < len(data); {
		for i < len(data) && jsonPlain[data[i]] {
			i++
		}
		if i == len(data) {
			break
		}
		switch c := data[i]; {
		case c == '"':
			return i + 1, escaped, true
		case c < 0x20:
			return i, escaped, false
		}
		escaped = true // data[i] is '\\'

		if i+1 >= len(data) {
			return i, escaped, false
		}
		switch data[i+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i += 2
		case 'u':
			if len(data)-i < 6 || !isHex(data[i+2]) || !isHex(data[i+3]) || !isHex(data[i+4]) || !isHex(data[i+5]) {
				return i, escaped, false
			}
			i += 6
		default:
			return i, escaped, false
		}
	}
	return i, escaped, false
}

// skipJSONNumber reads the number that starts at data[i]:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func skipJSONNumber(data []byte, i int) (int, bool) {
	if i < len(data) && data[i] == '-' {
		i++
	}
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case i < len(data) && data[i] >= '1' && data[i] <= '9':
		i = skipDigits(data, i)
	default:
		return i, false
	}
	if i < len(data) && data[i] == '.' {
		if j := skipDigits(data, i+1); j > i+1 {
			i = j
		} else {
			return j, false
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		j := skipDigits(data, i)
		if j == i {
			return j, false
		}
		i = j
	}
	return i, true
}

func skipDigits(data []byte, i int) int {
	for i < len(data) && data[i] >= '0' && data[i] <= '9' {
		i++
	}
	return i
}
