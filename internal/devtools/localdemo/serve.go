package localdemo

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"
)

// serve keeps everything up until ctx ends: it prints what to paste into another
// terminal to try every command of the README against the demo, then one line per
// notification the web action receives, as it arrives.
func (d *demo) serve(ctx context.Context) {
	d.printf("%s", d.serveText())
	d.rec.goLive(func(ex *exchange) {
		d.printf("%s\n", notificationLine(time.Now(), ex.status, parseAnswer(ex.body.Bytes())))
	})
	if d.opts.Verbose {
		d.printf("\nthe action's log lines follow as it works:\n")
		d.logs.goLive(d.out)
	}
	<-ctx.Done()
	d.printf("\nstopped\n")
}

// exportBlock is the environment of the terminal command against the demo, as one
// `export` a shell can take as pasted. It holds the operator's key and the ownership
// key, both throwaway and known only to this simulator; never the action's own key.
func (d *demo) exportBlock(indent string) string {
	endpoints, _ := json.Marshal(d.endpoints) // a map of strings always encodes
	vars := []struct{ name, value string }{
		{"APIKEY", d.opts.AdminAPIKey},
		{"OWNERSHIP_KEY", d.opts.OwnershipKey},
		{"SOURCE_INSTANCE_CRN", d.source},
		{"BACKUP_INSTANCE_CRNS", d.backup},
		{"IAM_URL", d.iamURL},
		{"ENDPOINTS", string(endpoints)},
	}
	var b strings.Builder
	for i, v := range vars {
		switch i {
		case 0:
			b.WriteString(indent + "export ")
		default:
			b.WriteString(" \\\n" + indent + "  ")
		}
		b.WriteString(v.name + "=" + shellQuote(v.value))
	}
	b.WriteString("\n")
	return b.String()
}

// serveText is what --serve prints once the report is done.
func (d *demo) serveText() string {
	const in = "  "
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	w("\nEverything keeps running until Ctrl-C; each notification the action receives is printed\n")
	w("below as it arrives. Every README command works against it, from another terminal in this\n")
	w("checkout (or with build/exec instead of go run ./function):\n\n")
	w("%s# Throwaway keys that exist only in this simulator and die with it: the operator's API key\n", in)
	w("%s# (Manager on the source and the backup) and the ownership key the action proves its copies\n", in)
	w("%s# with (the terminal command needs the same one). The action's own key stays hidden.\n", in)
	b.WriteString(d.exportBlock(in))
	w("\n")
	w("%sgo run ./function verify                 # exit 0: the backup holds every source certificate\n", in)
	w("%sgo run ./function verify --details       # the table\n", in)
	w("%sgo run ./function reconcile --dry-run    # the plan\n", in)
	w("%sgo run ./function reconcile\n", in)
	w("%sgo run ./function register-channel --url %s\n", in, shellQuote(d.callbackURL))
	w("%sgo run ./function test-channel --url %s\n", in, shellQuote(d.callbackURL))
	w("%s# (exit 3: Certificate Manager does not confirm a delivery; the line it causes here does)\n\n", in)
	w("%s# the runbook's restore: the backup that survived as the source, the old source as the new\n", in)
	w("%s# primary (in a subshell, so that the exports above stay as they are)\n", in)
	w("%s(\n", in)
	w("%s  export SOURCE_INSTANCE_CRN=%s \\\n", in, shellQuote(d.backup))
	w("%s    BACKUP_INSTANCE_CRNS=%s\n", in, shellQuote(d.source))
	w("%s  go run ./function reconcile --dry-run\n", in)
	w("%s  go run ./function reconcile\n", in)
	w("%s  go run ./function verify\n", in)
	w("%s)\n\n", in)

	w("%s# the Certificate Manager API itself, with the same key; its paths take the CRN URL-escaped\n", in)
	w("%sSIM=%s\n", in, shellQuote(d.simURL))
	w("%sesc() { printf '%%s' \"$1\" | sed 's/:/%%3A/g; s|/|%%2F|g'; }\n", in)
	w("%sTOKEN=$(curl -s \"$SIM/identity/token\" -H 'Content-Type: application/x-www-form-urlencoded' \\\n", in)
	w("%s  --data-urlencode 'grant_type=urn:ibm:params:oauth:grant-type:apikey' --data-urlencode \"apikey=$APIKEY\" \\\n", in)
	w("%s  | sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/')\n", in)
	w("%scurl -s -H \"Authorization: Bearer $TOKEN\" \"$SIM/%s/api/v3/$(esc \"$SOURCE_INSTANCE_CRN\")/certificates\"\n", in, sourceRegion)
	w("%scurl -s -H \"Authorization: Bearer $TOKEN\" \"$SIM/%s/api/v3/$(esc \"$BACKUP_INSTANCE_CRNS\")/certificates\"\n\n", in, backupRegion)
	w("%s# order a certificate in the source: Certificate Manager notifies the action (a line appears here)\n", in)
	w("%scurl -s -X POST -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' \\\n", in)
	w("%s  -d '{\"name\":\"order.example.com\",\"domains\":[\"order.example.com\"],\"domain_validation_method\":\"dns-01\"}' \\\n", in)
	w("%s  \"$SIM/%s/api/v1/$(esc \"$SOURCE_INSTANCE_CRN\")/certificates/order\"\n\n", in, sourceRegion)
	w("%s# a forged notification (signed with a random key): 401, nothing written\n", in)
	w("%scurl -s -i -X POST -H 'Content-Type: application/json' -d '{\"data\":\"%s\"}' \\\n", in, d.forged)
	w("%s  %s\n\n", in, shellQuote(d.callbackURL))
	w("notifications:\n")
	return b.String()
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// notificationLine is one line for one request to the web action: the time, the event,
// the certificates, the status and the outcomes counted. It holds nothing secret: the
// answer it comes from carries event types, names, CRNs and outcomes only, and the
// error of a refused request is its class, not its message.
func notificationLine(at time.Time, status int, a answer) string {
	event := a.EventType
	if event == "" {
		event = "(unverified)"
	}
	var what string
	switch {
	case a.Error != "":
		what = "rejected (" + a.Error + ")"
	case a.Action == "test":
		what = "test notification verified, nothing to copy"
	case a.Action == "replicate":
		what = countsText(a.Summary)
	case a.Action != "":
		what = a.Action
	default:
		what = "no answer from the action"
	}
	return fmt.Sprintf("  %s  %-26s %-24s -> %d  %s", at.Format(time.TimeOnly), printable(event, 40), certificatesText(a.Results), status, what)
}

// certificatesText names the certificates of the results: each distinct name once,
// at most three, then how many more.
func certificatesText(results []pairResult) string {
	var names []string
	for _, r := range results {
		n := printable(r.Name, 40)
		if n == "" {
			n = shortID(r.Source)
		}
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	switch {
	case len(names) == 0:
		return "-"
	case len(names) > 3:
		return fmt.Sprintf("%s +%d more", strings.Join(names[:3], ","), len(names)-3)
	}
	return strings.Join(names, ",")
}

// countsText is "imported 1, unchanged 2", outcomes in name order.
func countsText(summary map[string]int) string {
	if len(summary) == 0 {
		return "nothing to copy"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(summary)) {
		parts = append(parts, fmt.Sprintf("%s %d", printable(k, 20), summary[k]))
	}
	return strings.Join(parts, ", ")
}

// printable keeps a name from a service fit for one terminal line: control and format
// characters become spaces, and it is cut to at most width characters.
func printable(s string, width int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) {
			return ' '
		}
		return r
	}, s)
	if r := []rune(s); len(r) > width {
		return string(r[:width-1]) + "…"
	}
	return s
}
