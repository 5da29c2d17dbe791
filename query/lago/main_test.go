package lago

import (
	"testing"

	"github.com/tally-oss/tally/internal/testenv"
)

// Integration tests share one private ClickHouse server per test binary;
// each test gets its own database.
func TestMain(m *testing.M) { testenv.Main(m) }
