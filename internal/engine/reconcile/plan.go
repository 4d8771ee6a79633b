package reconcile

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/certbackup/certbackup/internal/crn"
	"github.com/certbackup/certbackup/internal/engine/match"
	"github.com/certbackup/certbackup/internal/engine/replicate"
	"github.com/certbackup/certbackup/internal/provider/cms"
)

// listing is one backup's certificates, or why they could not be listed.
type listing struct {
	certs []cms.Certificate
	err   error
}

func plan(ctx context.Context, source replicate.Source, targets []replicate.Target, opts Options) (*PlanResult, error) {
	srcInstance := source.InstanceCRN()
	// The source is listed at the same time as the backups: a listing is a sequence of
	// pages, and the instances are in different regions.
	var listed []cms.Certificate
	var err error
	var wg sync.WaitGroup
	wg.Go(func() { listed, err = source.List(ctx) })
	listings := listAll(ctx, targets, opts.Concurrency)
	wg.Wait()
	if err != nil {
		return nil, fmt.Errorf("list the source instance %s: %w", srcInstance, err)
	}
	sources := uniqueSorted(listed)
	present := make(map[string]bool, len(sources))
	for _, s := range sources {
		present[s.ID] = true
	}

	p := &PlanResult{SourceInstanceCRN: srcInstance, SourceCertificates: len(sources), Counts: map[Action]int{}}
	indexes := make([]*match.Index, len(targets))
	for i, t := range targets {
		bl := BackupListing{InstanceCRN: t.InstanceCRN(), Region: regionOf(t.InstanceCRN())}
		if l := listings[i]; l.err != nil {
			bl.Error = fmt.Sprintf("list the backup instance: %v", l.err)
			bl.ErrorClass = classOf(l.err)
		} else {
			bl.Certificates = len(l.certs)
			ix := match.NewIndex(l.certs)
			indexes[i] = &ix
		}
		p.Backups = append(p.Backups, bl)
	}

	for _, s := range sources {
		for i, t := range targets {
			if indexes[i] == nil {
				continue
			}
			p.Steps = append(p.Steps, stepFor(s, i, t.InstanceCRN(), indexes[i].Lookup(s.ID, s.Name)))
		}
	}
	for i, t := range targets {
		if indexes[i] == nil {
			continue
		}
		for _, src := range slices.Sorted(maps.Keys(indexes[i].BySource)) {
			// Only copies of this source instance can be orphans of it: a backup may also
			// hold copies of other sources, and those are none of this run's business.
			if present[src] || !crn.CertificateBelongsTo(src, srcInstance) {
				continue
			}
			p.Steps = append(p.Steps, orphanStep(src, i, t.InstanceCRN(), indexes[i].BySource[src], opts.Prune))
		}
	}
	for _, s := range p.Steps {
		p.Counts[s.Action]++
	}
	return p, nil
}

// uniqueSorted sorts the source listing by name then CRN (a stable, readable order for
// the report) and drops repeated CRNs, which a paging anomaly could produce and which
// would otherwise plan two writes (and two reimports) of the same copy.
func uniqueSorted(listed []cms.Certificate) []cms.Certificate {
	seen := make(map[string]bool, len(listed))
	out := make([]cms.Certificate, 0, len(listed))
	for _, c := range listed {
		if !seen[c.ID] {
			seen[c.ID] = true
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b cms.Certificate) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.ID, b.ID))
	})
	return out
}

// listAll lists the backups at once (at most limit at a time): each is in another
// region, and the plan needs them all.
func listAll(ctx context.Context, targets []replicate.Target, limit int) []listing {
	out := make([]listing, len(targets))
	sem := make(chan struct{}, max(limit, 1))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			certs, err := t.List(ctx)
			out[i] = listing{certs: certs, err: err}
		})
	}
	wg.Wait()
	return out
}

func stepFor(s cms.Certificate, target int, backup string, f match.Found) Step {
	st := Step{
		SourceCRN: s.ID, Name: s.Name, Backup: backup,
		Conflicts: ids(f.Conflicts), Duplicates: ids(f.Extra),
		target: target, src: s, found: f,
	}
	if f.Copy != nil {
		st.CopyCRN = f.Copy.ID
	}
	switch {
	case s.SerialNumber == "" && s.ExpiresOn == 0:
		// An ordered certificate still pending has no material to copy; its issuance
		// sends a notification, and the next run copies it anyway.
		st.Action, st.Reason = ActionSkip, fmt.Sprintf("the source certificate has no issued certificate yet (status %q)", s.Status)
	case s.Status == "expired" && (f.Copy == nil || !match.SameCertificate(s, *f.Copy)):
		// Certificate Manager refuses to download (and to import) an expired
		// certificate: trying would fail on every run and hide real failures.
		st.Action, st.Reason = ActionSkip, "the source certificate has expired; Certificate Manager does not let it be downloaded or imported"
	case f.Copy == nil:
		st.Action, st.Reason = ActionImport, "no copy in the backup"
	case !match.SameCertificate(s, *f.Copy):
		st.Action, st.Reason = ActionReimport, "the copy holds another certificate ("+certDiff(s, *f.Copy)+")"
	case !match.SameLabels(s, *f.Copy):
		st.Action, st.Reason = ActionUpdate, labelDiff(s, *f.Copy)
	case len(f.Extra) > 0:
		st.Action, st.Reason = ActionRemoveDuplicates, fmt.Sprintf("%d further copies of the same source", len(f.Extra))
	default:
		st.Action = ActionNone
	}
	return st
}

func orphanStep(src string, target int, backup string, copies []cms.Certificate, prune bool) Step {
	st := Step{
		SourceCRN: src, Name: copies[0].Name, Backup: backup, CopyCRN: copies[0].ID,
		Duplicates: ids(copies[1:]), target: target,
	}
	if prune {
		st.Action, st.Reason = ActionDeleteOrphan, "the source certificate no longer exists"
	} else {
		st.Action, st.Reason = ActionKeepOrphan, "the source certificate no longer exists; kept because prune is off"
	}
	return st
}

func certDiff(s, c cms.Certificate) string {
	var d []string
	if s.SerialNumber != c.SerialNumber {
		d = append(d, "serial number")
	}
	if s.Issuer != c.Issuer {
		d = append(d, "issuer")
	}
	if s.BeginsOn != c.BeginsOn || s.ExpiresOn != c.ExpiresOn {
		d = append(d, "validity")
	}
	if !slices.Equal(s.Domains, c.Domains) {
		d = append(d, "domains")
	}
	return strings.Join(d, ", ") + " differ"
}

func labelDiff(s, c cms.Certificate) string {
	want := match.CopyDescription(s.Description, s.ID)
	switch {
	case s.Name != c.Name && want != c.Description:
		return "the name and the description differ"
	case s.Name != c.Name:
		return "the name differs"
	default:
		return "the description differs"
	}
}

func ids(cs []cms.Certificate) []string {
	if len(cs) == 0 {
		return nil
	}
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

func regionOf(instance string) string {
	c, err := crn.Parse(instance)
	if err != nil {
		return ""
	}
	return c.Region
}
