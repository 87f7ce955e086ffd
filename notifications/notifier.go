package notifications

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/sirupsen/logrus"
)

// Config configures a Notifier.
type Config struct {
	Endpoints []EndpointConfig
	// Source identifies this registry in every event.
	Source Source
	// IncludeReferences asks for Target.References in manifest events.
	IncludeReferences bool
}

// Notifier hands each event to every endpoint. A nil *Notifier is valid
// and does nothing, so that callers need not check whether notifications
// are configured.
type Notifier struct {
	endpoints         []*Endpoint
	source            Source
	includeReferences bool
}

// New starts a sender for each endpoint. It returns nil when there are no
// endpoints.
func New(cfg Config, log logrus.FieldLogger, obs Observer) *Notifier {
	if len(cfg.Endpoints) == 0 {
		return nil
	}
	n := &Notifier{source: cfg.Source, includeReferences: cfg.IncludeReferences}
	for _, ec := range cfg.Endpoints {
		n.endpoints = append(n.endpoints, NewEndpoint(ec, log, obs))
	}
	return n
}

// Enabled tells whether events go anywhere; building one can be skipped
// otherwise.
func (n *Notifier) Enabled() bool { return n != nil }

// IncludeReferences tells whether manifest events should carry references.
func (n *Notifier) IncludeReferences() bool { return n != nil && n.includeReferences }

// Notify completes ev (id, timestamp, source, length) and queues it for
// every endpoint that wants it. It never blocks.
func (n *Notifier) Notify(ev Event) {
	if n == nil {
		return
	}
	if ev.ID == "" {
		ev.ID = uuid.NewString()
	}
	if ev.Timestamp.IsZero() {
		ev.Timestamp = time.Now().UTC()
	}
	if ev.Source == (Source{}) {
		ev.Source = n.source
	}
	if ev.Target.Length == 0 {
		ev.Target.Length = ev.Target.Size
	}
	for _, e := range n.endpoints {
		e.Write(ev)
	}
}

// Endpoints returns the endpoints, for their Stats.
func (n *Notifier) Endpoints() []*Endpoint {
	if n == nil {
		return nil
	}
	return n.endpoints
}

// Close flushes every endpoint until ctx is done (see Endpoint.Close).
func (n *Notifier) Close(ctx context.Context) error {
	if n == nil {
		return nil
	}
	errs := make([]error, len(n.endpoints))
	done := make(chan int)
	for i, e := range n.endpoints {
		go func() {
			errs[i] = e.Close(ctx)
			done <- i
		}()
	}
	for range n.endpoints {
		<-done
	}
	return errors.Join(errs...)
}
