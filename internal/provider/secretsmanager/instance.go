package secretsmanager

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/IBM/go-sdk-core/v5/core"
	sm "github.com/IBM/secrets-manager-go-sdk/v2/secretsmanagerv2"

	"github.com/certbackup/certbackup/internal/engine"
)

// Instance adapts one Secrets Manager instance to engine.Source and engine.Target.
//
// A certificate's ID is its secret's CRN. Copies are imported_cert secrets in the
// client's secret group; certbackup's marker is in custom_metadata (MetadataSource,
// MetadataOrigin, MetadataProof) and a copy carries Label, so descriptions stay the
// user's own text and Marker.Raw is always empty.
//
// Reading a certificate's material (Download) sets the service's downloaded flag on
// its current version, in the source and, when the engine reads a copy back, in the
// backup: the flag then says that certbackup read it, not that a workload did.
type Instance struct {
	Client *Client
	CRN    string
}

var (
	_ engine.Source = Instance{}
	_ engine.Target = Instance{}
)

// Instance is the instance's CRN.
func (i Instance) Instance() string { return i.CRN }

// List lists every imported, public and private certificate of the instance, in every
// secret group (metadata only; nothing is downloaded).
func (i Instance) List(ctx context.Context) ([]engine.Certificate, error) {
	views, err := i.Client.listSecrets(ctx, i.CRN)
	if err != nil {
		return nil, err
	}
	now := i.Client.now()
	out := make([]engine.Certificate, 0, len(views))
	at := map[string]int{}
	for _, v := range views {
		c := toEngine(v, secretCRN(i.CRN, v), now)
		if k, seen := at[c.ID]; seen {
			out[k] = c
			continue
		}
		at[c.ID] = len(out)
		out = append(out, c)
	}
	return out, nil
}

// Metadata reads one certificate's metadata (no material, no downloaded flag).
func (i Instance) Metadata(ctx context.Context, id string) (*engine.Certificate, error) {
	v, err := i.Client.getMetadata(ctx, i.CRN, id)
	if err != nil {
		return nil, err
	}
	c := toEngine(v, secretCRN(i.CRN, v), i.Client.now())
	return &c, nil
}

// Download reads one certificate with its material (see materialOf for how the leaf
// and the chain are taken from each type). A secret that is not a certificate, or not
// Active, has nothing to copy: that is an error, which the engine reports.
//
// Reading the material sets the service's downloaded flag on the secret's current
// version (SecretsReader is needed); List and Metadata never do.
func (i Instance) Download(ctx context.Context, id string) (*engine.Downloaded, error) {
	v, err := i.Client.getSecret(ctx, i.CRN, id)
	if err != nil {
		return nil, err
	}
	c := toEngine(v, secretCRN(i.CRN, v), i.Client.now())
	switch {
	case !isCertificateType(v.SecretType):
		return nil, inactive(id, c.StateReason+": nothing to copy")
	case v.State == nil || *v.State != stateActive:
		return nil, inactive(id, "the secret is not active ("+c.StateReason+"): it has no certificate to copy")
	case v.Certificate == "":
		e := apiError(opDownload, id)
		e.Message = "the answer holds no certificate"
		return nil, e
	}
	return &engine.Downloaded{Certificate: c, Material: materialOf(v)}, nil
}

// Fit is l as this instance stores it: FitName (valid, and unique per source through a
// hash of the marker's root) and FitDescription (at most 1024, left out when empty).
// Import and UpdateLabels write exactly this, and List reports it back.
func (i Instance) Fit(l engine.Labels) engine.Labels { return FitLabels(l) }

// Import creates a copy: an imported_cert in the client's secret group, labelled
// Label, with the marker in custom_metadata. A missing group is an error wrapping
// ErrNoSecretGroup, returned before anything is written. The create is never resent
// (except after a 429); a failure that leaves it unknown whether the secret was made
// answers engine.ErrAmbiguous.
func (i Instance) Import(ctx context.Context, l engine.Labels, m engine.Material) (*engine.Certificate, error) {
	l = FitLabels(l)
	group, err := i.Client.groupID(ctx, i.CRN)
	if err != nil {
		return nil, err
	}
	proto := &sm.ImportedCertificatePrototype{
		SecretType:    core.StringPtr(sm.ImportedCertificatePrototype_SecretType_ImportedCert),
		Name:          core.StringPtr(l.Name),
		Description:   optional(l.Description),
		SecretGroupID: core.StringPtr(group),
		Certificate:   core.StringPtr(m.Certificate),
		Intermediate:  optional(m.Intermediate),
		PrivateKey:    optional(m.PrivateKey),
	}
	if l.Marker != (engine.Marker{}) {
		proto.Labels = []string{Label}
		proto.CustomMetadata = markerMetadata(l.Marker)
	}
	v, err := i.Client.createSecret(ctx, i.CRN, proto)
	if err != nil {
		if group != DefaultSecretGroup && isBadRequest(err) {
			i.Client.forgetGroup(i.CRN)
		}
		return nil, err
	}
	id := secretCRN(i.CRN, v)
	i.Client.fresh.put(id, v, i.Client.now())
	c := toEngine(v, id, i.Client.now())
	return &c, nil
}

// Reimport adds a version holding m to copy id; the previous version stays (Secrets
// Manager keeps current and previous with their data). It is never resent (except
// after a 429). One call: the engine reads the copy back itself.
func (i Instance) Reimport(ctx context.Context, id string, m engine.Material) error {
	proto := &sm.ImportedCertificateVersionPrototype{
		Certificate:  core.StringPtr(m.Certificate),
		Intermediate: optional(m.Intermediate),
		PrivateKey:   optional(m.PrivateKey),
	}
	_, err := i.Client.createVersion(ctx, i.CRN, id, proto)
	return err
}

// UpdateLabels sets the copy's name, description and marker (custom_metadata, and
// Label) without touching its material. It reads the metadata first and patches only
// what differs, keeping the user's other labels and custom_metadata keys; a marker key
// to remove is sent as null, which a JSON merge patch deletes. Right after this
// client created the copy, the create's answer stands for the read (freshFor).
func (i Instance) UpdateLabels(ctx context.Context, id string, l engine.Labels) error {
	l = FitLabels(l)
	cur, ok := i.Client.fresh.take(id, i.Client.now())
	if !ok {
		var err error
		if cur, err = i.Client.getMetadata(ctx, i.CRN, id); err != nil {
			return err
		}
	}
	patch := labelsPatch(cur, l)
	if len(patch) == 0 {
		return nil
	}
	return i.Client.patchMetadata(ctx, i.CRN, id, patch)
}

// labelsPatch is the merge patch that gives secret cur the labels l.
func labelsPatch(cur secretView, l engine.Labels) map[string]any {
	patch := map[string]any{}
	if cur.Name != l.Name {
		patch["name"] = l.Name
	}
	if cur.Description != l.Description {
		patch["description"] = nullIfEmpty(l.Description)
	}
	marked := l.Marker != (engine.Marker{})

	labels := slices.DeleteFunc(slices.Clone(cur.Labels), func(s string) bool { return s == Label })
	if marked {
		labels = append(labels, Label)
	}
	if !slices.Equal(labels, cur.Labels) {
		if len(labels) == 0 {
			patch["labels"] = nil
		} else {
			patch["labels"] = labels
		}
	}

	// The user's keys stay; ours are what the marker says. A key of ours that holds no
	// string counts as absent, as markerOf reads it.
	want := map[string]any{}
	have := map[string]any{}
	for k, v := range cur.CustomMetadata {
		if !slices.Contains(markerKeys, k) {
			want[k], have[k] = v, v
		} else if s, ok := v.(string); ok && s != "" {
			have[k] = s
		}
	}
	if marked {
		maps.Copy(want, markerMetadata(l.Marker))
	}
	if !maps.EqualFunc(want, have, func(a, b any) bool { return fmt.Sprint(a) == fmt.Sprint(b) }) {
		switch {
		case len(want) == 0:
			patch["custom_metadata"] = nil
		default:
			cm := maps.Clone(want)
			for _, k := range markerKeys {
				if _, gone := want[k]; !gone {
					if _, had := have[k]; had {
						cm[k] = nil
					}
				}
			}
			patch["custom_metadata"] = cm
		}
	}
	return patch
}

// Delete deletes certificate id with all its versions. ErrNotFound when it is gone.
func (i Instance) Delete(ctx context.Context, id string) error {
	return i.Client.deleteSecret(ctx, i.CRN, id)
}

// Check verifies the configuration for a backup instance without writing: the API key
// can list its secrets (Reader) and the secret group exists. A backup also needs Writer
// to import, and Manager to delete copies, which cannot be checked without writing.
func (i Instance) Check(ctx context.Context) error {
	if err := i.probe(ctx); err != nil {
		return i.checkError("backup", "Writer (Manager to delete copies)", err)
	}
	if _, err := i.Client.groupID(ctx, i.CRN); err != nil {
		return i.checkError("backup", "Writer (Manager to delete copies)", err)
	}
	return nil
}

// CheckSource verifies that the API key can list the source's secrets (Reader); a
// source also needs SecretsReader to read their material, which cannot be checked
// without setting their downloaded flag.
func (i Instance) CheckSource(ctx context.Context) error {
	if err := i.probe(ctx); err != nil {
		return i.checkError("source", "SecretsReader", err)
	}
	return nil
}

func (i Instance) probe(ctx context.Context) error {
	_, err := i.Client.listPage(ctx, i.CRN, 0, 1)
	return err
}

func (i Instance) checkError(kind, role string, err error) error {
	if errors.Is(err, engine.ErrForbidden) {
		return fmt.Errorf("%s instance %s: %w; a %s instance needs the %s role", kind, i.CRN, err, kind, role)
	}
	return fmt.Errorf("%s instance %s: %w", kind, i.CRN, err)
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// UniqueNames: Secrets Manager refuses two secrets of one type and name in an
// instance (engine.UniqueNames).
func (Instance) UniqueNames() bool { return true }
