package usage

import (
	"testing"

	"github.com/tally-oss/tally/internal/testenv"
)

// The reader's tests run against a real ClickHouse server, shared by the
// test binary; each test gets its own database.
func TestMain(m *testing.M) { testenv.Main(m) }
