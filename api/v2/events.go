package v2

import (
	"encoding/json"
	"net/http"

	"github.com/registryd/registryd/auth"
	"github.com/registryd/registryd/notifications"
	"github.com/registryd/registryd/storage"
)

// notify sends an event about the request r to the notification
// endpoints, if any. It never blocks and never fails the request.
func (a *API) notify(w http.ResponseWriter, r *http.Request, action string, target notifications.Target) {
	if !a.opts.Notifier.Enabled() {
		return
	}
	id := w.Header().Get(RequestIDHeader)
	if id == "" {
		id = r.Header.Get(RequestIDHeader)
	}
	ev := notifications.Event{
		Action:  action,
		Target:  target,
		Request: notifications.RequestOf(r, id),
	}
	if name, ok := auth.UserFromContext(r.Context()); ok {
		ev.Actor.Name = name
	}
	a.opts.Notifier.Notify(ev)
}

// manifestTarget describes a manifest for an event; tag is the tag it was
// addressed by, if any.
func (a *API) manifestTarget(r *http.Request, repo *storage.Repository, m *storage.Manifest, tag string) notifications.Target {
	t := notifications.Target{
		MediaType:  m.MediaType,
		Size:       int64(len(m.Content)),
		Digest:     m.Digest.String(),
		Repository: repo.Name(),
		URL:        a.location(r, "/v2/"+repo.Name()+"/manifests/"+m.Digest.String()),
		Tag:        tag,
	}
	if a.opts.Notifier.IncludeReferences() {
		t.References = references(m.Content)
	}
	return t
}

// references lists the descriptors a manifest or index refers to: its
// config and layers, or its manifests.
func references(content []byte) []notifications.Descriptor {
	var m struct {
		Config    *notifications.Descriptor  `json:"config"`
		Layers    []notifications.Descriptor `json:"layers"`
		Manifests []notifications.Descriptor `json:"manifests"`
	}
	if json.Unmarshal(content, &m) != nil {
		return nil
	}
	var out []notifications.Descriptor
	if m.Config != nil {
		out = append(out, *m.Config)
	}
	out = append(out, m.Layers...)
	return append(out, m.Manifests...)
}

// blobTarget describes a blob for an event.
func (a *API) blobTarget(r *http.Request, repo *storage.Repository, desc storage.Descriptor) notifications.Target {
	return notifications.Target{
		MediaType:  notifications.BlobMediaType,
		Size:       desc.Size,
		Digest:     desc.Digest.String(),
		Repository: repo.Name(),
		URL:        a.location(r, "/v2/"+repo.Name()+"/blobs/"+desc.Digest.String()),
	}
}
