package migrations_test

import (
	"testing"

	"github.com/herald-relay/herald/internal/heraldtest"
)

func TestMain(m *testing.M) { heraldtest.Main(m) }
