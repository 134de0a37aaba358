package modules

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

func TestHints(t *testing.T) {
	base := errors.New("the host's rules changed since the plan")
	tests := []struct {
		name      string
		err       error
		wantText  string
		wantHints []string
	}{
		{"no error", nil, "", nil},
		{"no hint", base, base.Error(), nil},
		{"one hint", WithHint(base, "run piwall plan again"), base.Error(), []string{"run piwall plan again"}},
		{"wrapped twice, outermost first",
			fmt.Errorf("pi-01: prepare: %w", WithHint(WithHint(base, "inner"), "outer")),
			"pi-01: prepare: " + base.Error(), []string{"outer", "inner"}},
		{"joined", errors.Join(WithHint(base, "a"), WithHint(errors.New("other"), "b")),
			base.Error() + "\nother", []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err != nil && tt.err.Error() != tt.wantText {
				t.Errorf("Error() = %q, want %q (a hint is not part of the text)", tt.err.Error(), tt.wantText)
			}
			if got := Hints(tt.err); !slices.Equal(got, tt.wantHints) {
				t.Errorf("Hints() = %q, want %q", got, tt.wantHints)
			}
		})
	}
	if WithHint(nil, "x") != nil {
		t.Error("WithHint(nil) is not nil")
	}
}
