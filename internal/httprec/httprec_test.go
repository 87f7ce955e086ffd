package httprec

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

// wrapper stands for any middleware that wraps the writer and unwraps.
type wrapper struct{ http.ResponseWriter }

func (w wrapper) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func TestFindThroughWrappers(t *testing.T) {
	outer := New(httptest.NewRecorder())
	inner := New(wrapper{outer})
	var w http.ResponseWriter = wrapper{inner}
	recs := Find(w)
	if len(recs) != 2 || recs[0] != inner || recs[1] != outer {
		t.Fatalf("Find: %v", recs)
	}
	for _, r := range recs {
		r.Err = errors.New("boom")
	}
	w.WriteHeader(404)
	w.Write([]byte("abc"))
	if outer.Err == nil || outer.Code() != 404 || outer.Bytes != 3 || inner.Code() != 404 {
		t.Fatalf("outer %+v inner %+v", outer, inner)
	}
	if New(httptest.NewRecorder()).Code() != 200 {
		t.Fatal("no status written should read as 200")
	}
}
