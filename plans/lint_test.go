package plans

import "testing"

func TestHostList(t *testing.T) {
	tests := []struct {
		name  string
		hosts []string
		want  string
	}{
		{"one host", []string{"pi-01"}, `host "pi-01"`},
		{"two hosts", []string{"pi-01", "pi-02"}, `hosts "pi-01" and "pi-02"`},
		{"four hosts", []string{"a", "b", "c", "d"}, `hosts "a", "b", "c" and "d"`},
		{"a fleet", []string{"a", "b", "c", "d", "e", "f"}, `hosts "a", "b", "c" and 3 more`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hostList(tt.hosts); got != tt.want {
				t.Errorf("hostList(%q) = %s, want %s", tt.hosts, got, tt.want)
			}
		})
	}
}
