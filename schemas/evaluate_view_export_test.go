package schemas

// ViewDecoded reports whether v answers from DecodeProperties' map rather
// than from what Scan extracted.
func ViewDecoded(v *PropertyView) bool { return v.slow }
