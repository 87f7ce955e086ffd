package ui

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/registryd/registryd/api/admin"
	"github.com/registryd/registryd/auth"
)

// cookieName is the session cookie's name.
const cookieName = "registryd_session"

// sessions issues and checks session cookies. A cookie is
//
//	base64url(user) "." expiry (Unix seconds) "." base64url(HMAC-SHA256)
//
// with the MAC over the user, the expiry and the user's password stamp
// (auth.Users.Stamp): no server-side state, so any instance sharing
// http.secret accepts it, and a password change or the user's removal
// from the htpasswd file ends every session of that user at once.
type sessions struct {
	key      []byte
	lifetime time.Duration
	path     string
	now      func() time.Time
}

func (s *sessions) mac(user string, exp int64, stamp string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("v1\x00" + user + "\x00" + strconv.FormatInt(exp, 10) + "\x00" + stamp))
	return m.Sum(nil)
}

// issue sets a fresh session cookie for user.
func (s *sessions) issue(w http.ResponseWriter, r *http.Request, secure bool, user, stamp string) {
	exp := s.now().Add(s.lifetime).Unix()
	v := base64.RawURLEncoding.EncodeToString([]byte(user)) + "." + strconv.FormatInt(exp, 10) + "." +
		base64.RawURLEncoding.EncodeToString(s.mac(user, exp, stamp))
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: v, Path: s.path,
		Expires: time.Unix(exp, 0), MaxAge: int(s.lifetime / time.Second),
		HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode,
	})
}

// clear removes the cookie from the browser.
func (s *sessions) clear(w http.ResponseWriter, secure bool) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: "", Path: s.path, MaxAge: -1, Expires: time.Unix(0, 0),
		HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode,
	})
}

// read returns the user of a valid, unexpired session cookie.
func (s *sessions) read(r *http.Request, stampOf func(string) (string, bool)) (string, bool) {
	c, err := r.Cookie(cookieName)
	if err != nil || len(c.Value) > 1024 {
		return "", false
	}
	parts := strings.Split(c.Value, ".")
	if len(parts) != 3 {
		return "", false
	}
	ub, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	exp, err2 := strconv.ParseInt(parts[1], 10, 64)
	mac, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil || len(ub) == 0 {
		return "", false
	}
	if s.now().Unix() >= exp {
		return "", false
	}
	user := string(ub)
	stamp, ok := stampOf(user)
	if !ok {
		return "", false
	}
	if !hmac.Equal(mac, s.mac(user, exp, stamp)) {
		return "", false
	}
	return user, true
}

// secure tells whether the browser reached us over TLS (directly, or
// through a proxy that says so, or as http.host declares), so that the
// cookie must be Secure.
func (u *UI) secure(r *http.Request) bool {
	return r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" || strings.HasPrefix(u.opts.HTTPHost, "https://")
}

// viewer is who is looking at a page, and what they may do.
type viewer struct {
	ui *UI
	// user is the logged-in user; "" for an anonymous caller.
	user string
	// authOn: the registry has authentication and a login page.
	authOn bool
	// mustLogin: authentication is on, nobody is logged in, and anonymous
	// callers may see nothing: pages send them to the login page.
	mustLogin bool
}

// viewer establishes who makes the request.
func (u *UI) viewer(w http.ResponseWriter, r *http.Request) *viewer {
	v := &viewer{ui: u}
	if u.opts.Authorizer == nil {
		return v
	}
	v.authOn = true
	if u.users == nil {
		// External token server: the UI cannot tell who anyone is.
		v.mustLogin = true
		return v
	}
	if user, ok := u.sessions.read(r, u.users.Stamp); ok {
		v.user = user
		return v
	}
	if _, err := r.Cookie(cookieName); err == nil {
		// Expired, forged, or its user's password changed: forget it.
		u.sessions.clear(w, u.secure(r))
	}
	v.mustLogin = !u.users.Anonymous()
	return v
}

// can answers the access rules for the viewer.
func (v *viewer) can(a auth.Access) bool {
	if v.ui.opts.Authorizer == nil {
		return true
	}
	if v.ui.users == nil {
		return false
	}
	return v.ui.users.AllowedFor(v.user, a)
}

// may is the viewer's rights as the admin service asks them.
func (v *viewer) may() admin.May { return v.can }

func (v *viewer) canPull(repo string) bool {
	return v.can(auth.Repository(repo, auth.ActionPull))
}

// deleteRefusal says why the viewer may not delete in repo; "" when they
// may. It is asked both to draw delete controls and again by the POST.
func (v *viewer) deleteRefusal(repo string) string {
	switch {
	case !v.ui.opts.DeleteEnabled:
		return "Deleting is disabled on this registry (storage.delete.enabled is false)."
	case v.ui.opts.ReadOnly:
		return "The registry is in read-only mode (storage.maintenance.readonly)."
	case !v.can(auth.Repository(repo, auth.ActionDelete)):
		if v.user == "" && v.authOn {
			return "Log in as a user who may delete in " + repo + "."
		}
		return "You may not delete in " + repo + "."
	}
	return ""
}

func (v *viewer) canDelete(repo string) bool { return v.deleteRefusal(repo) == "" }

// login serves the login page and its form.
func (u *UI) login(w http.ResponseWriter, r *http.Request, v *viewer) {
	if u.users == nil {
		msg := "This registry has no authentication: there is nothing to log in to."
		if u.external {
			msg = "This registry's users are managed by an external token server (auth.token): the web UI cannot log you in. Use the API with a client that gets tokens from that server."
		}
		u.errorPage(w, r, v, http.StatusNotFound, msg)
		return
	}
	next := u.safeNext(r.FormValue("next"))
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		u.render(w, r, v, http.StatusOK, "login", &loginPage{Next: next})
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			u.errorPage(w, r, v, http.StatusBadRequest, "The form could not be read.")
			return
		}
		user, pw := r.PostForm.Get("username"), r.PostForm.Get("password")
		next = u.safeNext(r.PostForm.Get("next"))
		stamp, known := u.users.Stamp(user)
		if user == "" || !u.users.Login(user, pw) || !known {
			u.log.WithField("remote", r.RemoteAddr).Info("web UI login failed")
			// Same answer for an unknown user and a wrong password.
			u.render(w, r, v, http.StatusUnauthorized, "login", &loginPage{Next: next, User: user, Failed: true})
			return
		}
		u.sessions.issue(w, r, u.secure(r), user, stamp)
		u.log.WithFields(logrus.Fields{"user": user, "remote": r.RemoteAddr}).Info("web UI login")
		http.Redirect(w, r, next, http.StatusSeeOther)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		u.errorPage(w, r, v, http.StatusMethodNotAllowed, "Use the login form.")
	}
}

type loginPage struct {
	Next   string
	User   string
	Failed bool
}

// logout ends the session (POST, from the button in the header).
func (u *UI) logout(w http.ResponseWriter, r *http.Request, v *viewer) {
	u.sessions.clear(w, u.secure(r))
	http.Redirect(w, r, u.base, http.StatusSeeOther)
}
