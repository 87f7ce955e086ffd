package auth

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	"golang.org/x/crypto/bcrypt"
)

// bcryptLine returns an htpasswd line for user at the cheapest cost, so
// that tests stay fast; prefix replaces bcrypt's "$2a$" when given.
func bcryptLine(t testing.TB, user, password, prefix string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	s := string(h)
	if prefix != "" {
		s = prefix + s[4:]
	}
	return user + ":" + s
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func discardLogger() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

func TestLoadHtpasswd(t *testing.T) {
	alice := bcryptLine(t, "alice", "a-pass", "$2y$")
	bob := bcryptLine(t, "bob", "b-pass", "$2b$")
	carol := bcryptLine(t, "carol", "c-pass", "")
	tests := []struct {
		name      string
		content   string
		users     []string
		errSubstr string // "" for success
	}{
		{"bcrypt variants", alice + "\n" + bob + "\n" + carol + "\n", []string{"alice", "bob", "carol"}, ""},
		{"comments, blanks, CRLF", "# users\r\n\r\n" + alice + "\r\n   \n" + bob, []string{"alice", "bob"}, ""},
		{"empty file", "", nil, ""},
		{"md5 refused", alice + "\nmallory:$apr1$abcdefgh$0123456789abcdefghijk.\n", nil, "line 2: user \"mallory\": only bcrypt"},
		{"sha refused", "mallory:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n", nil, "line 1: user \"mallory\": only bcrypt"},
		{"crypt refused", "\n\nmallory:rl.3StKT.4T8M\n", nil, "line 3:"},
		{"plain text refused", "mallory:hunter2", nil, "line 1:"},
		{"no colon", alice + "\njustaname\n", nil, "line 2: expected user:hash"},
		{"empty user", ":" + strings.SplitN(alice, ":", 2)[1], nil, "line 1: empty user name"},
		{"malformed bcrypt", "mallory:$2y$xx$tooshort\n", nil, "line 1: user \"mallory\": malformed bcrypt hash"},
		{"duplicate", alice + "\n" + bob + "\n" + alice + "\n", nil, "line 3: user \"alice\" already defined on line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "htpasswd")
			writeFile(t, path, tt.content)
			tab, err := loadHtpasswd(path, nil)
			if tt.errSubstr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errSubstr) {
					t.Fatalf("error %v, want one containing %q", err, tt.errSubstr)
				}
				// The error must never carry a hash.
				if strings.Contains(err.Error(), "$2") || strings.Contains(err.Error(), "$apr1") || strings.Contains(err.Error(), "{SHA}") {
					t.Errorf("error reveals a hash: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(tab.hashes) != len(tt.users) {
				t.Errorf("%d users loaded, want %d", len(tab.hashes), len(tt.users))
			}
			for _, u := range tt.users {
				if _, ok := tab.hashes[u]; !ok {
					t.Errorf("user %s missing", u)
				}
			}
			if c, err := bcrypt.Cost(tab.dummy); err != nil || (len(tt.users) > 0 && c != bcrypt.MinCost) {
				t.Errorf("dummy hash cost %d (%v), want the users' cost %d", c, err, bcrypt.MinCost)
			}
		})
	}
}

func TestNewHtpasswdErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := newHtpasswd(filepath.Join(dir, "missing"), discardLogger()); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
	bad := filepath.Join(dir, "bad")
	writeFile(t, bad, "x:{SHA}abc\n")
	if _, err := newHtpasswd(bad, discardLogger()); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("bad file: %v", err)
	}
}

// countingCompare wraps bcrypt's comparison, counting calls and recording
// the cost of each hash compared against.
type countingCompare struct {
	calls atomic.Int64
	costs []int
}

func (c *countingCompare) compare(hash, pw []byte) error {
	c.calls.Add(1)
	cost, _ := bcrypt.Cost(hash)
	c.costs = append(c.costs, cost)
	return bcrypt.CompareHashAndPassword(hash, pw)
}

func TestAuthenticateDoesBcryptWorkForUnknownUsers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "htpasswd")
	writeFile(t, path, bcryptLine(t, "alice", "right", "$2y$")+"\n")
	h, err := newHtpasswd(path, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, user, pw string
		ok             bool
	}{
		{"right password", "alice", "right", true},
		{"wrong password", "alice", "wrong", false},
		{"unknown user", "mallory", "right", false},
		{"unknown user empty password", "nobody", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc := &countingCompare{}
			h.compare = cc.compare
			if got := h.authenticate(tt.user, tt.pw); got != tt.ok {
				t.Fatalf("authenticate = %v, want %v", got, tt.ok)
			}
			// Exactly one comparison, at the users' cost, whoever asks.
			if n := cc.calls.Load(); n != 1 {
				t.Errorf("%d bcrypt comparisons, want 1", n)
			}
			if len(cc.costs) == 1 && cc.costs[0] != bcrypt.MinCost {
				t.Errorf("compared at cost %d, want %d", cc.costs[0], bcrypt.MinCost)
			}
		})
	}
}

func TestHtpasswdReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "htpasswd")
	writeFile(t, path, bcryptLine(t, "alice", "a", "")+"\n")
	log, hook := test.NewNullLogger()
	h, err := newHtpasswd(path, log)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	h.now = func() time.Time { return now }
	advance := func(d time.Duration) { now = now.Add(d) }

	if h.authenticate("bob", "b") {
		t.Fatal("bob before he exists")
	}
	// A new user appears once the check interval has passed, not before.
	writeFile(t, path, bcryptLine(t, "alice", "a", "")+"\n"+bcryptLine(t, "bob", "b", "")+"\n")
	if h.authenticate("bob", "b") {
		t.Fatal("file re-read within the check interval")
	}
	advance(htpasswdCheckInterval)
	if !h.authenticate("bob", "b") {
		t.Fatal("bob not picked up after the file changed")
	}

	// A broken file keeps the previous users, and is logged once.
	hook.Reset()
	writeFile(t, path, bcryptLine(t, "alice", "a", "")+"\nbroken line without colon, much longer than before\n")
	for i := 0; i < 3; i++ {
		advance(htpasswdCheckInterval)
		if !h.authenticate("alice", "a") || !h.authenticate("bob", "b") {
			t.Fatal("users lost after a bad reload")
		}
	}
	errs := 0
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.ErrorLevel {
			errs++
			if !strings.Contains(e.Data["error"].(error).Error(), "line 2") {
				t.Errorf("reload error does not name the line: %v", e.Data["error"])
			}
		}
	}
	if errs != 1 {
		t.Errorf("%d error logs for one bad version, want 1", errs)
	}

	// A file replaced by rename (how editors and Kubernetes secrets do it)
	// with a user removed.
	tmp := path + ".new"
	writeFile(t, tmp, bcryptLine(t, "bob", "b", "")+"\n")
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	advance(htpasswdCheckInterval)
	if h.authenticate("alice", "a") {
		t.Error("alice still in after removal")
	}
	if !h.authenticate("bob", "b") {
		t.Error("bob lost after rename")
	}

	// A vanished file keeps the users.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	advance(htpasswdCheckInterval)
	if !h.authenticate("bob", "b") {
		t.Error("users lost when the file vanished")
	}
	// Nothing logged may hold a password or hash.
	for _, e := range hook.AllEntries() {
		s, _ := e.String()
		if strings.Contains(s, "$2a$") || bytes.Contains([]byte(s), []byte(`"b"`)) {
			t.Errorf("log entry reveals a secret: %s", s)
		}
	}
}
