package auth

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
)

// TestLoginFailuresCostTheSame checks, through Authorize, that an unknown
// user and a wrong password are both answered 401 and that both did one
// bcrypt comparison at the same cost: the response must not tell whether a
// user name exists, and counting the work (not timing it) shows that.
func TestLoginFailuresCostTheSame(t *testing.T) {
	path := filepath.Join(t.TempDir(), "htpasswd")
	writeFile(t, path, bcryptLine(t, "alice", "right", "$2y$")+"\n")
	az, _, err := New(Config{Htpasswd: &HtpasswdConfig{Realm: "r", Path: path}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ba := az.(*basicAuthorizer)
	tests := []struct {
		name, user, pw string
		status         int
	}{
		{"wrong password", "alice", "wrong", http.StatusUnauthorized},
		{"unknown user", "mallory", "wrong", http.StatusUnauthorized},
		{"right password", "alice", "right", http.StatusOK},
	}
	var costs []int
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc := &countingCompare{}
			ba.users.compare = cc.compare
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if _, err := az.Authorize(w, r); err != nil {
					w.WriteHeader(http.StatusUnauthorized)
				}
			})
			req := httptest.NewRequest(http.MethodGet, "/v2/", nil)
			req.SetBasicAuth(tt.user, tt.pw)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d", rec.Code, tt.status)
			}
			if n := cc.calls.Load(); n != 1 {
				t.Fatalf("%d bcrypt comparisons, want 1", n)
			}
			costs = append(costs, cc.costs...)
		})
	}
	for _, c := range costs {
		if c != costs[0] {
			t.Errorf("bcrypt costs differ between cases: %v", costs)
		}
	}
}
