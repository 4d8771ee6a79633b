package smsim

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
)

// decodeStrict reads a JSON body of the given media type into v: unknown fields,
// trailing data and a wrong Content-Type are refused.
func decodeStrict(r *http.Request, mediaType string, v any) *apiError {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != mediaType {
		return errorf(http.StatusUnsupportedMediaType, codeUnsupportedMedia, "Content-Type must be %s", mediaType)
	}
	body, _ := io.ReadAll(r.Body)
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if strings.Contains(err.Error(), "unknown field") {
			// The message names the field, never a value.
			return badRequest("the request body has a field that is not allowed here: %s", strings.TrimPrefix(err.Error(), "json: "))
		}
		return badRequest("the request body is not valid JSON of the expected shape")
	}
	if dec.More() {
		return badRequest("the request body has data after the JSON value")
	}
	return nil
}

// peekType reads secret_type from a JSON object body without decoding the rest.
func peekType(r *http.Request) (string, *apiError) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return "", badRequest("the request body must be a JSON object")
	}
	var typ string
	if raw, ok := m["secret_type"]; ok {
		if err := json.Unmarshal(raw, &typ); err != nil {
			return "", badRequest("secret_type must be a string")
		}
	}
	return typ, nil
}

// lookupSecretLocked finds the secret of the path's {id} in the route's instance.
func lookupSecretLocked(rt *route) (*secret, *apiError) {
	id := rt.params["id"]
	if !uuidRE.MatchString(id) {
		return nil, badRequest("the secret id must be a UUID")
	}
	sec, ok := rt.inst.secrets[id]
	if !ok {
		return nil, notFound("secret")
	}
	return sec, nil
}

type importedCertBody struct {
	SecretType            *string         `json:"secret_type"`
	Name                  *string         `json:"name"`
	Description           *string         `json:"description"`
	SecretGroupID         *string         `json:"secret_group_id"`
	Labels                []string        `json:"labels"`
	Certificate           *string         `json:"certificate"`
	Intermediate          *string         `json:"intermediate"`
	PrivateKey            *string         `json:"private_key"`
	ManagedCsr            json.RawMessage `json:"managed_csr"`
	CustomMetadata        json.RawMessage `json:"custom_metadata"`
	VersionCustomMetadata json.RawMessage `json:"version_custom_metadata"`
}

// handleCreate is POST /api/v2/secrets: only imported_cert can be created.
func (s *Simulator) handleCreate(r *http.Request, rt *route, who string) response {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/json" {
		return errorf(http.StatusUnsupportedMediaType, codeUnsupportedMedia, "Content-Type must be application/json").response()
	}
	typ, e := peekType(r)
	if e != nil {
		return e.response()
	}
	switch {
	case typ == "":
		return badRequest("secret_type is required").response()
	case typ == PublicCert || typ == PrivateCert:
		return badRequest("a %s is ordered or issued by the service from a configured CA; the simulator creates it only through its Go API", typ).response()
	case typ != ImportedCert:
		return badRequest("secret_type %q is not supported by the simulator", typ).response()
	}
	var b importedCertBody
	if e := decodeStrict(r, "application/json", &b); e != nil {
		return e.response()
	}
	in := Seed{Type: ImportedCert}
	if b.Name == nil {
		return badRequest("name is required").response()
	}
	in.Name = *b.Name
	if b.Description != nil {
		if e := validateDescription(*b.Description); e != nil {
			return e.response()
		}
		in.Description = *b.Description
	}
	if b.SecretGroupID != nil {
		in.GroupID = *b.SecretGroupID
		if in.GroupID == "" {
			return badRequest("secret_group_id must be a UUID or \"default\"").response()
		}
	}
	if len(b.ManagedCsr) > 0 && string(b.ManagedCsr) != "null" {
		return badRequest("managed_csr is not supported by the simulator").response()
	}
	if b.Certificate == nil {
		return badRequest("certificate is required").response()
	}
	in.Certificate = *b.Certificate
	optional := func(field string, p *string) (string, *apiError) {
		if p == nil {
			return "", nil
		}
		if *p == "" {
			return "", badRequest("%s must be %d to %d characters long", field, minPEMLen, maxPEMLen)
		}
		return *p, nil
	}
	if in.Intermediate, e = optional("intermediate", b.Intermediate); e != nil {
		return e.response()
	}
	if in.PrivateKey, e = optional("private_key", b.PrivateKey); e != nil {
		return e.response()
	}
	in.Labels = b.Labels
	cm, e := compactObject("custom_metadata", b.CustomMetadata)
	if e != nil {
		return e.response()
	}
	vcm, e := compactObject("version_custom_metadata", b.VersionCustomMetadata)
	if e != nil {
		return e.response()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, e := s.createLocked(rt.inst, in, cm, vcm, who)
	if e != nil {
		return e.response()
	}
	return jsonResponse(http.StatusCreated, rt.inst.renderSecret(sec, false))
}

// handleGet is GET /api/v2/secrets/{id}: the secret with its payload.
func (s *Simulator) handleGet(_ *http.Request, rt *route, _ string) response {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, e := lookupSecretLocked(rt)
	if e != nil {
		return e.response()
	}
	return jsonResponse(http.StatusOK, readSecretLocked(rt.inst, sec))
}

// readSecretLocked renders sec with its payload and marks the version downloaded when
// a payload was returned.
func readSecretLocked(inst *instance, sec *secret) secretJSON {
	out := inst.renderSecret(sec, true)
	if out.Certificate != "" {
		sec.current().downloaded = true
		out.Downloaded = true
	}
	return out
}

// handleGetMetadata is GET /api/v2/secrets/{id}/metadata.
func (s *Simulator) handleGetMetadata(_ *http.Request, rt *route, _ string) response {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, e := lookupSecretLocked(rt)
	if e != nil {
		return e.response()
	}
	return jsonResponse(http.StatusOK, rt.inst.renderSecret(sec, false))
}

// handleUpdateMetadata is PATCH /api/v2/secrets/{id}/metadata, a JSON merge patch of
// name, description, labels and custom_metadata.
func (s *Simulator) handleUpdateMetadata(r *http.Request, rt *route, _ string) response {
	s.mu.Lock()
	sec, e := lookupSecretLocked(rt)
	s.mu.Unlock()
	if e != nil {
		return e.response()
	}
	var patch map[string]json.RawMessage
	if e := decodeStrict(r, "application/merge-patch+json", &patch); e != nil {
		return e.response()
	}
	p, e := parsePatch(patch)
	if e != nil {
		return e.response()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if rt.inst.secrets[sec.id] != sec {
		return notFound("secret").response()
	}
	if e := s.patchLocked(rt.inst, sec, p); e != nil {
		return e.response()
	}
	return jsonResponse(http.StatusOK, rt.inst.renderSecret(sec, false))
}

// metadataPatch is a parsed merge patch; nil pointers are absent fields.
type metadataPatch struct {
	name           *string
	description    *string
	labels         *[]string
	customMetadata *json.RawMessage
}

func parsePatch(m map[string]json.RawMessage) (metadataPatch, *apiError) {
	var p metadataPatch
	if m == nil {
		return p, badRequest("the request body must be a JSON object")
	}
	if len(m) == 0 {
		return p, badRequest("the patch changes nothing: give at least one of name, description, labels, custom_metadata")
	}
	for k, raw := range m {
		isNull := string(raw) == "null"
		switch k {
		case "name":
			var v string
			if isNull || json.Unmarshal(raw, &v) != nil {
				return p, badRequest("name must be a string")
			}
			if e := validateName(v); e != nil {
				return p, e
			}
			p.name = &v
		case "description":
			var v string
			if !isNull && json.Unmarshal(raw, &v) != nil {
				return p, badRequest("description must be a string or null")
			}
			if !isNull {
				if e := validateDescription(v); e != nil {
					return p, e
				}
			}
			p.description = &v
		case "labels":
			var v []string
			if !isNull && json.Unmarshal(raw, &v) != nil {
				return p, badRequest("labels must be an array of strings or null")
			}
			if e := validateLabels(v); e != nil {
				return p, e
			}
			if len(v) == 0 {
				v = nil
			}
			p.labels = &v
		case "custom_metadata":
			v, e := compactObject("custom_metadata", raw)
			if e != nil {
				return p, e
			}
			p.customMetadata = &v
		default:
			return p, badRequest("the field %q cannot be patched here; allowed: name, description, labels, custom_metadata", k)
		}
	}
	return p, nil
}

func (s *Simulator) patchLocked(inst *instance, sec *secret, p metadataPatch) *apiError {
	if sec.locksTotal() > 0 {
		return lockedError()
	}
	if p.name != nil && inst.nameTakenLocked(sec.typ, *p.name, sec.id) {
		return errorf(http.StatusConflict, codeConflict, "a secret of type %s with this name already exists in the instance", sec.typ)
	}
	if p.name != nil {
		sec.name = *p.name
	}
	if p.description != nil {
		sec.description = *p.description
	}
	if p.labels != nil {
		sec.labels = *p.labels
	}
	if p.customMetadata != nil {
		sec.customMetadata = *p.customMetadata
	}
	sec.updatedAt = s.now()
	return nil
}

// handleDelete is DELETE /api/v2/secrets/{id}.
func (s *Simulator) handleDelete(_ *http.Request, rt *route, _ string) response {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, e := lookupSecretLocked(rt)
	if e != nil {
		return e.response()
	}
	if sec.locksTotal() > 0 {
		return lockedError().response()
	}
	delete(rt.inst.secrets, sec.id)
	return emptyResponse(http.StatusNoContent)
}

type versionCollectionJSON struct {
	Versions   []versionJSON `json:"versions"`
	TotalCount int           `json:"total_count"`
}

// handleListVersions is GET /api/v2/secrets/{id}/versions: newest first, no paging.
func (s *Simulator) handleListVersions(_ *http.Request, rt *route, _ string) response {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, e := lookupSecretLocked(rt)
	if e != nil {
		return e.response()
	}
	out := versionCollectionJSON{Versions: []versionJSON{}, TotalCount: len(sec.versions)}
	for i := len(sec.versions) - 1; i >= 0; i-- {
		out.Versions = append(out.Versions, renderVersion(sec, sec.versions[i], false))
	}
	return jsonResponse(http.StatusOK, out)
}

type importedVersionBody struct {
	Certificate           *string         `json:"certificate"`
	Intermediate          *string         `json:"intermediate"`
	PrivateKey            *string         `json:"private_key"`
	CustomMetadata        json.RawMessage `json:"custom_metadata"`
	VersionCustomMetadata json.RawMessage `json:"version_custom_metadata"`
}

// handleCreateVersion is POST /api/v2/secrets/{id}/versions for an imported_cert.
func (s *Simulator) handleCreateVersion(r *http.Request, rt *route, who string) response {
	s.mu.Lock()
	sec, e := lookupSecretLocked(rt)
	s.mu.Unlock()
	if e != nil {
		return e.response()
	}
	if sec.typ != ImportedCert {
		return badRequest("the simulator creates new versions through the API only for imported_cert secrets").response()
	}
	var b importedVersionBody
	if e := decodeStrict(r, "application/json", &b); e != nil {
		return e.response()
	}
	if b.Certificate == nil {
		return badRequest("certificate is required").response()
	}
	v := Version{Certificate: *b.Certificate}
	for _, f := range []struct {
		name string
		in   *string
		out  *string
	}{{"intermediate", b.Intermediate, &v.Intermediate}, {"private_key", b.PrivateKey, &v.PrivateKey}} {
		if f.in != nil && *f.in == "" {
			return badRequest("%s must be %d to %d characters long", f.name, minPEMLen, maxPEMLen).response()
		}
		if f.in != nil {
			*f.out = *f.in
		}
	}
	cm, e := compactObject("custom_metadata", b.CustomMetadata)
	if e != nil {
		return e.response()
	}
	vcm, e := compactObject("version_custom_metadata", b.VersionCustomMetadata)
	if e != nil {
		return e.response()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if rt.inst.secrets[sec.id] != sec {
		return notFound("secret").response()
	}
	ver, e := s.rotateLocked(sec, v, vcm, who)
	if e != nil {
		return e.response()
	}
	if b.CustomMetadata != nil {
		sec.customMetadata = cm
	}
	return jsonResponse(http.StatusCreated, renderVersion(sec, ver, false))
}

// lookupVersionLocked resolves the path's {version}: a UUID, current or previous.
func lookupVersionLocked(rt *route) (*secret, *version, *apiError) {
	sec, e := lookupSecretLocked(rt)
	if e != nil {
		return nil, nil, e
	}
	ref := rt.params["version"]
	if ref != "current" && ref != "previous" && !uuidRE.MatchString(ref) {
		return nil, nil, badRequest("the version id must be a UUID, current or previous")
	}
	v := sec.findVersion(ref)
	if v == nil {
		return nil, nil, notFound("secret version")
	}
	return sec, v, nil
}

// handleGetVersion is GET /api/v2/secrets/{id}/versions/{version}, with payload.
func (s *Simulator) handleGetVersion(_ *http.Request, rt *route, _ string) response {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, v, e := lookupVersionLocked(rt)
	if e != nil {
		return e.response()
	}
	out := renderVersion(sec, v, true)
	if out.Certificate != "" {
		v.downloaded = true
		out.Downloaded = true
	}
	return jsonResponse(http.StatusOK, out)
}

// handleGetVersionMetadata is GET /api/v2/secrets/{id}/versions/{version}/metadata.
func (s *Simulator) handleGetVersionMetadata(_ *http.Request, rt *route, _ string) response {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, v, e := lookupVersionLocked(rt)
	if e != nil {
		return e.response()
	}
	return jsonResponse(http.StatusOK, renderVersion(sec, v, false))
}

// handleGetByName is GET /api/v2/secret_groups/{group_name}/secret_types/{type}/secrets/{name}.
func (s *Simulator) handleGetByName(_ *http.Request, rt *route, _ string) response {
	typ := rt.params["type"]
	if !slices.Contains(secretTypes, typ) {
		return badRequest("unknown secret type %q", typ).response()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	gid, ok := rt.inst.groupByName(rt.params["group_name"])
	if !ok {
		return notFound("secret group").response()
	}
	for _, sec := range rt.inst.secrets {
		if sec.typ == typ && sec.groupID == gid && sec.name == rt.params["name"] {
			return jsonResponse(http.StatusOK, readSecretLocked(rt.inst, sec))
		}
	}
	return notFound("secret").response()
}

type groupCollectionJSON struct {
	SecretGroups []groupJSON `json:"secret_groups"`
	TotalCount   int         `json:"total_count"`
}

// handleListGroups is GET /api/v2/secret_groups. The default group is not listed.
func (s *Simulator) handleListGroups(_ *http.Request, rt *route, _ string) response {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := groupCollectionJSON{SecretGroups: []groupJSON{}}
	for _, g := range sortedGroups(rt.inst) {
		out.SecretGroups = append(out.SecretGroups, renderGroup(g))
	}
	out.TotalCount = len(out.SecretGroups)
	return jsonResponse(http.StatusOK, out)
}

func sortedGroups(inst *instance) []*group {
	out := make([]*group, 0, len(inst.groups))
	for _, g := range inst.groups {
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b *group) int { return strings.Compare(a.name, b.name) })
	return out
}

type groupBody struct {
	Name        *string `json:"name"`
	Description *string `json:"description"`
}

// handleCreateGroup is POST /api/v2/secret_groups.
func (s *Simulator) handleCreateGroup(r *http.Request, rt *route, who string) response {
	var b groupBody
	if e := decodeStrict(r, "application/json", &b); e != nil {
		return e.response()
	}
	if b.Name == nil {
		return badRequest("name is required").response()
	}
	desc := ""
	if b.Description != nil {
		if e := validateDescription(*b.Description); e != nil {
			return e.response()
		}
		desc = *b.Description
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, e := s.addGroupLocked(rt.inst, *b.Name, desc, who)
	if e != nil {
		return e.response()
	}
	return jsonResponse(http.StatusCreated, renderGroup(g))
}

func lookupGroupLocked(rt *route) (*group, *apiError) {
	id := rt.params["group"]
	if !uuidRE.MatchString(id) {
		if id == defaultGroup {
			return nil, notFound("secret group")
		}
		return nil, badRequest("the secret group id must be a UUID")
	}
	g, ok := rt.inst.groups[id]
	if !ok {
		return nil, notFound("secret group")
	}
	return g, nil
}

// handleGetGroup is GET /api/v2/secret_groups/{id}.
func (s *Simulator) handleGetGroup(_ *http.Request, rt *route, _ string) response {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, e := lookupGroupLocked(rt)
	if e != nil {
		return e.response()
	}
	return jsonResponse(http.StatusOK, renderGroup(g))
}

// handleDeleteGroup is DELETE /api/v2/secret_groups/{id}; the group must be empty.
func (s *Simulator) handleDeleteGroup(_ *http.Request, rt *route, _ string) response {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, e := lookupGroupLocked(rt)
	if e != nil {
		return e.response()
	}
	for _, sec := range rt.inst.secrets {
		if sec.groupID == g.id {
			return errorf(http.StatusConflict, codeConflict, "the secret group is not empty: delete its secrets first").response()
		}
	}
	delete(rt.inst.groups, g.id)
	return emptyResponse(http.StatusNoContent)
}
