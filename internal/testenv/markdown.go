package testenv

import (
	"strings"
	"testing"
)

// MarkdownSection returns text from the heading from up to the heading to
// (the README tests read one section each). Either heading missing, or to
// before from, fails the test: the README's sections moved.
func MarkdownSection(t testing.TB, text, from, to string) string {
	t.Helper()
	start, end := strings.Index(text, from), strings.Index(text, to)
	if start < 0 || end < start {
		t.Fatal("README sections moved: update this test")
	}
	return text[start:end]
}
