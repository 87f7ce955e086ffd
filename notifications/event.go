// Package notifications sends registry events to webhooks, as
// distribution's notifications do: each push, pull, mount and delete
// becomes an Event, and every configured endpoint receives the events that
// concern it, POSTed as an Envelope with Content-Type EventsMediaType.
//
// Sending never holds up the request that caused an event: each endpoint
// has a bounded queue (the oldest events are dropped when it overflows)
// and one goroutine that delivers batches in order, retrying a failing
// endpoint with backoff until it accepts them or the registry stops.
package notifications

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"time"
)

// EventsMediaType is the Content-Type of the envelopes POSTed to endpoints.
const EventsMediaType = "application/vnd.docker.distribution.events.v1+json"

// Actions of events.
const (
	ActionPush   = "push"   // a manifest or blob was pushed
	ActionPull   = "pull"   // a manifest or blob was fetched (GET, not HEAD)
	ActionMount  = "mount"  // a blob was mounted from another repository
	ActionDelete = "delete" // a manifest, tag or blob was deleted
	// ActionFill: the pull-through cache stored a manifest or blob it
	// fetched from its upstream (registryd, not in distribution).
	ActionFill = "fill"
)

// BlobMediaType is the target media type of blob events: the registry
// does not know what a blob holds.
const BlobMediaType = "application/octet-stream"

// Envelope is the body of every POST: one or more events, oldest first.
type Envelope struct {
	Events []Event `json:"events"`
}

// Event is one thing that happened in the registry, in distribution's
// format.
type Event struct {
	ID        string    `json:"id"`        // unique; a retried delivery sends the same id
	Timestamp time.Time `json:"timestamp"` // when the registry served the request
	Action    string    `json:"action"`    // push, pull, mount or delete
	Target    Target    `json:"target"`    // what the action was on
	Request   Request   `json:"request"`   // the request that caused it
	Actor     Actor     `json:"actor"`     // who made it
	Source    Source    `json:"source"`    // which registry served it
}

// Target is what an event's action was on.
type Target struct {
	MediaType string `json:"mediaType,omitempty"`
	Size      int64  `json:"size,omitempty"`
	Digest    string `json:"digest,omitempty"`
	// Length is Size again: distribution's older receivers read it.
	Length     int64  `json:"length,omitempty"`
	Repository string `json:"repository,omitempty"`
	// FromRepository is the source repository of a mount.
	FromRepository string `json:"fromRepository,omitempty"`
	// URL fetches the target (manifests by digest).
	URL string `json:"url,omitempty"`
	// Tag is the tag a manifest was pushed, pulled or deleted by.
	Tag string `json:"tag,omitempty"`
	// References are the descriptors a manifest refers to (config and
	// layers, or an index's manifests), with notifications.events.
	// includereferences.
	References []Descriptor `json:"references,omitempty"`
}

// Descriptor is a reference from a manifest.
type Descriptor struct {
	MediaType string `json:"mediaType,omitempty"`
	Size      int64  `json:"size,omitempty"`
	Digest    string `json:"digest,omitempty"`
}

// Request describes the HTTP request behind an event.
type Request struct {
	ID        string `json:"id"`        // the request's X-Request-Id, as in the access log
	Addr      string `json:"addr"`      // the client's address
	Host      string `json:"host"`      // the Host the client asked for
	Method    string `json:"method"`    // GET, PUT, POST, DELETE
	UserAgent string `json:"useragent"` // the client's User-Agent
}

// Actor is who made the request: the authenticated user, if any.
type Actor struct {
	Name string `json:"name,omitempty"`
}

// Source is the registry instance that served the request.
type Source struct {
	Addr       string `json:"addr"`       // host:port of the registry
	InstanceID string `json:"instanceID"` // changes with every start
}

// Marshal encodes events as an envelope.
func Marshal(events []Event) ([]byte, error) {
	return json.Marshal(Envelope{Events: events})
}

// RequestOf describes the HTTP request r, whose request id is id, for an
// event. The client's address is reported as distribution reports it: the
// first X-Forwarded-For entry or X-Real-Ip when a proxy set them,
// otherwise the peer of the connection.
func RequestOf(r *http.Request, id string) Request {
	return Request{ID: id, Addr: clientAddr(r), Host: r.Host, Method: r.Method, UserAgent: r.UserAgent()}
}

func clientAddr(r *http.Request) string {
	if fwd := r.Header.Get("X-Forwarded-For"); fwd != "" {
		first, _, _ := strings.Cut(fwd, ",")
		if ip := strings.TrimSpace(first); net.ParseIP(ip) != nil {
			return ip
		}
	}
	if ip := strings.TrimSpace(r.Header.Get("X-Real-Ip")); net.ParseIP(ip) != nil {
		return ip
	}
	return r.RemoteAddr
}
