package smsim

import (
	"cmp"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

const (
	defaultLimit = 200
	maxLimit     = 1000
	maxOffset    = 10_000_000
	maxGroupsQ   = 201
	minSearchLen = 2
	maxSearchLen = 128
)

var sortRE = regexp.MustCompile(`^-?(id|created_at|updated_at|expiration_date|secret_type|name)$`)

// listQueryParams is a validated list query.
type listQueryParams struct {
	offset, limit int
	sort          string
	search        string
	groups        []string
	types         []string
	labels        []string
	raw           url.Values // the parameters as given, for the page links
}

func parseListQuery(q url.Values) (listQueryParams, *apiError) {
	p := listQueryParams{limit: defaultLimit, raw: url.Values{}}
	if v, ok := q["offset"]; ok {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 0 || n > maxOffset {
			return p, badRequest("offset must be an integer from 0 to %d", maxOffset)
		}
		p.offset = n
	}
	if v, ok := q["limit"]; ok {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 1 || n > maxLimit {
			return p, badRequest("limit must be an integer from 1 to %d", maxLimit)
		}
		p.limit = n
	}
	if v, ok := q["sort"]; ok {
		if !sortRE.MatchString(v[0]) {
			return p, badRequest("sort must be one of id, created_at, updated_at, expiration_date, secret_type, name, optionally after -")
		}
		p.sort = v[0]
		p.raw.Set("sort", v[0])
	}
	if v, ok := q["search"]; ok {
		if n := textLen(v[0]); n < minSearchLen || n > maxSearchLen {
			return p, badRequest("search must be %d to %d characters long", minSearchLen, maxSearchLen)
		}
		p.search = v[0]
		p.raw.Set("search", v[0])
	}
	list := func(name string, max int, check func(string) bool, what string) ([]string, *apiError) {
		v, ok := q[name]
		if !ok {
			return nil, nil
		}
		items := strings.Split(v[0], ",")
		if len(items) > max {
			return nil, badRequest("%s may list at most %d items", name, max)
		}
		for _, it := range items {
			if !check(it) {
				return nil, badRequest("%s must be a comma-separated list of %s", name, what)
			}
		}
		p.raw.Set(name, v[0])
		return items, nil
	}
	var e *apiError
	if p.groups, e = list("groups", maxGroupsQ, func(g string) bool { return g == defaultGroup || uuidRE.MatchString(g) },
		"secret group ids or default"); e != nil {
		return p, e
	}
	if p.types, e = list("secret_types", len(secretTypes), func(t string) bool { return slices.Contains(secretTypes, t) },
		"secret types"); e != nil {
		return p, e
	}
	if p.labels, e = list("match_all_labels", maxLabels, func(l string) bool { return l != "" },
		"labels"); e != nil {
		return p, e
	}
	return p, nil
}

func (p listQueryParams) matches(sec *secret) bool {
	if len(p.groups) > 0 && !slices.Contains(p.groups, sec.groupID) {
		return false
	}
	if len(p.types) > 0 && !slices.Contains(p.types, sec.typ) {
		return false
	}
	for _, l := range p.labels {
		if !slices.Contains(sec.labels, l) {
			return false
		}
	}
	if p.search != "" {
		hit := strings.Contains(sec.id, p.search) || strings.Contains(sec.name, p.search) ||
			strings.Contains(sec.description, p.search) || strings.Contains(sec.typ, p.search)
		for _, l := range sec.labels {
			hit = hit || strings.Contains(l, p.search)
		}
		if !hit {
			return false
		}
	}
	return true
}

// compareBy orders secrets by a sort field; the id breaks ties. Secrets without an
// expiration date sort after those with one.
func compareBy(field string) func(a, b *secret) int {
	desc := strings.HasPrefix(field, "-")
	field = strings.TrimPrefix(field, "-")
	key := func(a, b *secret) int {
		switch field {
		case "created_at":
			return a.createdAt.Compare(b.createdAt)
		case "updated_at":
			return a.updatedAt.Compare(b.updatedAt)
		case "expiration_date":
			ca, cb := a.current(), b.current()
			switch {
			case ca == nil && cb == nil:
				return 0
			case ca == nil:
				return 1
			case cb == nil:
				return -1
			}
			return ca.info.notAfter.Compare(cb.info.notAfter)
		case "secret_type":
			return strings.Compare(a.typ, b.typ)
		case "name":
			return strings.Compare(a.name, b.name)
		}
		return 0
	}
	return func(a, b *secret) int {
		c := cmp.Or(key(a, b), strings.Compare(a.id, b.id))
		if desc {
			return -c
		}
		return c
	}
}

type pageLink struct {
	Href string `json:"href"`
}

type secretPageJSON struct {
	TotalCount int          `json:"total_count"`
	Limit      int          `json:"limit"`
	Offset     int          `json:"offset"`
	First      pageLink     `json:"first"`
	Next       *pageLink    `json:"next,omitempty"`
	Previous   *pageLink    `json:"previous,omitempty"`
	Last       pageLink     `json:"last"`
	Secrets    []secretJSON `json:"secrets"`
}

// handleList is GET /api/v2/secrets: metadata only, offset paging.
func (s *Simulator) handleList(r *http.Request, rt *route, _ string) response {
	p, e := parseListQuery(r.URL.Query())
	if e != nil {
		return e.response()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var hits []*secret
	for _, sec := range rt.inst.secrets {
		if p.matches(sec) {
			hits = append(hits, sec)
		}
	}
	slices.SortFunc(hits, compareBy(cmp.Or(p.sort, "id")))
	total := len(hits)
	page := hits[min(p.offset, total):min(p.offset+p.limit, total)]
	out := secretPageJSON{TotalCount: total, Limit: p.limit, Offset: p.offset, Secrets: []secretJSON{}}
	for _, sec := range page {
		out.Secrets = append(out.Secrets, rt.inst.renderSecret(sec, false))
	}
	base := "http://" + r.Host + rt.inst.crn.pathPrefix() + "/api/v2/secrets"
	link := func(offset int) pageLink {
		v := url.Values{}
		for k, vs := range p.raw {
			v[k] = vs
		}
		v.Set("limit", strconv.Itoa(p.limit))
		if offset > 0 {
			v.Set("offset", strconv.Itoa(offset))
		}
		return pageLink{Href: base + "?" + v.Encode()}
	}
	out.First = link(0)
	lastOffset := 0
	if total > 0 {
		lastOffset = (total - 1) / p.limit * p.limit
	}
	out.Last = link(lastOffset)
	if p.offset+p.limit < total {
		n := link(p.offset + p.limit)
		out.Next = &n
	}
	if p.offset > 0 {
		prev := link(max(0, p.offset-p.limit))
		out.Previous = &prev
	}
	return jsonResponse(http.StatusOK, out)
}
