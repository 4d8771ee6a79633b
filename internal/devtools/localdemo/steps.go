package localdemo

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/certbackup/certbackup/internal/devtools/simiam"
	"github.com/certbackup/certbackup/internal/devtools/testpki"
	"github.com/certbackup/certbackup/internal/engine"
	"github.com/certbackup/certbackup/internal/engine/match"
	"github.com/certbackup/certbackup/internal/engine/reconcile"
	"github.com/certbackup/certbackup/internal/engine/replicate"
	"github.com/certbackup/certbackup/internal/provider/cms"
)

// ---- 6. what the reconcile adds ----

func (d *demo) stepReconcile(ctx context.Context) error {
	// The engine the reconcile action builds, with the action's key: the hourly alarm
	// runs exactly this against the same instances.
	client, err := cms.New(cms.Config{APIKey: d.opts.APIKey, IAMURL: d.iamURL, Endpoints: d.endpoints})
	if err != nil {
		return fmt.Errorf("Certificate Manager client: %w", err)
	}
	d.engine = &replicate.Engine{
		Owner:   match.NewOwner(d.opts.OwnershipKey),
		Source:  cms.Instance{Client: client, CRN: d.source},
		Targets: []engine.Target{cms.Instance{Client: client, CRN: d.backup}},
	}

	d.printf("[6] reconcile      no event came for %s, so the backup lacks it until the hourly reconcile runs:\n", legacyName)
	before := reconcile.Verify(ctx, d.engine, reconcile.Options{})
	if !d.check(before.Error == "", "verify before the reconcile could not plan: %s", before.Error) {
		return nil
	}
	planned := plannedSteps(before)
	d.printf("      %-26s %s\n", "verify", matchText(before.Match, planned))
	d.check(!before.Match && slices.Equal(planned, []string{legacyName + " (" + string(reconcile.ActionImport) + ")"}),
		"verify before the reconcile: want exactly %s planned for import, got match=%t, planned %v", legacyName, before.Match, planned)

	rep := reconcile.Run(ctx, d.engine, reconcile.Options{})
	if !d.check(rep.Error == "", "the reconcile could not plan: %s", rep.Error) {
		return nil
	}
	var wrote []reconcile.Result
	unchanged := 0
	for _, r := range rep.Results {
		if r.Outcome == replicate.Unchanged {
			unchanged++
			continue
		}
		wrote = append(wrote, r)
	}
	for _, r := range wrote {
		d.printf("      %-26s %-17s -> %s: %s\n", "reconcile run", r.Name, regionOf(r.Backup), outcomeText(string(r.Outcome), r.Verified, r.ErrorClass))
	}
	d.printf("      %-26s %d certificate(s) already in place, left alone\n", "", unchanged)
	d.check(len(wrote) == 1 && wrote[0].Name == legacyName && wrote[0].Outcome == replicate.Imported && wrote[0].Verified,
		"the reconcile should have imported %s and nothing else (%d results written)", legacyName, len(wrote))
	d.check(rep.Match, "the reconcile's own report says the backup does not match")

	d.printf("      and from now on its changes come by notification:\n")
	again, err := d.sim.CA().Issue(testpki.Options{Domains: []string{legacyDomain}})
	if err != nil {
		return fmt.Errorf("issue the reimported certificate: %w", err)
	}
	return d.expectNotification(cmsim.EventCertReimported, legacyName, replicate.Reimported, func() error {
		if err := d.sim.Reimport(d.legacy, again.CertPEM, again.KeyPEM, again.Intermediate); err != nil {
			return fmt.Errorf("reimport: %w", err)
		}
		return nil
	})
}

// plannedSteps lists what a verify found left to do, as "name (action)".
func plannedSteps(rep *reconcile.Report) []string {
	var planned []string
	if rep.Plan != nil {
		for _, s := range rep.Plan.Steps {
			planned = append(planned, fmt.Sprintf("%s (%s)", s.Name, s.Action))
		}
	}
	return planned
}

func matchText(ok bool, planned []string) string {
	if ok {
		return "backup matches source"
	}
	return "backup does not match source: " + strings.Join(planned, ", ")
}

// ---- 7. the backup's final state ----

func (d *demo) stepState(ctx context.Context) error {
	d.printf("[7] backup         what %s holds, read from the simulator:\n", backupRegion)
	src := d.sim.Snapshot(d.source)
	copies := map[string]cmsim.StoredCertificate{}
	strangers := 0
	for _, c := range d.sim.Snapshot(d.backup) {
		if s, ok := cms.SourceOf(c.Description); ok {
			copies[s] = c
		} else {
			strangers++
		}
	}
	slices.SortFunc(src, func(a, b cmsim.StoredCertificate) int { return strings.Compare(a.Name, b.Name) })

	var missing, different []string
	tw := tabwriter.NewWriter(d.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "      NAME\tDOMAINS\tSERIAL\tEXPIRES\tSOURCE\tCOPY\tSAME FINGERPRINT")
	for _, s := range src {
		c, ok := copies[s.ID]
		copyID, same := "-", false
		if ok {
			copyID = shortID(c.ID)
			fs, errS := leafFingerprint(s.Data.Content)
			fc, errC := leafFingerprint(c.Data.Content)
			same = errS == nil && errC == nil && fs == fc
		}
		fmt.Fprintf(tw, "      %s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, strings.Join(s.Domains, ","), shortSerial(s.SerialNumber),
			time.UnixMilli(s.ExpiresOn).UTC().Format(time.DateOnly), shortID(s.ID), copyID, yesNo(same))
		switch {
		case !ok:
			missing = append(missing, s.Name)
		case !same:
			different = append(different, s.Name)
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("print the table: %w", err)
	}
	// Checked after the table, so that the failures print below it.
	for _, name := range missing {
		d.check(false, "%s has no copy in the backup", name)
	}
	for _, name := range different {
		d.check(false, "the copy of %s holds another certificate", name)
	}
	d.check(len(copies) == len(src) && strangers == 0,
		"the backup holds %d copies and %d other certificates for %d source certificates", len(copies), strangers, len(src))

	rep := reconcile.Verify(ctx, d.engine, reconcile.Options{})
	d.printf("      %-26s %s (%d source certificates)\n", "verify", matchText(rep.Match, plannedSteps(rep)), rep.SourceCertificates)
	d.check(rep.Error == "" && rep.Match, "the final verify says the backup does not match the source")
	return nil
}

// leafFingerprint is the SHA-256 of the first certificate in a PEM text.
func leafFingerprint(content string) ([32]byte, error) {
	b, _ := pem.Decode([]byte(content))
	if b == nil || b.Type != "CERTIFICATE" {
		return [32]byte{}, fmt.Errorf("no certificate in the content")
	}
	if _, err := x509.ParseCertificate(b.Bytes); err != nil {
		return [32]byte{}, fmt.Errorf("parse the certificate: %w", err)
	}
	return sha256.Sum256(b.Bytes), nil
}

// shortSerial keeps the end of a serial number: serials from one CA often share a
// leading time-based prefix, so the end is what tells them apart.
func shortSerial(s string) string {
	if len(s) > 14 {
		return "..." + s[len(s)-11:]
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// ---- 8. security ----

func (d *demo) stepSecurity(ctx context.Context) error {
	d.printf("[8] security\n")
	if !d.check(d.issuedToken != "", "no cert_issued token was sent, so there is nothing to forge from") {
		return nil
	}
	forged, err := forge(d.issuedToken)
	if err != nil {
		return err
	}
	d.forged = forged
	writes := d.sim.Writes("")
	status, ans, err := post(ctx, d.client, d.callbackURL, forged)
	if err != nil {
		return fmt.Errorf("forged notification: %w", err)
	}
	written := d.sim.Writes("") - writes
	d.printf("      %-26s %-17s -> %d  %s; %d write(s)\n", "forged cert_issued", shopName, status, d.describe(ans), written)
	d.printf("      %-26s (its genuine claims, re-signed with a random RSA key)\n", "")
	d.check(status == http.StatusUnauthorized, "a forged notification got %d, want 401", status)
	d.check(written == 0, "a forged notification caused %d write(s)", written)

	lines := logLines(d.pool)
	leaks := d.leaks(lines)
	d.printf("      %-26s %d lines; no API key, bearer token, private key or notification token in them\n", "action logs", len(lines))
	d.check(len(leaks) == 0, "the action's logs hold %s", strings.Join(leaks, ", "))
	return nil
}

// simulatorTokenPrefix starts every access and refresh token the simulators issue, so
// a token that leaked into a log is found even without the word "Bearer" beside it.
const simulatorTokenPrefix = simiam.TokenPrefix

// leaks names the kinds of secret found in the action's log lines.
func (d *demo) leaks(lines []string) []string {
	text := strings.Join(lines, "\n")
	found := secretsIn(text, map[string]string{
		"the action's API key": d.opts.APIKey, "the operator's API key": d.opts.AdminAPIKey,
		"the ownership key": d.opts.OwnershipKey,
	})
	for _, t := range d.sim.SentTokens() {
		// The signature part is what makes a token replayable.
		if i := strings.LastIndexByte(t.Token, '.'); i >= 0 && strings.Contains(text, t.Token[i+1:]) {
			return append(found, "a notification token")
		}
	}
	return found
}
