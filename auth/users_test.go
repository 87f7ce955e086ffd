package auth_test

import (
	"testing"
	"time"

	"github.com/registryd/registryd/auth"
)

// The web UI logs users in where registryd knows them: htpasswd alone, or
// behind its own token server; not with an external token server.
func TestUsersOf(t *testing.T) {
	dir := t.TempDir()
	htp := writeHtpasswd(t, dir, map[string]string{"alice": "pw", "bob": "pw2"})
	kp := newKeyPair(t, dir, "issuer", "ec", nil, false, nil)
	access := &auth.AccessConfig{
		Rules:     []auth.Rule{{Repositories: []string{"team/**"}, Users: []string{"alice"}, Actions: []string{"pull", "delete"}}},
		Anonymous: []auth.AnonymousRule{{Repositories: []string{"public/**"}, Actions: []string{"pull"}}},
	}
	tok := &auth.TokenConfig{Realm: issuerRealm, Service: testService, Issuer: "i"}
	for _, tc := range []struct {
		name string
		cfg  auth.Config
		ok   bool
	}{
		{"htpasswd", auth.Config{Htpasswd: &auth.HtpasswdConfig{Path: htp}, Access: access}, true},
		{"token server", auth.Config{Htpasswd: &auth.HtpasswdConfig{Path: htp}, Token: tok, Issuer: &auth.IssuerConfig{Key: kp.keyPath}, Access: access}, true},
		{"external token server", auth.Config{Token: &auth.TokenConfig{Realm: issuerRealm, Service: testService, Issuer: "i", RootCertBundle: kp.certPath}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, _, err := auth.New(tc.cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			u, ok := auth.UsersOf(a)
			if ok != tc.ok {
				t.Fatalf("UsersOf: %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			if !u.Login("alice", "pw") || u.Login("alice", "nope") || u.Login("carol", "pw") {
				t.Error("Login")
			}
			s1, ok1 := u.Stamp("alice")
			s2, _ := u.Stamp("bob")
			if _, ok := u.Stamp("carol"); ok || !ok1 || s1 == "" || s1 == s2 {
				t.Errorf("stamps: %q %q", s1, s2)
			}
			if !u.AllowedFor("alice", auth.Repository("team/app", "delete")) || u.AllowedFor("bob", auth.Repository("team/app", "pull")) ||
				!u.AllowedFor("", auth.Repository("public/x", "pull")) || u.AllowedFor("", auth.Repository("team/app", "pull")) || !u.Anonymous() {
				t.Error("AllowedFor")
			}
			// A new password changes the stamp.
			writeHtpasswd(t, dir, map[string]string{"alice": "new", "bob": "pw2"})
			time.Sleep(1100 * time.Millisecond)
			if s, ok := u.Stamp("alice"); !ok || s == s1 {
				t.Errorf("stamp after a password change: %q (was %q)", s, s1)
			}
			writeHtpasswd(t, dir, map[string]string{"alice": "pw", "bob": "pw2"}) // for the next case
		})
	}
}
