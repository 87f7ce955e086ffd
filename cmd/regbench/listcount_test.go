package main

import (
	"encoding/json"
	"fmt"
	"testing"
)

func TestCountStrings(t *testing.T) {
	tests := []struct {
		name, body, field string
		want              int
		wantErr           bool
	}{
		{"tags", `{"name":"a","tags":["1","2","3"]}`, "tags", 3, false},
		{"empty", `{"name":"a","tags":[]}`, "tags", 0, false},
		{"spaces", "{ \"repositories\" : [ \"a\" ,\n \"b/c\" ] }", "repositories", 2, false},
		{"escaped quote and comma", `{"tags":["a\",b","c\\"]}`, "tags", 2, false},
		{"null", `{"tags":null}`, "tags", 0, true},
		{"missing", `{"name":"a"}`, "tags", 0, true},
		{"number element", `{"tags":["a",1]}`, "tags", 1, true},
		{"truncated", `{"tags":["a","b`, "tags", 1, true},
		{"unclosed", `{"tags":["a"`, "tags", 1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := countStrings([]byte(tc.body), tc.field)
			if (err != nil) != tc.wantErr || (!tc.wantErr && n != tc.want) {
				t.Errorf("countStrings = %d, %v; want %d, error %v", n, err, tc.want, tc.wantErr)
			}
		})
	}
	// Agrees with encoding/json on what servers send.
	names := make([]string, 1000)
	for i := range names {
		names[i] = fmt.Sprintf("catalog/r%06d", i)
	}
	b, _ := json.Marshal(map[string]any{"repositories": names})
	if n, err := countStrings(b, "repositories"); err != nil || n != len(names) {
		t.Errorf("countStrings of json.Marshal output = %d, %v; want %d", n, err, len(names))
	}
}
