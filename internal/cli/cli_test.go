package cli

import "testing"

func TestNorm(t *testing.T) {
	tests := []struct {
		v    float64
		norm bool
		want string
	}{
		{14880123, true, "14.880 M"},
		{999, true, "999.000 "},
		{7142000000, true, "7.142 G"},
		{14880123, false, "14880123 "},
	}
	for _, tt := range tests {
		if got := Norm(tt.v, tt.norm); got != tt.want {
			t.Errorf("Norm(%v, %v) = %q, want %q", tt.v, tt.norm, got, tt.want)
		}
	}
}

func TestPortName(t *testing.T) {
	for in, want := range map[string]string{
		"eth0": "netmap:eth0", "netmap:p{1": "netmap:p{1", "vale0:a": "vale0:a", "vale:x": "vale:x", "p}1": "netmap:p}1",
	} {
		if got := PortName(in); got != want {
			t.Errorf("PortName(%q) = %q, want %q", in, got, want)
		}
	}
}
