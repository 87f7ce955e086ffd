package auth

import (
	"crypto/sha256"
	"encoding/hex"
)

// Users is what a login page needs of the authentication configuration: to
// check a password, to tell whether a session established earlier still
// stands, and to answer the access rules for a named user outside of a
// request that carries credentials (the web UI's requests carry a session
// cookie, not Basic credentials or a token).
//
// It exists where registryd itself knows the users: with auth.htpasswd,
// alone or behind registryd's own token server. With an external token
// server the users live there; UsersOf then reports false.
type Users interface {
	// Login reports whether password is user's. It costs one bcrypt
	// comparison whether or not the user exists.
	Login(user, password string) bool
	// Stamp is a short value derived from user's password hash: it changes
	// when the password does, and ok is false once the user is removed, so
	// that a session bound to it ends with either. It reveals nothing
	// about the password (a hash of the bcrypt hash).
	Stamp(user string) (stamp string, ok bool)
	// AllowedFor answers the access rules for user ("" for an anonymous
	// caller), as Allowed does for a request.
	AllowedFor(user string, access Access) bool
	// Anonymous reports whether callers without credentials may pull
	// anything at all (some anonymous rule grants pull).
	Anonymous() bool
}

// UsersOf returns the Users behind a, when registryd knows them.
func UsersOf(a Authorizer) (Users, bool) {
	switch a := a.(type) {
	case *basicAuthorizer:
		return localUsers{a.users, a.policy}, true
	case *tokenAuthorizer:
		if a.localPolicy && a.users != nil {
			return localUsers{a.users, a.policy}, true
		}
	}
	return nil, false
}

// localUsers are htpasswd users under a policy.
type localUsers struct {
	users  *htpasswd
	policy *policy
}

func (u localUsers) Login(user, password string) bool { return u.users.authenticate(user, password) }

func (u localUsers) Stamp(user string) (string, bool) {
	u.users.maybeReload()
	hash, ok := u.users.users.Load().hashes[user]
	if !ok {
		return "", false
	}
	sum := sha256.Sum256(hash)
	return hex.EncodeToString(sum[:8]), true
}

func (u localUsers) AllowedFor(user string, access Access) bool {
	return u.policy.allowed(user, access)
}

func (u localUsers) Anonymous() bool { return u.policy.allowed("", Catalog) }
