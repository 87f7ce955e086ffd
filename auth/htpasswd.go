package auth

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/bcrypt"
)

// htpasswdCheckInterval is how often, at most, a request looks at the
// htpasswd file's metadata to learn whether it changed. A stat a second is
// free next to one bcrypt comparison, and an edit takes effect within it.
const htpasswdCheckInterval = time.Second

// userTable is one loaded version of the htpasswd file. It is never changed
// once published, so readers need no lock.
type userTable struct {
	hashes map[string][]byte
	// dummy is compared against when the user is unknown, so that an
	// unknown user costs the same bcrypt work as a wrong password and the
	// response time does not tell which user names exist.
	dummy []byte
}

// fileStamp identifies a version of a file without reading it.
type fileStamp struct {
	info    os.FileInfo // for os.SameFile: a file replaced by rename is another file
	modTime time.Time
	size    int64
}

func stampOf(fi os.FileInfo) fileStamp {
	return fileStamp{info: fi, modTime: fi.ModTime(), size: fi.Size()}
}

func (a fileStamp) same(b fileStamp) bool {
	if a.info == nil || b.info == nil {
		return a.info == b.info
	}
	return os.SameFile(a.info, b.info) && a.modTime.Equal(b.modTime) && a.size == b.size
}

// htpasswd authenticates users against an htpasswd file of bcrypt entries
// (`htpasswd -B`), re-reading the file when it changes.
type htpasswd struct {
	path string
	log  logrus.FieldLogger

	// now and compare are the clock and the bcrypt comparison; tests
	// replace them to move time and to count the bcrypt work done.
	now     func() time.Time
	compare func(hash, password []byte) error

	users     atomic.Pointer[userTable]
	lastCheck atomic.Int64 // UnixNano of the last look at the file
	reloadMu  sync.Mutex   // one reload at a time; others go on with the current table
	stamp     fileStamp    // the version loaded (or last refused); under reloadMu
}

// newHtpasswd loads path; an unreadable or invalid file is a startup error.
func newHtpasswd(path string, log logrus.FieldLogger) (*htpasswd, error) {
	h := &htpasswd{
		path:    path,
		log:     log,
		now:     time.Now,
		compare: bcrypt.CompareHashAndPassword,
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("htpasswd file: %w", err)
	}
	t, err := loadHtpasswd(path, nil)
	if err != nil {
		return nil, err
	}
	if len(t.hashes) == 0 {
		log.WithField("path", path).Warn("the htpasswd file has no users: nobody can log in until users are added")
	}
	h.users.Store(t)
	h.stamp = stampOf(fi)
	h.lastCheck.Store(h.now().UnixNano())
	return h, nil
}

// authenticate reports whether password is user's. It always does one
// bcrypt comparison, against the user's hash or, for an unknown user,
// against a dummy hash of the same cost.
func (h *htpasswd) authenticate(user, password string) bool {
	h.maybeReload()
	t := h.users.Load()
	hash, known := t.hashes[user]
	if !known {
		hash = t.dummy
	}
	err := h.compare(hash, []byte(password))
	return known && err == nil
}

// known reports whether user is in the file. It is only used to decide
// whether a failed login's user name is safe to log (a password typed in
// the user field would not be a known user).
func (h *htpasswd) known(user string) bool {
	_, ok := h.users.Load().hashes[user]
	return ok
}

// maybeReload looks at the file at most once per interval and reloads it if
// it changed. A bad file is logged and the previous users stay in force;
// the bad version is remembered so that it is not re-read (and re-logged)
// every second, only once it changes again.
func (h *htpasswd) maybeReload() {
	now := h.now().UnixNano()
	last := h.lastCheck.Load()
	if now-last < int64(htpasswdCheckInterval) || !h.lastCheck.CompareAndSwap(last, now) {
		return
	}
	if !h.reloadMu.TryLock() {
		return
	}
	defer h.reloadMu.Unlock()
	fi, err := os.Stat(h.path)
	if err != nil {
		if h.stamp.info != nil {
			h.log.WithError(err).WithField("path", h.path).Error("htpasswd file unreadable; keeping the users loaded before")
			h.stamp = fileStamp{}
		}
		return
	}
	st := stampOf(fi)
	if st.same(h.stamp) {
		return
	}
	h.stamp = st
	t, err := loadHtpasswd(h.path, h.users.Load())
	if err != nil {
		h.log.WithError(err).WithField("path", h.path).Error("htpasswd file not reloaded; keeping the users loaded before")
		return
	}
	h.users.Store(t)
	h.log.WithFields(logrus.Fields{"path": h.path, "users": len(t.hashes)}).Info("htpasswd file reloaded")
}

// errNotBcrypt is the cause of a load error for an entry of another hash
// type (MD5 "$apr1$", SHA "{SHA}", crypt): those are weak, and distribution
// refuses them too.
var errNotBcrypt = errors.New("only bcrypt entries are supported (create them with htpasswd -B)")

// loadHtpasswd parses the file. prev, when given, lends its dummy hash if
// the cost is unchanged, so that a reload does not pay for a new one.
func loadHtpasswd(path string, prev *userTable) (*userTable, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("htpasswd file: %w", err)
	}
	t := &userTable{hashes: map[string][]byte{}}
	lineOf := map[string]int{}
	costs := map[int]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		user = strings.TrimSpace(user)
		hash = strings.TrimSpace(hash)
		// Errors name the line and the user, never the hash.
		switch {
		case !ok:
			return nil, fmt.Errorf("htpasswd file %s: line %d: expected user:hash", path, n)
		case user == "":
			return nil, fmt.Errorf("htpasswd file %s: line %d: empty user name", path, n)
		case !isBcrypt(hash):
			return nil, fmt.Errorf("htpasswd file %s: line %d: user %q: %w", path, n, user, errNotBcrypt)
		}
		cost, err := bcrypt.Cost([]byte(hash))
		if err != nil {
			return nil, fmt.Errorf("htpasswd file %s: line %d: user %q: malformed bcrypt hash", path, n, user)
		}
		if first, dup := lineOf[user]; dup {
			return nil, fmt.Errorf("htpasswd file %s: line %d: user %q already defined on line %d", path, n, user, first)
		}
		lineOf[user] = n
		t.hashes[user] = []byte(hash)
		costs[cost]++
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("htpasswd file %s: %w", path, err)
	}
	cost := commonCost(costs)
	if prev != nil && prev.dummy != nil {
		if c, err := bcrypt.Cost(prev.dummy); err == nil && c == cost {
			t.dummy = prev.dummy
			return t, nil
		}
	}
	if t.dummy, err = dummyHash(cost); err != nil {
		return nil, err
	}
	return t, nil
}

func isBcrypt(hash string) bool {
	return strings.HasPrefix(hash, "$2y$") || strings.HasPrefix(hash, "$2a$") || strings.HasPrefix(hash, "$2b$")
}

// commonCost is the cost most users' hashes have (the higher on a tie), so
// that an unknown user costs what a typical wrong password costs.
func commonCost(costs map[int]int) int {
	best, n := bcrypt.DefaultCost, 0
	for c, k := range costs {
		if k > n || k == n && c > best {
			best, n = c, k
		}
	}
	return best
}

// dummyHash is the bcrypt hash, at cost, of a random password nobody knows.
func dummyHash(cost int) ([]byte, error) {
	var pw [18]byte
	if _, err := rand.Read(pw[:]); err != nil {
		return nil, err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(hex.EncodeToString(pw[:])), cost)
	if err != nil {
		return nil, fmt.Errorf("htpasswd: making the dummy hash: %w", err)
	}
	return h, nil
}
