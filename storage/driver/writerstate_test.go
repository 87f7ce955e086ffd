package driver

import "testing"

// Each sequence of lifecycle calls, and the error text the last one gives
// ("" for success): what a driver's writer answers when misused.
func TestWriterState(t *testing.T) {
	for _, c := range []struct {
		name  string
		calls []string
		want  string
	}{
		{"write while open", []string{"write"}, ""},
		{"commit then close", []string{"commit", "close"}, ""},
		{"write after commit", []string{"commit", "write"}, "x: writer already committed"},
		{"commit twice", []string{"commit", "commit"}, "x: writer already committed"},
		{"write after close", []string{"close", "write"}, "x: writer already closed"},
		{"commit after close", []string{"close", "commit"}, "x: writer already closed"},
		{"close twice", []string{"close", "close"}, "x: writer already closed"},
		{"cancel after close", []string{"close", "cancel"}, "x: writer already closed"},
		{"cancel after commit", []string{"commit", "cancel"}, ""},
		{"write after cancel", []string{"cancel", "write"}, "x: writer already cancelled"},
		{"close after cancel", []string{"cancel", "close"}, "x: writer already cancelled"},
		{"cancel twice", []string{"cancel", "cancel"}, "x: writer already cancelled"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := &WriterState{DriverName: "x"}
			var err error
			for i, call := range c.calls {
				switch call {
				case "write":
					err = s.Usable()
				case "commit":
					err = s.BeginCommit()
				case "close":
					err = s.BeginClose()
				case "cancel":
					err = s.BeginCancel()
				}
				if i < len(c.calls)-1 && err != nil {
					t.Fatalf("%s: %v", call, err)
				}
			}
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
			if s.Committed() != (c.calls[0] == "commit") {
				t.Fatalf("Committed() = %v", s.Committed())
			}
		})
	}
}
