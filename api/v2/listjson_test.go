package v2

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
)

// The hand-built list bodies are what encoding/json makes of them, byte
// for byte, whatever the strings hold.
func TestListBodiesMatchEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const alphabet = "az09._-/\"\\<>&\x01\x7fé\u2028"
	pick := func() string {
		b := make([]rune, r.IntN(6))
		rs := []rune(alphabet)
		for i := range b {
			b[i] = rs[r.IntN(len(rs))]
		}
		return string(b)
	}
	lists := [][]string{nil, {}, {"a"}, {"library/ubuntu", "a/b-c_d.e"}}
	for range 2000 {
		l := make([]string, r.IntN(4))
		for i := range l {
			l[i] = pick()
		}
		lists = append(lists, l)
	}
	for _, l := range lists {
		name := pick()
		want, _ := json.Marshal(struct {
			Name string   `json:"name"`
			Tags []string `json:"tags"`
		}{name, l})
		if got := appendTagList(nil, name, l); string(got) != string(want) {
			t.Fatalf("tags %q %q: %s, want %s", name, l, got, want)
		}
		want, _ = json.Marshal(struct {
			Repositories []string `json:"repositories"`
		}{l})
		if got := appendCatalog(nil, l); string(got) != string(want) {
			t.Fatalf("catalog %q: %s, want %s", l, got, want)
		}
	}
}
