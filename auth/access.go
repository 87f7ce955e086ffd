// Package auth decides who may do what: it authenticates requests
// (htpasswd Basic credentials, bearer tokens) and authorizes the access
// each API route needs. The HTTP layer names the access; an Authorizer
// answers.
package auth

import "net/http"

// Actions on a repository.
const (
	ActionPull   = "pull"
	ActionPush   = "push"
	ActionDelete = "delete"
	// ActionAdmin is registry-wide administration (the admin API's
	// collection, retention and registry-wide usage): the scope
	// registry:catalog:admin, granted by access rules over "**".
	ActionAdmin = "admin"
)

// Access is one permission a request needs, in the terms of Docker's token
// specification: an action on a resource of a type ("repository" with its
// name, or "registry" with name "catalog" and action "*").
type Access struct {
	Type   string
	Name   string
	Action string
}

// Repository returns the access to act on a repository.
func Repository(name, action string) Access {
	return Access{Type: "repository", Name: name, Action: action}
}

// Catalog is the access to list repositories.
var Catalog = Access{Type: "registry", Name: "catalog", Action: "*"}

// Admin is the access to administer the registry (registry:catalog:admin).
var Admin = Access{Type: "registry", Name: "catalog", Action: ActionAdmin}

// Authorizer decides whether a request may proceed.
//
// Authorize is called once per request with everything the route needs (an
// empty list for GET /v2/, which only asks "who are you?"). It returns the
// request to go on with, whose context may carry the caller's identity, or
// an error carrying UNAUTHORIZED (401) or DENIED (403); challenge headers
// such as WWW-Authenticate are set on w before it returns.
//
// Allowed answers a question asked while serving (may this caller pull
// that repository?) for the catalog's filter and cross-repository mounts.
type Authorizer interface {
	Authorize(w http.ResponseWriter, r *http.Request, access ...Access) (*http.Request, error)
	Allowed(r *http.Request, access Access) bool
}
