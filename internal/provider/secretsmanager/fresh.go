package secretsmanager

import (
	"sync"
	"time"
)

// freshFor is how long the labels a create answered with stand for the secret's
// current labels. The engine patches a new copy's proof right after importing it (the
// proof binds the ID the service just chose): within this time the patch needs no
// read of the metadata. Anyone's later change is seen by a read, as before.
const freshFor = 10 * time.Second

// freshLabels remembers, per secret CRN, the labels a create of ours answered with:
// name, description, labels and custom metadata, never the payload. Each is used once.
type freshLabels struct {
	mu sync.Mutex
	m  map[string]freshEntry
}

type freshEntry struct {
	view secretView
	at   time.Time
}

// put remembers v's labels, created at now, and forgets entries that are too old.
func (f *freshLabels) put(secret string, v secretView, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[string]freshEntry{}
	}
	for k, e := range f.m {
		if now.Sub(e.at) > freshFor {
			delete(f.m, k)
		}
	}
	f.m[secret] = freshEntry{view: secretView{
		ID: v.ID, CRN: v.CRN, Name: v.Name, Description: v.Description,
		Labels: v.Labels, CustomMetadata: v.CustomMetadata,
	}, at: now}
}

// take returns and forgets the labels remembered for secret, if they are recent.
func (f *freshLabels) take(secret string, now time.Time) (secretView, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.m[secret]
	delete(f.m, secret)
	if !ok || now.Sub(e.at) > freshFor {
		return secretView{}, false
	}
	return e.view, true
}
