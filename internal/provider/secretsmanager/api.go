package secretsmanager

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/IBM/go-sdk-core/v5/core"
	sm "github.com/IBM/secrets-manager-go-sdk/v2/secretsmanagerv2"

	"github.com/certbackup/certbackup/internal/crn"
	"github.com/certbackup/certbackup/internal/provider/safeerr"
)

// The API operations, one SDK call each, returning secrets as secretView. Each takes
// the instance CRN; secret-scoped ones take the secret's CRN, which must be in it.

// secretID is the UUID of secret (a secret CRN of instance), as the API's paths take
// it.
func secretID(op operation, instance, secret string) (string, *Error) {
	if !crn.SecretBelongsTo(secret, instance) {
		return "", notSent(op, secret, nil, "not a secret CRN of instance "+instance)
	}
	p, _ := crn.ParseSecret(secret)
	return strings.ToLower(p.SecretID), nil
}

// secretCRN is the ID of a secret as the engine sees it: the CRN the service reports,
// else the one its id makes in instance.
func secretCRN(instance string, v secretView) string {
	if v.CRN != "" {
		return v.CRN
	}
	p, err := crn.ParseSecretsManagerInstance(instance)
	if err != nil || !crn.IsSecretID(v.ID) {
		return ""
	}
	return p.Secret(v.ID).String()
}

// undecodable: a 2xx whose body could not be read (ibmapi.Error.Undecodable).
func undecodable(op operation, subject string, creates bool) *Error {
	return apiError(op, subject).Undecodable(0, creates)
}

// listSecrets lists every certificate secret of the instance (metadata only).
//
// Offset paging over a collection that changes can skip a secret, and a skipped source
// certificate would look deleted. So the listing is sorted by id (unique, immutable)
// and each page starts one secret early: that secret must be the last of the page
// before, else secrets were added or removed before it and the listing starts over.
func (c *Client) listSecrets(ctx context.Context, instance string) ([]secretView, error) {
	for attempt := 1; ; attempt++ {
		views, shifted, err := c.listOnce(ctx, instance)
		switch {
		case err != nil:
			return nil, err
		case !shifted:
			return views, nil
		case attempt == listAttempts:
			e := apiError(opList, instance)
			e.Retryable, e.Message = true, fmt.Sprintf("the instance's secrets changed while they were listed, %d times in a row", listAttempts)
			return nil, e
		}
	}
}

func (c *Client) listOnce(ctx context.Context, instance string) (out []secretView, shifted bool, err error) {
	offset := 0
	for {
		page, err := c.listPage(ctx, instance, offset, PageSize)
		if err != nil {
			return nil, false, err
		}
		items := page.Secrets
		if offset > 0 {
			if len(items) == 0 {
				return nil, true, nil
			}
			first, err := viewOf(items[0])
			if err != nil {
				return nil, false, undecodable(opList, instance, false)
			}
			if first.ID != out[len(out)-1].ID {
				return nil, true, nil
			}
			items = items[1:]
		}
		for _, it := range items {
			v, err := viewOf(it)
			if err != nil {
				return nil, false, undecodable(opList, instance, false)
			}
			out = append(out, v)
		}
		if len(page.Secrets) < PageSize || len(out) == 0 {
			return out, false, nil
		}
		offset += len(page.Secrets) - 1
		if offset > maxOffset {
			e := apiError(opList, instance)
			e.Message = fmt.Sprintf("more secrets than an offset of %d reaches", maxOffset)
			return nil, false, e
		}
	}
}

func (c *Client) listPage(ctx context.Context, instance string, offset, limit int) (*sm.SecretMetadataPaginatedCollection, error) {
	var page *sm.SecretMetadataPaginatedCollection
	err := c.do(ctx, opList, instance, instance, func(ctx context.Context, svc *sm.SecretsManagerV2) (*core.DetailedResponse, error) {
		opts := &sm.ListSecretsOptions{
			Offset: core.Int64Ptr(int64(offset)), Limit: core.Int64Ptr(int64(limit)),
			Sort: core.StringPtr("id"), SecretTypes: certificateTypes,
		}
		var resp *core.DetailedResponse
		var err error
		page, resp, err = svc.ListSecretsWithContext(ctx, opts)
		return resp, err
	})
	if err != nil {
		return nil, err
	}
	if page == nil {
		return nil, undecodable(opList, instance, false)
	}
	return page, nil
}

// getMetadata reads a secret's metadata (no payload, no downloaded flag).
func (c *Client) getMetadata(ctx context.Context, instance, secret string) (secretView, error) {
	id, e := secretID(opMetadata, instance, secret)
	if e != nil {
		return secretView{}, e
	}
	var model sm.SecretMetadataIntf
	err := c.do(ctx, opMetadata, instance, secret, func(ctx context.Context, svc *sm.SecretsManagerV2) (*core.DetailedResponse, error) {
		var resp *core.DetailedResponse
		var err error
		model, resp, err = svc.GetSecretMetadataWithContext(ctx, &sm.GetSecretMetadataOptions{ID: &id})
		return resp, err
	})
	if err != nil {
		return secretView{}, err
	}
	return decoded(opMetadata, secret, model, false)
}

// getSecret reads a secret with its payload. The service then sets the current
// version's downloaded flag.
func (c *Client) getSecret(ctx context.Context, instance, secret string) (secretView, error) {
	id, e := secretID(opDownload, instance, secret)
	if e != nil {
		return secretView{}, e
	}
	var model sm.SecretIntf
	err := c.do(ctx, opDownload, instance, secret, func(ctx context.Context, svc *sm.SecretsManagerV2) (*core.DetailedResponse, error) {
		var resp *core.DetailedResponse
		var err error
		model, resp, err = svc.GetSecretWithContext(ctx, &sm.GetSecretOptions{ID: &id})
		return resp, err
	})
	if err != nil {
		return secretView{}, err
	}
	return decoded(opDownload, secret, model, false)
}

// createSecret creates an imported certificate.
func (c *Client) createSecret(ctx context.Context, instance string, proto *sm.ImportedCertificatePrototype) (secretView, error) {
	var model sm.SecretIntf
	err := c.do(ctx, opImport, instance, instance, func(ctx context.Context, svc *sm.SecretsManagerV2) (*core.DetailedResponse, error) {
		var resp *core.DetailedResponse
		var err error
		model, resp, err = svc.CreateSecretWithContext(ctx, &sm.CreateSecretOptions{SecretPrototype: proto})
		return resp, err
	})
	if err != nil {
		return secretView{}, err
	}
	return decoded(opImport, instance, model, true)
}

// createVersion adds a version to an imported certificate; the answer is the version.
func (c *Client) createVersion(ctx context.Context, instance, secret string, proto *sm.ImportedCertificateVersionPrototype) (secretView, error) {
	id, e := secretID(opReimport, instance, secret)
	if e != nil {
		return secretView{}, e
	}
	var model sm.SecretVersionIntf
	err := c.do(ctx, opReimport, instance, secret, func(ctx context.Context, svc *sm.SecretsManagerV2) (*core.DetailedResponse, error) {
		var resp *core.DetailedResponse
		var err error
		model, resp, err = svc.CreateSecretVersionWithContext(ctx, &sm.CreateSecretVersionOptions{SecretID: &id, SecretVersionPrototype: proto})
		return resp, err
	})
	if err != nil {
		return secretView{}, err
	}
	return decoded(opReimport, secret, model, true)
}

// patchMetadata sends a JSON merge patch of the secret's metadata.
func (c *Client) patchMetadata(ctx context.Context, instance, secret string, patch map[string]any) error {
	id, e := secretID(opUpdate, instance, secret)
	if e != nil {
		return e
	}
	return c.do(ctx, opUpdate, instance, secret, func(ctx context.Context, svc *sm.SecretsManagerV2) (*core.DetailedResponse, error) {
		_, resp, err := svc.UpdateSecretMetadataWithContext(ctx, &sm.UpdateSecretMetadataOptions{ID: &id, SecretMetadataPatch: patch})
		return resp, err
	})
}

// deleteSecret deletes a secret and its versions.
func (c *Client) deleteSecret(ctx context.Context, instance, secret string) error {
	id, e := secretID(opDelete, instance, secret)
	if e != nil {
		return e
	}
	return c.do(ctx, opDelete, instance, secret, func(ctx context.Context, svc *sm.SecretsManagerV2) (*core.DetailedResponse, error) {
		return svc.DeleteSecretWithContext(ctx, &sm.DeleteSecretOptions{ID: &id})
	})
}

// groupID is the id of the configured secret group in the instance: "default" for the
// default group (which is not listed), else looked up by name once and remembered.
// A group that does not exist is an error wrapping ErrNoSecretGroup, before any write.
func (c *Client) groupID(ctx context.Context, instance string) (string, error) {
	name := c.cfg.SecretGroup
	if name == DefaultSecretGroup {
		return DefaultSecretGroup, nil
	}
	st, err := c.state(instance)
	if err != nil {
		return "", notSent(opGroups, instance, err, "")
	}
	st.groupMu.Lock()
	defer st.groupMu.Unlock()
	if st.groupID != "" {
		return st.groupID, nil
	}
	var groups *sm.SecretGroupCollection
	err = c.do(ctx, opGroups, instance, instance, func(ctx context.Context, svc *sm.SecretsManagerV2) (*core.DetailedResponse, error) {
		var resp *core.DetailedResponse
		var err error
		groups, resp, err = svc.ListSecretGroupsWithContext(ctx, &sm.ListSecretGroupsOptions{})
		return resp, err
	})
	if err != nil {
		return "", err
	}
	if groups == nil {
		return "", undecodable(opGroups, instance, false)
	}
	for _, g := range groups.SecretGroups {
		if g.Name != nil && *g.Name == name && g.ID != nil && *g.ID != "" {
			st.groupID = *g.ID
			return st.groupID, nil
		}
	}
	return "", notSent(opGroups, instance, safeerr.Own(fmt.Errorf("%w: the instance has no secret group named %q (secret_group); create it or configure another", ErrNoSecretGroup, name)), "")
}

// forgetGroup drops the remembered group id (after the service refused it: the group
// may have been deleted).
func (c *Client) forgetGroup(instance string) {
	if st, err := c.state(instance); err == nil {
		st.groupMu.Lock()
		st.groupID = ""
		st.groupMu.Unlock()
	}
}

// decoded reads an SDK model into a view; a nil model (an empty 2xx body) or one that
// does not re-encode is an undecodable answer.
func decoded(op operation, subject string, model any, creates bool) (secretView, error) {
	if model == nil {
		return secretView{}, undecodable(op, subject, creates)
	}
	v, err := viewOf(model)
	if err != nil {
		return secretView{}, undecodable(op, subject, creates)
	}
	return v, nil
}

// isBadRequest reports whether err is a 400 from the service.
func isBadRequest(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.StatusCode == http.StatusBadRequest
}
