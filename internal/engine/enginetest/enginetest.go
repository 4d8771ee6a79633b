// Package enginetest is an in-memory provider for tests of the engine: an instance
// that implements engine.Source and engine.Target with no HTTP, records every call,
// and fails any call a test asks it to. It derives a certificate's metadata from its
// PEM the way the real services do (serial, issuer, validity, domains).
//
// It is test support: no production code imports it.
package enginetest

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/certbackup/certbackup/internal/engine"
	"github.com/certbackup/certbackup/internal/pemutil"
)

// Call is one recorded call.
type Call struct {
	Op string // list, metadata, download, import, reimport, update, delete
	ID string // the certificate, or the instance for list and import
}

// Writes reports whether the call writes.
func (c Call) Writes() bool {
	switch c.Op {
	case "import", "reimport", "update", "delete":
		return true
	}
	return false
}

// Instance is one in-memory instance. Safe for concurrent use.
type Instance struct {
	CRN string
	// MaxDescription cuts descriptions in Fit (and so in every write); 0: no limit.
	MaxDescription int
	// Fail, when set, is asked before every call; a non-nil error fails the call
	// before it has any effect. AfterWrite errors are returned after the write took
	// effect (a lost answer).
	Fail       func(c Call) error
	AfterWrite func(c Call) error

	mu    sync.Mutex
	certs map[string]*entry
	order []string
	next  int
	calls []Call
}

type entry struct {
	cert     engine.Certificate
	material engine.Material
	versions int
}

// New returns an empty instance.
func New(crn string) *Instance { return &Instance{CRN: crn, certs: map[string]*entry{}} }

// Put stores a certificate as its owner would (no marker unless l has one) and
// returns its ID.
func (i *Instance) Put(l engine.Labels, m engine.Material) string {
	i.mu.Lock()
	defer i.mu.Unlock()
	c, err := i.store("", l, m)
	if err != nil {
		panic(err)
	}
	return c.ID
}

// Get returns a certificate and its material as stored.
func (i *Instance) Get(id string) (engine.Certificate, engine.Material, bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	e, ok := i.certs[id]
	if !ok {
		return engine.Certificate{}, engine.Material{}, false
	}
	return e.cert, e.material, true
}

// IDs lists the stored certificates' IDs in creation order.
func (i *Instance) IDs() []string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return slices.Clone(i.order)
}

// Calls returns the calls made so far, and forgets them.
func (i *Instance) Calls() []Call {
	i.mu.Lock()
	defer i.mu.Unlock()
	c := i.calls
	i.calls = nil
	return c
}

// Instance implements engine.Source.
func (i *Instance) Instance() string { return i.CRN }

func (i *Instance) begin(op, id string) error {
	i.mu.Lock()
	c := Call{Op: op, ID: id}
	i.calls = append(i.calls, c)
	i.mu.Unlock()
	if i.Fail != nil {
		return i.Fail(c)
	}
	return nil
}

func (i *Instance) end(op, id string) error {
	if i.AfterWrite != nil {
		return i.AfterWrite(Call{Op: op, ID: id})
	}
	return nil
}

// List implements engine.Source.
func (i *Instance) List(ctx context.Context) ([]engine.Certificate, error) {
	if err := i.begin("list", i.CRN); err != nil {
		return nil, err
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	out := make([]engine.Certificate, 0, len(i.order))
	for _, id := range i.order {
		out = append(out, i.certs[id].cert)
	}
	return out, ctx.Err()
}

// Metadata implements engine.Source.
func (i *Instance) Metadata(ctx context.Context, id string) (*engine.Certificate, error) {
	if err := i.begin("metadata", id); err != nil {
		return nil, err
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	e, ok := i.certs[id]
	if !ok {
		return nil, notFound(id)
	}
	c := e.cert
	return &c, ctx.Err()
}

// Download implements engine.Source.
func (i *Instance) Download(ctx context.Context, id string) (*engine.Downloaded, error) {
	if err := i.begin("download", id); err != nil {
		return nil, err
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	e, ok := i.certs[id]
	if !ok {
		return nil, notFound(id)
	}
	return &engine.Downloaded{Certificate: e.cert, Material: e.material}, ctx.Err()
}

// Fit implements engine.Target.
func (i *Instance) Fit(l engine.Labels) engine.Labels {
	if i.MaxDescription > 0 && len([]rune(l.Description)) > i.MaxDescription {
		l.Description = string([]rune(l.Description)[:i.MaxDescription])
	}
	return l
}

// Import implements engine.Target.
func (i *Instance) Import(ctx context.Context, l engine.Labels, m engine.Material) (*engine.Certificate, error) {
	if err := i.begin("import", i.CRN); err != nil {
		return nil, err
	}
	i.mu.Lock()
	c, err := i.store("", i.Fit(l), m)
	i.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return c, i.end("import", c.ID)
}

// Reimport implements engine.Target.
func (i *Instance) Reimport(ctx context.Context, id string, m engine.Material) error {
	if err := i.begin("reimport", id); err != nil {
		return err
	}
	i.mu.Lock()
	e, ok := i.certs[id]
	if !ok {
		i.mu.Unlock()
		return notFound(id)
	}
	_, err := i.store(id, engine.LabelsOf(e.cert), m)
	i.mu.Unlock()
	if err != nil {
		return err
	}
	return i.end("reimport", id)
}

// UpdateLabels implements engine.Target.
func (i *Instance) UpdateLabels(ctx context.Context, id string, l engine.Labels) error {
	if err := i.begin("update", id); err != nil {
		return err
	}
	i.mu.Lock()
	e, ok := i.certs[id]
	if !ok {
		i.mu.Unlock()
		return notFound(id)
	}
	l = i.Fit(l)
	e.cert.Name, e.cert.Description = l.Name, l.Description
	e.cert.Marker = markerOf(l)
	i.mu.Unlock()
	return i.end("update", id)
}

// Delete implements engine.Target.
func (i *Instance) Delete(ctx context.Context, id string) error {
	if err := i.begin("delete", id); err != nil {
		return err
	}
	i.mu.Lock()
	if _, ok := i.certs[id]; !ok {
		i.mu.Unlock()
		return notFound(id)
	}
	delete(i.certs, id)
	i.order = slices.DeleteFunc(i.order, func(s string) bool { return s == id })
	i.mu.Unlock()
	return i.end("delete", id)
}

// store writes a certificate (a new one when id is ""), with metadata derived from m.
func (i *Instance) store(id string, l engine.Labels, m engine.Material) (*engine.Certificate, error) {
	leaf, err := pemutil.ParseCertificate(m.Certificate)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	if id == "" {
		i.next++
		id = fmt.Sprintf("%s:certificate:%04d", i.CRN, i.next)
		i.certs[id] = &entry{}
		i.order = append(i.order, id)
	}
	e := i.certs[id]
	var domains []string
	if leaf.Subject.CommonName != "" {
		domains = append(domains, leaf.Subject.CommonName)
	}
	for _, d := range leaf.DNSNames {
		if !slices.Contains(domains, d) {
			domains = append(domains, d)
		}
	}
	e.versions++
	e.material = m
	e.cert = engine.Certificate{
		ID: id, Name: l.Name, Description: l.Description, Marker: markerOf(l),
		Domains: domains, Issuer: leaf.Issuer.CommonName, SerialNumber: pemutil.SerialString(leaf),
		NotBefore: leaf.NotBefore.UTC(), NotAfter: leaf.NotAfter.UTC(),
	}
	c := e.cert
	return &c, nil
}

func markerOf(l engine.Labels) *engine.Marker {
	if l.Marker == (engine.Marker{}) {
		return nil
	}
	m := l.Marker
	return &m
}

// ErrRefused is a write the instance refused (unparsable material).
var ErrRefused = fmt.Errorf("refused")

// Error is a failure with the engine's classes, for Fail and AfterWrite.
type Error struct {
	Msg     string
	Classes []error // engine.ErrRetryable, engine.ErrAmbiguous, ...
}

func (e *Error) Error() string { return e.Msg }

// Is answers the classes of the error.
func (e *Error) Is(target error) bool { return slices.Contains(e.Classes, target) }

func notFound(id string) error {
	return &Error{Msg: "not found: " + id, Classes: []error{engine.ErrNotFound}}
}
