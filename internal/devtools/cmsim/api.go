package cmsim

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/certbackup/certbackup/internal/crn"
	"github.com/certbackup/certbackup/internal/devtools/simrate"
	"github.com/certbackup/certbackup/internal/devtools/testpki"
)

const (
	maxBody         = 1 << 20
	defaultPageSize = 100
	maxPageSize     = 200
)

// decodeJSON reads a JSON request body strictly (package doc, choice 4).
func decodeJSON(r *http.Request, v any) *apiError {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return errorf(http.StatusUnsupportedMediaType, codeUnsupportedMedia, "Content-Type must be application/json")
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return errorf(http.StatusBadRequest, codeBadRequest, "the request body could not be read")
	}
	if len(b) > maxBody {
		return errorf(http.StatusRequestEntityTooLarge, codeTooLarge, "the request body is larger than %d bytes", maxBody)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		// The unknown-field message names the field only, never a value.
		if msg := err.Error(); strings.HasPrefix(msg, "json: unknown field ") {
			return errorf(http.StatusBadRequest, codeBadRequest, "%s", strings.TrimPrefix(msg, "json: "))
		}
		return errorf(http.StatusBadRequest, codeBadRequest, "the request body is not valid JSON for this operation")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errorf(http.StatusBadRequest, codeBadRequest, "the request body has data after the JSON value")
	}
	return nil
}

// ---- list ----

// ListResponse is the body of GET /api/v3/{instance}/certificates.
type ListResponse struct {
	Certificates     []Metadata   `json:"certificates"`
	NextPageInfo     NextPageInfo `json:"nextPageInfo"`
	TotalScannedDocs int          `json:"totalScannedDocs"`
}

// NextPageInfo is the list cursor; both fields are "" on the last page.
type NextPageInfo struct {
	StartWithDocID        string `json:"startWithDocId"`
	StartWithOrderByValue string `json:"startWithOrderByValue"`
}

// parseQuery splits a raw query itself so that empty pairs ("&&", as bluemix-go sends)
// are skipped; a repeated parameter is refused rather than guessed at.
func parseQuery(raw string) (map[string]string, *apiError) {
	out := map[string]string{}
	for _, pair := range strings.Split(raw, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k, err1 := url.QueryUnescape(k)
		v, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			return nil, errorf(http.StatusBadRequest, codeBadRequest, "malformed escape in the query")
		}
		if _, dup := out[k]; dup {
			return nil, errorf(http.StatusBadRequest, codeBadRequest, "query parameter %s is repeated", k)
		}
		out[k] = v
	}
	return out, nil
}

// listKey is what the listing sorts: the order fields of one certificate, read under
// the lock, and the certificate itself, whose metadata is built only if it is on the
// page.
type listKey struct {
	exp  int64 // expires_on
	name string
	id   string
	c    *certificate
}

type listOrder struct {
	byName bool                           // order by name; otherwise by expires_on
	value  func(m *Metadata) string       // the cursor value of the last entry of a page
	parse  func(v string) (listKey, bool) // cursor value back into a comparable key
}

var listOrders = map[string]listOrder{
	"expires_on": {
		value: func(m *Metadata) string {
			return strconv.FormatInt(m.ExpiresOn, 10)
		},
		parse: func(v string) (listKey, bool) {
			n, err := strconv.ParseInt(v, 10, 64)
			return listKey{exp: n}, err == nil
		},
	},
	"name": {
		byName: true,
		value:  func(m *Metadata) string { return m.Name },
		parse:  func(v string) (listKey, bool) { return listKey{name: v}, true },
	},
}

// compare orders two keys on the order field, then on the id (the order is total).
// It takes the keys by value and compares their fields directly, so that sorting
// allocates nothing.
func (o listOrder) compare(a, b listKey) int {
	var c int
	if o.byName {
		c = strings.Compare(a.name, b.name)
	} else {
		c = cmp.Compare(a.exp, b.exp)
	}
	if c != 0 {
		return c
	}
	return strings.Compare(a.id, b.id)
}

func (s *Simulator) handleList(r *http.Request, rt *route) response {
	q, aerr := parseQuery(r.URL.RawQuery)
	if aerr != nil {
		return aerr.response()
	}
	pageSize := defaultPageSize
	if v, ok := q["page_size"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageSize {
			return errorf(http.StatusBadRequest, codeBadRequest, "page_size must be an integer from 1 to %d", maxPageSize).response()
		}
		pageSize = n
	}
	orderName := "expires_on"
	if v, ok := q["order"]; ok {
		orderName = v
	}
	order, ok := listOrders[orderName]
	if !ok {
		return errorf(http.StatusBadRequest, codeBadRequest, "order must be expires_on or name").response()
	}
	docID, hasDoc := q["start_from_document_id"]
	orderValue, hasValue := q["start_from_orderby_value"]
	var after *listKey
	if hasDoc || hasValue {
		if !hasDoc || !hasValue || docID == "" || orderValue == "" {
			return errorf(http.StatusBadRequest, codeBadRequest, "start_from_document_id and start_from_orderby_value must be given together and not empty").response()
		}
		if !crn.CertificateBelongsTo(docID, rt.instance) {
			return errorf(http.StatusBadRequest, codeBadRequest, "start_from_document_id is not a certificate of this instance").response()
		}
		k, ok := order.parse(orderValue)
		if !ok {
			return errorf(http.StatusBadRequest, codeBadRequest, "start_from_orderby_value does not fit order %s", orderName).response()
		}
		k.id = docID
		after = &k
	}

	// Only what the page needs: a small key per certificate after the cursor, sorted,
	// and the metadata of the first pageSize of them, built under the lock like the
	// keys, so that the page is one consistent view.
	s.mu.Lock()
	inst, aerr := s.instanceLocked(rt.region, rt.instance)
	if aerr != nil {
		s.mu.Unlock()
		return aerr.response()
	}
	keys := make([]listKey, 0, len(inst.certs))
	for _, c := range inst.certs {
		k := listKey{exp: c.current().meta.ExpiresOn, name: c.name, id: c.id, c: c}
		if after != nil && order.compare(k, *after) <= 0 {
			continue
		}
		keys = append(keys, k)
	}
	slices.SortFunc(keys, order.compare)
	keys = keys[:min(pageSize, len(keys))]
	now := s.now()
	page := make([]Metadata, len(keys))
	for i, k := range keys {
		page[i] = k.c.metadata(now)
	}
	s.mu.Unlock()

	next := NextPageInfo{}
	if len(page) == pageSize {
		last := &page[len(page)-1]
		next = NextPageInfo{StartWithDocID: last.ID, StartWithOrderByValue: order.value(last)}
	}
	return jsonResponse(http.StatusOK, ListResponse{Certificates: page, NextPageInfo: next, TotalScannedDocs: len(page)})
}

// ---- single certificate ----

// CertificateWithData is the body of the download call: metadata, data and the id of
// the data key (package doc, choice 21).
type CertificateWithData struct {
	Metadata
	Data      Data   `json:"data"`
	DataKeyID string `json:"data_key_id"`
}

func (s *Simulator) handleDownload(_ *http.Request, rt *route) response {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, c, aerr := s.certLocked(rt.region, rt.cert)
	if aerr != nil {
		return aerr.response()
	}
	m := c.metadata(s.now())
	if m.Status == "expired" {
		return errorf(http.StatusBadRequest, codeExpired, "an expired certificate cannot be downloaded").response()
	}
	v := c.current()
	return jsonResponse(http.StatusOK, CertificateWithData{Metadata: m, Data: v.data, DataKeyID: v.dataKeyID})
}

func (s *Simulator) handleMetadata(_ *http.Request, rt *route) response {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, c, aerr := s.certLocked(rt.region, rt.cert)
	if aerr != nil {
		return aerr.response()
	}
	return jsonResponse(http.StatusOK, c.metadata(s.now()))
}

type importRequest struct {
	Name        *string `json:"name"`
	Description *string `json:"description"`
	Data        *Data   `json:"data"`
}

func (s *Simulator) handleImport(r *http.Request, rt *route) response {
	var req importRequest
	if aerr := decodeJSON(r, &req); aerr != nil {
		return aerr.response()
	}
	if aerr := checkName(req.Name); aerr != nil {
		return aerr.response()
	}
	desc := deref(req.Description)
	if aerr := checkDescription(desc); aerr != nil {
		return aerr.response()
	}
	if req.Data == nil {
		return errorf(http.StatusBadRequest, codeInvalidCertificate, "data is required").response()
	}
	v, aerr := checkMaterial(*req.Data, s.now(), true)
	if aerr != nil {
		return aerr.response()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	inst, aerr := s.instanceLocked(rt.region, rt.instance)
	if aerr != nil {
		return aerr.response()
	}
	c, aerr := s.addLocked(inst, *req.Name, desc, v, true)
	if aerr != nil {
		return aerr.response()
	}
	return jsonResponse(http.StatusOK, c.metadata(s.now()))
}

func (s *Simulator) handleReimport(r *http.Request, rt *route) response {
	var d Data
	bodyErr := decodeJSON(r, &d)
	s.mu.Lock()
	inst, c, aerr := s.certLocked(rt.region, rt.cert)
	if aerr == nil {
		aerr = perMinute(&c.reimports, s.now(), perCertPerMinute, "at most 5 reimports per minute for the same certificate")
	}
	if aerr == nil {
		aerr = bodyErr
	}
	if aerr == nil {
		aerr = s.reimportLocked(c, d)
	}
	if aerr != nil {
		s.mu.Unlock()
		return aerr.response()
	}
	return s.answerAndNotifyLocked(inst, c, EventCertReimported)
}

type updateRequest struct {
	Name        *string `json:"name"`
	Description *string `json:"description"`
}

func (s *Simulator) handleUpdate(r *http.Request, rt *route) response {
	var req updateRequest
	bodyErr := decodeJSON(r, &req)
	s.mu.Lock()
	defer s.mu.Unlock()
	_, c, aerr := s.certLocked(rt.region, rt.cert)
	if aerr == nil {
		aerr = perMinute(&c.updates, s.now(), perCertPerMinute, "at most 5 updates per minute for the same certificate")
	}
	if aerr == nil {
		aerr = bodyErr
	}
	if aerr == nil {
		aerr = checkName(req.Name)
	}
	if aerr == nil {
		aerr = checkDescription(deref(req.Description))
	}
	if aerr != nil {
		return aerr.response()
	}
	c.name, c.description, c.lastModified = *req.Name, deref(req.Description), s.now()
	return emptyResponse(http.StatusOK)
}

func (s *Simulator) handleDelete(_ *http.Request, rt *route) response {
	s.mu.Lock()
	defer s.mu.Unlock()
	inst, _, aerr := s.certLocked(rt.region, rt.cert)
	if aerr != nil {
		return aerr.response()
	}
	delete(inst.certs, rt.cert)
	return emptyResponse(http.StatusOK)
}

// ---- order and renew ----

type orderRequest struct {
	Name                   *string  `json:"name"`
	Description            *string  `json:"description"`
	Domains                []string `json:"domains"`
	DomainValidationMethod string   `json:"domain_validation_method"`
	DNSProviderInstanceCRN string   `json:"dns_provider_instance_crn"`
	Issuer                 string   `json:"issuer"`
	Algorithm              string   `json:"algorithm"`
	KeyAlgorithm           string   `json:"key_algorithm"`
	AutoRenewEnabled       bool     `json:"auto_renew_enabled"`
}

var domainRE = regexp.MustCompile(`^(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$`)

// The key_algorithm values an order may ask for, "" being the documented default, and
// the key each one gets (docs/services/certificate-manager.md §2.4).
var orderKeyAlgorithms = map[string]testpki.KeyType{
	"":                       testpki.RSA2048,
	"rsaEncryption 2048 bit": testpki.RSA2048,
	"rsaEncryption 4096 bit": testpki.RSA4096,
}

// orderAlgorithm is the only signature algorithm an order may ask for, and the default.
const orderAlgorithm = "sha256WithRSAEncryption"

func (o *orderRequest) check() (orderOptions, *apiError) {
	if aerr := checkName(o.Name); aerr != nil {
		return orderOptions{}, aerr
	}
	if aerr := checkDescription(deref(o.Description)); aerr != nil {
		return orderOptions{}, aerr
	}
	if len(o.Domains) == 0 {
		return orderOptions{}, errorf(http.StatusBadRequest, codeBadRequest, "domains is required")
	}
	for _, d := range o.Domains {
		if len(d) > 253 || !domainRE.MatchString(d) {
			return orderOptions{}, errorf(http.StatusBadRequest, codeBadRequest, "domains holds a value that is not a domain name")
		}
	}
	if o.DomainValidationMethod != "" && o.DomainValidationMethod != "dns-01" {
		return orderOptions{}, errorf(http.StatusBadRequest, codeBadRequest, "domain_validation_method must be dns-01")
	}
	key, ok := orderKeyAlgorithms[o.KeyAlgorithm]
	if !ok {
		return orderOptions{}, errorf(http.StatusBadRequest, codeBadRequest, "key_algorithm must be \"rsaEncryption 2048 bit\" or \"rsaEncryption 4096 bit\"")
	}
	if o.Algorithm != "" && o.Algorithm != orderAlgorithm {
		return orderOptions{}, errorf(http.StatusBadRequest, codeBadRequest, "algorithm must be %q", orderAlgorithm)
	}
	return orderOptions{
		name: *o.Name, description: deref(o.Description), domains: o.Domains, autoRenew: o.AutoRenewEnabled,
		key: keySpec{key: key, rsaIssuer: true},
	}, nil
}

func (s *Simulator) handleOrder(r *http.Request, rt *route) response {
	var req orderRequest
	bodyErr := decodeJSON(r, &req)
	s.mu.Lock()
	inst, aerr := s.instanceLocked(rt.region, rt.instance)
	if aerr == nil {
		aerr = perMinute(&inst.orders, s.now(), perInstPerMinute, "at most 5 orders per minute per instance")
	}
	s.mu.Unlock()
	if aerr == nil {
		aerr = bodyErr
	}
	if aerr != nil {
		return aerr.response()
	}
	opts, aerr := req.check()
	if aerr != nil {
		return aerr.response()
	}
	v, err := s.issue(opts.domains, opts.key)
	if err != nil {
		return response{status: http.StatusInternalServerError, header: http.Header{}}
	}
	s.mu.Lock()
	c, aerr := s.orderLocked(inst, opts, v)
	if aerr != nil {
		s.mu.Unlock()
		return aerr.response()
	}
	return s.answerAndNotifyLocked(inst, c, EventCertIssued)
}

type renewRequest struct {
	RotateKeys bool `json:"rotate_keys"`
}

func (s *Simulator) handleRenew(r *http.Request, rt *route) response {
	var req renewRequest
	bodyErr := decodeJSON(r, &req)
	s.mu.Lock()
	inst, c, aerr := s.certLocked(rt.region, rt.cert)
	if aerr == nil && c.imported {
		aerr = errorf(http.StatusBadRequest, codeNotOrdered, "an imported certificate cannot be renewed; reimport it instead")
	}
	if aerr == nil {
		aerr = perMinute(&inst.renews, s.now(), perInstPerMinute, "at most 5 renewals per minute per instance")
	}
	if aerr == nil {
		aerr = bodyErr
	}
	if aerr != nil {
		s.mu.Unlock()
		return aerr.response()
	}
	domains, key := slices.Clone(c.current().meta.Domains), c.key
	s.mu.Unlock()

	// The renewal has the order's kind of key and issuer. rotate_keys=false cannot keep
	// the key: testpki always mints a new one.
	v, err := s.issue(domains, key)
	if err != nil {
		return response{status: http.StatusInternalServerError, header: http.Header{}}
	}
	s.mu.Lock()
	inst, c, aerr = s.certLocked(rt.region, rt.cert)
	if aerr == nil {
		aerr = s.renewLocked(c, v)
	}
	if aerr != nil {
		s.mu.Unlock()
		return aerr.response()
	}
	return s.answerAndNotifyLocked(inst, c, EventCertRenewed)
}

// orderPolicyRequest is the body of PUT /api/v1/certificate/{cert}/order/policy. The
// value is kept raw so that an absent one (false) and null (refused) differ (package
// doc, choice 20).
type orderPolicyRequest struct {
	AutoRenewEnabled json.RawMessage `json:"auto_renew_enabled"`
}

func (o orderPolicyRequest) enabled() (bool, *apiError) {
	if len(o.AutoRenewEnabled) == 0 {
		return false, nil
	}
	var on bool
	if string(o.AutoRenewEnabled) == "null" || json.Unmarshal(o.AutoRenewEnabled, &on) != nil {
		return false, errorf(http.StatusBadRequest, codeBadRequest, "auto_renew_enabled must be true or false")
	}
	return on, nil
}

func (s *Simulator) handleOrderPolicy(r *http.Request, rt *route) response {
	var req orderPolicyRequest
	bodyErr := decodeJSON(r, &req)
	s.mu.Lock()
	defer s.mu.Unlock()
	_, c, aerr := s.certLocked(rt.region, rt.cert)
	if aerr == nil {
		aerr = perMinute(&c.policyUpdates, s.now(), perCertPerMinute, "at most 5 order policy updates per minute for the same certificate")
	}
	if aerr == nil {
		aerr = bodyErr
	}
	var on bool
	if aerr == nil {
		on, aerr = req.enabled()
	}
	if aerr == nil {
		aerr = c.setAutoRenew(on)
	}
	if aerr != nil {
		return aerr.response()
	}
	return jsonResponse(http.StatusOK, *c.policy)
}

// perMinute counts an event in w and refuses it (429, with what) when n already
// happened in the minute before now.
func perMinute(w *simrate.Window, now time.Time, n int, what string) *apiError {
	if ok, wait := w.Allow(now, n, time.Minute); !ok {
		return rateLimited(wait, what)
	}
	return nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// answerAndNotifyLocked ends a lifecycle change made under s.mu: it takes the
// certificate's metadata for the answer, prepares the event for the instance's
// channels, releases the lock and delivers (synchronously, as the triggering call
// returns only after its notifications went out).
func (s *Simulator) answerAndNotifyLocked(inst *instance, c *certificate, event string) response {
	m := c.metadata(s.now())
	pending := s.prepareEventLocked(inst, event, []*certificate{c}, "")
	s.mu.Unlock()
	s.deliver(pending)
	return jsonResponse(http.StatusOK, m)
}
