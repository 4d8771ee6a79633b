package localdemo

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/certbackup/certbackup/internal/devtools/cmsim"
	"github.com/certbackup/certbackup/internal/devtools/smsim"
	"github.com/certbackup/certbackup/internal/devtools/testpki"
)

// The Secrets Manager demos' instances: a Certificate Manager source, the Secrets
// Manager instance it migrates to (which then becomes the primary), and that one's
// own backup.
const (
	cmRegion  = "us-south"
	sm1Region = "eu-de"
	sm2Region = "eu-gb"

	// custom_metadata keys of certbackup's marker on a Secrets Manager copy
	// (successor-contract.md §2; the provider's MetadataSource and MetadataOrigin).
	metadataSource = "certbackup_source"
	metadataOrigin = "certbackup_origin"

	legacyNameSM = "Legacy API_2019 (old)"
	apiName      = "api.example.com"

	// exitUsage is the binary's exit status for a usage or configuration error, when
	// nothing was called (cli.ExitUsage).
	exitUsage = 2
)

// secretNameRE is a valid secret name (IBM's limits page: letters, digits, dashes and
// dots, a letter or digit first and last).
var secretNameRE = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,254}[A-Za-z0-9])?$`)

// smWorld is what the Secrets Manager demos share: both simulators behind one IAM, the
// instances, and the real binary.
type smWorld struct {
	reporter
	opts    Options
	servers []*http.Server
	bin     *binary

	cm        *cmsim.Simulator
	sm        *smsim.Server
	iamURL    string
	endpoints string // ENDPOINTS, JSON
	aliases   map[string]string
	cmSource  string
	sm1, sm2  string
}

// RunSM is `./deploy.sh local sm`: the real binary's terminal command (build/exec) as
// a subprocess migrates a Certificate Manager instance to Secrets Manager, then keeps
// a second Secrets Manager instance in sync with the first, on the simulators, and
// reports what each instance holds. It returns nil when every step behaved.
func RunSM(ctx context.Context, opts Options, out io.Writer) error {
	opts, err := opts.withDefaults()
	if err != nil {
		return err
	}
	w := &smWorld{reporter: newReporter(out), opts: opts}
	defer w.close()
	rctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	w.printf("certbackup local demo, Secrets Manager: the real %s as the operator and a Code Engine\n", opts.Exec)
	w.printf("job run it, against simulated IAM, Certificate Manager and Secrets Manager, all on 127.0.0.1\n\n")
	d := &smDemo{smWorld: w}
	for _, step := range []func(context.Context) error{
		w.stepBinary, w.stepSimulators, d.stepSource, d.stepMigration, d.stepSync,
		d.stepRotation, d.stepReplay, d.stepFinal, w.stepSecrets,
	} {
		if err := step(rctx); err != nil {
			return w.stepError(ctx, rctx, opts.Timeout, err)
		}
	}
	return w.verdict()
}

// smDemo is one run of RunSM.
type smDemo struct {
	*smWorld
	shopSecret string // SM1's copy of shop.example.com, rotated in step 6
}

// ---- 1. the binary ----

func (w *smWorld) stepBinary(context.Context) error {
	what, err := checkBinary(w.opts.Exec)
	if err != nil {
		return err
	}
	w.bin = &binary{path: w.opts.Exec, copyTo: w.opts.ActionLogs}
	w.printf("[1] binary         %s, run as a process with nothing in\n", what)
	w.printf("                   its environment but the settings (APIKEY, SOURCE_INSTANCE_CRN, BACKUP_INSTANCE_CRNS, IAM_URL,\n")
	w.printf("                   ENDPOINTS, and what the platform adds); no key on a command line\n")
	return nil
}

// ---- 2. the simulators ----

func (w *smWorld) stepSimulators(context.Context) error {
	cm, err := cmsim.New(cmsim.Options{})
	if err != nil {
		return fmt.Errorf("start the Certificate Manager simulator: %w", err)
	}
	w.cm = cm
	cmSrv, cmURL, err := listenLoopback(cm)
	if err != nil {
		return fmt.Errorf("Certificate Manager simulator: %w", err)
	}
	w.servers = append(w.servers, cmSrv)
	if w.sm, err = smsim.Start(smsim.Options{}); err != nil {
		return fmt.Errorf("start the Secrets Manager simulator: %w", err)
	}

	iam := newSharedIAM(map[string]string{"cm": cmURL, "sm": w.sm.URL()})
	if w.iamURL, err = w.serve(iam); err != nil {
		return fmt.Errorf("IAM: %w", err)
	}
	gateways := map[string]string{}
	for _, name := range []string{"cm", "sm"} {
		gw, err := iam.gateway(name)
		if err != nil {
			return err
		}
		if gateways[name], err = w.serve(gw); err != nil {
			return fmt.Errorf("gateway: %w", err)
		}
	}

	w.cmSource = cm.AddInstance(cmRegion)
	w.sm1 = w.sm.AddInstance(sm1Region)
	w.sm2 = w.sm.AddInstance(sm2Region)
	w.aliases = map[string]string{w.cmSource: "CM", w.sm1: "SM1", w.sm2: "SM2"}
	endpoints := map[string]string{cmRegion: cm.RegionURL(gateways["cm"], cmRegion)}
	for _, in := range []string{w.sm1, w.sm2} {
		if endpoints[in], err = w.sm.Simulator.InstanceURL(gateways["sm"], in); err != nil {
			return err
		}
	}
	data, err := json.Marshal(endpoints)
	if err != nil {
		return fmt.Errorf("encode endpoints: %w", err)
	}
	w.endpoints = string(data)

	// One key, as one operator or one job has: download from Certificate Manager needs
	// Writer; copies in Secrets Manager need Writer (Manager to remove a duplicate);
	// reading a Secrets Manager source's payload needs SecretsReader.
	cm.Grant(w.opts.APIKey, w.cmSource, cmsim.Writer)
	w.sm.Grant(w.opts.APIKey, w.sm1, smsim.Manager)
	w.sm.Grant(w.opts.APIKey, w.sm2, smsim.Manager)
	if w.opts.afterSMSetup != nil {
		w.opts.afterSMSetup(w.cm, w.sm.Simulator, w.cmSource, w.sm1, w.sm2)
	}

	w.printf("[2] simulators     IAM %s, one token for both services as IBM Cloud's IAM gives\n", w.iamURL)
	w.printf("                   CM   Certificate Manager %-9s instance %s  the source of the migration\n", cmRegion, shortID(w.cmSource))
	w.printf("                   SM1  Secrets Manager     %-9s instance %s  its copy, then the primary\n", sm1Region, lastID(w.sm1))
	w.printf("                   SM2  Secrets Manager     %-9s instance %s  SM1's backup\n", sm2Region, lastID(w.sm2))
	w.printf("                   one API key, random and not shown: Writer on CM, Manager on SM1 and SM2\n")
	return nil
}

func (w *smWorld) serve(h http.Handler) (string, error) {
	srv, base, err := listenLoopback(h)
	if err != nil {
		return "", err
	}
	w.servers = append(w.servers, srv)
	return base, nil
}

// env is the binary's environment for a run from source to backups.
func (w *smWorld) env(source string, backups ...string) map[string]string {
	return map[string]string{
		"APIKEY":               w.opts.APIKey,
		"SOURCE_INSTANCE_CRN":  source,
		"BACKUP_INSTANCE_CRNS": strings.Join(backups, ","),
		"IAM_URL":              w.iamURL,
		"ENDPOINTS":            w.endpoints,
	}
}

// command runs the binary, prints what it printed (instance CRNs shown by their
// aliases) and checks its exit status.
func (w *smWorld) command(ctx context.Context, env map[string]string, want int, args ...string) (execRun, error) {
	r, err := w.bin.run(ctx, env, args...)
	if err != nil {
		return r, err
	}
	w.printf("      $ %s %-24s %s -> %s   exit %d  (%s)\n", w.opts.Exec, strings.Join(args, " "),
		w.alias(env["SOURCE_INSTANCE_CRN"]), w.alias(env["BACKUP_INSTANCE_CRNS"]), r.code, r.elapsed.Round(10*time.Millisecond))
	text := r.stdout
	if w.opts.Verbose || r.code != want {
		text += r.stderr
	}
	for line := range strings.SplitSeq(strings.TrimRight(text, "\n"), "\n") {
		if line != "" {
			w.printf("          %s\n", w.aliasAll(line))
		}
	}
	w.check(r.code == want, "%s %s: exit %d, want %d", w.opts.Exec, strings.Join(args, " "), r.code, want)
	if r.code == exitUsage && want != exitUsage {
		// Nothing was called, and nothing after this can behave.
		return r, fmt.Errorf("%s %s: the binary refused its configuration (exit %d)", w.opts.Exec, strings.Join(args, " "), r.code)
	}
	return r, nil
}

// alias is the short name of an instance CRN (or a comma-separated list of them).
func (w *smWorld) alias(crns string) string {
	var out []string
	for c := range strings.SplitSeq(crns, ",") {
		if a, ok := w.aliases[c]; ok {
			out = append(out, a)
		} else {
			out = append(out, c)
		}
	}
	return strings.Join(out, ",")
}

// aliasAll replaces every instance CRN in text by its alias.
func (w *smWorld) aliasAll(text string) string {
	for c, a := range w.aliases {
		text = strings.ReplaceAll(text, c, a)
	}
	return text
}

// markerText shows a marker's CRN as <instance alias>:<first 8 of the id>.
func (w *smWorld) markerText(c string) string {
	if c == "" {
		return "-"
	}
	for in, a := range w.aliases {
		prefix := strings.TrimSuffix(in, ":")
		if strings.HasPrefix(c, prefix) {
			return a + ":" + lastID(c)
		}
	}
	return lastID(c)
}

// lastID is the first 8 characters of the last field of a CRN.
func lastID(c string) string {
	c = strings.TrimRight(c, ":")
	id := c[strings.LastIndexByte(c, ':')+1:]
	if len(id) > 8 {
		id = id[:8]
	}
	return id
}

// ---- 3. the Certificate Manager source ----

func (d *smDemo) stepSource(context.Context) error {
	if _, err := d.cm.Order(d.cmSource, shopName, shopName, "www."+shopName); err != nil {
		return fmt.Errorf("order %s: %w", shopName, err)
	}
	for _, c := range []struct{ name, description, domain string }{
		{apiName, "imported by hand", apiName},
		{apiName, "the same name, another certificate", "api-v2.example.com"},
		{legacyNameSM, "spaces, underscores and parentheses in its name", "legacy.example.com"},
	} {
		issued, err := d.cm.CA().Issue(testpki.Options{Domains: []string{c.domain}})
		if err != nil {
			return fmt.Errorf("issue a certificate to import: %w", err)
		}
		d.cm.Seed(d.cmSource, c.name, c.description, issued)
	}
	d.printf("[3] source         what CM holds (no Secrets Manager secret may have two of these names):\n")
	tw := tabwriter.NewWriter(d.out, 0, 0, 2, ' ', 0)
	for _, c := range d.cmCertificates() {
		kind := "ordered"
		if c.Imported {
			kind = "imported"
		}
		fmt.Fprintf(tw, "      %s\t%s\t%s\t%s\t%s\n", c.Name, kind, strings.Join(c.Domains, ","), "CM:"+shortID(c.ID), cmp.Or(c.Description, "-"))
	}
	return tw.Flush()
}

// cmCertificates is the source's certificates by name, then id.
func (w *smWorld) cmCertificates() []cmsim.StoredCertificate {
	certs := w.cm.Snapshot(w.cmSource)
	slices.SortFunc(certs, func(a, b cmsim.StoredCertificate) int {
		return strings.Compare(a.Name+"\x00"+a.ID, b.Name+"\x00"+b.ID)
	})
	return certs
}

// secrets lists an instance's secrets, by name.
func (w *smWorld) secrets(instance string) ([]smsim.Secret, error) {
	list, err := w.sm.List(instance)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", w.alias(instance), err)
	}
	return list, nil
}

// ---- 4. the migration ----

func (d *smDemo) stepMigration(ctx context.Context) error {
	d.printf("[4] migration      CM -> SM1, with the terminal command as an operator runs it:\n")
	env := d.env(d.cmSource, d.sm1)
	for _, c := range []struct {
		want int
		args []string
	}{{1, []string{"verify"}}, {0, []string{"reconcile"}}, {0, []string{"verify"}}} {
		if _, err := d.command(ctx, env, c.want, c.args...); err != nil {
			return err
		}
	}
	src := d.cmCertificates()
	copies, err := d.secrets(d.sm1)
	if err != nil {
		return err
	}
	d.printf("    the copies in SM1: imported_cert secrets, names made valid and unique, the marker in custom_metadata\n")
	d.copyTable(copies, func(s smsim.Secret) string {
		for _, c := range src {
			if c.ID == asString(s.CustomMetadata[metadataSource]) {
				return c.Name
			}
		}
		return "-"
	})
	d.checkCopies("SM1", copies, len(src), func(s smsim.Secret) (string, string, bool) {
		for _, c := range src {
			if c.ID == asString(s.CustomMetadata[metadataSource]) {
				return c.ID, c.Data.Content, true
			}
		}
		return "", "", false
	})
	for _, s := range copies {
		if asString(s.CustomMetadata[metadataSource]) == d.cmCertificateID(shopName) {
			d.shopSecret = s.ID
		}
	}
	return nil
}

func (w *smWorld) cmCertificateID(name string) string {
	for _, c := range w.cm.Snapshot(w.cmSource) {
		if c.Name == name {
			return c.ID
		}
	}
	return ""
}

// copyTable prints an instance's secrets: the source's name, the secret's name, type,
// marker, versions, labels.
func (w *smWorld) copyTable(secrets []smsim.Secret, sourceName func(smsim.Secret) string) {
	tw := tabwriter.NewWriter(w.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "      SOURCE NAME\tSECRET NAME\tTYPE\tcertbackup_source\tcertbackup_origin\tVERSIONS\tLABELS")
	for _, s := range secrets {
		src, _ := s.CustomMetadata[metadataSource].(string)
		origin, _ := s.CustomMetadata[metadataOrigin].(string)
		fmt.Fprintf(tw, "      %s\t%s\t%s\t%s\t%s\t%d\t%s\n", printable(sourceName(s), 40), s.Name, s.Type,
			w.markerText(src), w.markerText(origin), s.VersionsTotal, strings.Join(s.Labels, ","))
	}
	_ = tw.Flush()
}

// checkCopies checks that an instance holds one valid, uniquely named imported_cert
// copy of each of n source certificates, with the source's certificate in it. source
// returns the source certificate a secret's marker names and its PEM.
func (w *smWorld) checkCopies(alias string, secrets []smsim.Secret, n int, source func(smsim.Secret) (id, pem string, ok bool)) {
	names := map[string]bool{}
	sources := map[string]bool{}
	for _, s := range secrets {
		w.check(s.Type == smsim.ImportedCert, "%s: %s is a %s, want imported_cert", alias, s.Name, s.Type)
		w.check(secretNameRE.MatchString(s.Name), "%s: %q is not a valid secret name", alias, s.Name)
		lower := strings.ToLower(s.Name)
		w.check(!names[lower], "%s: two secrets are named %s", alias, s.Name)
		names[lower] = true
		id, pem, ok := source(s)
		if !w.check(ok, "%s: %s carries no marker naming a source certificate", alias, s.Name) {
			continue
		}
		w.check(!sources[id], "%s: two copies of %s", alias, w.markerText(id))
		sources[id] = true
		cur := s.Current()
		same := false
		if cur != nil {
			fs, errS := leafFingerprint(pem)
			fc, errC := leafFingerprint(cur.Certificate)
			same = errS == nil && errC == nil && fs == fc
		}
		w.check(same, "%s: %s does not hold its source's certificate", alias, s.Name)
	}
	w.check(len(secrets) == n && len(sources) == n, "%s holds %d secrets, copies of %d sources; want one copy of each of %d", alias, len(secrets), len(sources), n)
}

// ---- 5. Secrets Manager -> Secrets Manager ----

func (d *smDemo) stepSync(ctx context.Context) error {
	d.printf("[5] sync           SM1 is now the primary; SM2 is its backup (a Code Engine job runs the same):\n")
	if _, err := d.command(ctx, d.env(d.sm1, d.sm2), 0, "reconcile"); err != nil {
		return err
	}
	return d.showSM2()
}

// showSM2 prints SM2's copies and checks them against SM1.
func (d *smDemo) showSM2() error {
	src, err := d.secrets(d.sm1)
	if err != nil {
		return err
	}
	copies, err := d.secrets(d.sm2)
	if err != nil {
		return err
	}
	byCRN := map[string]smsim.Secret{}
	for _, s := range src {
		byCRN[s.CRN] = s
	}
	d.printf("    the copies in SM2: their marker names SM1's secret, their origin CM's certificate\n")
	d.copyTable(copies, func(s smsim.Secret) string {
		if c, ok := byCRN[asString(s.CustomMetadata[metadataSource])]; ok {
			return c.Name
		}
		return "-"
	})
	d.checkCopies("SM2", copies, len(src), func(s smsim.Secret) (string, string, bool) {
		c, ok := byCRN[asString(s.CustomMetadata[metadataSource])]
		if !ok || c.Current() == nil {
			return "", "", false
		}
		return c.CRN, c.Current().Certificate, true
	})
	return nil
}

func asString(v any) string {
	s, _ := v.(string)
	return s
}

// ---- 6. a rotation in the source ----

func (d *smDemo) stepRotation(ctx context.Context) error {
	if d.shopSecret == "" {
		d.printf("[6] rotation\n")
		d.check(false, "no copy of %s in SM1 to rotate", shopName)
		return nil
	}
	before, err := d.sm.Get(d.sm1, d.shopSecret)
	if err != nil {
		return fmt.Errorf("read SM1's %s: %w", shopName, err)
	}
	issued, err := d.cm.CA().Issue(testpki.Options{Domains: []string{shopName, "www." + shopName}})
	if err != nil {
		return fmt.Errorf("issue the rotated certificate: %w", err)
	}
	if _, err := d.sm.Rotate(d.sm1, d.shopSecret, smsim.Version{
		Certificate: issued.CertPEM, Intermediate: issued.Intermediate, PrivateKey: issued.KeyPEM,
	}); err != nil {
		return fmt.Errorf("rotate %s in SM1: %w", before.Name, err)
	}
	oldSerial := before.Current().SerialNumber
	d.printf("[6] rotation       %s rotated in SM1 (a renewal now made in Secrets Manager): serial %s -> %s\n",
		before.Name, shortSerial(oldSerial), shortSerial(serialOf(issued)))
	if _, err := d.command(ctx, d.env(d.sm1, d.sm2), 0, "reconcile"); err != nil {
		return err
	}
	copies, err := d.secrets(d.sm2)
	if err != nil {
		return err
	}
	for _, s := range copies {
		if asString(s.CustomMetadata[metadataSource]) != before.CRN {
			continue
		}
		var serials []string
		for _, v := range s.Versions {
			serials = append(serials, shortSerial(v.SerialNumber))
		}
		d.printf("      its copy in SM2, %s: %d versions, oldest first: %s\n", s.Name, s.VersionsTotal, strings.Join(serials, ", "))
		d.check(s.VersionsTotal == 2 && len(s.Versions) == 2, "SM2's copy of %s has %d versions, want 2 (the previous kept)", before.Name, s.VersionsTotal)
		if len(s.Versions) == 2 {
			d.check(s.Versions[0].SerialNumber == oldSerial && s.Versions[0].PayloadAvailable,
				"SM2's copy of %s: the previous version is not the old certificate with its payload", before.Name)
			d.check(s.Versions[1].SerialNumber == serialOf(issued), "SM2's copy of %s: the current version is not the rotated certificate", before.Name)
		}
		return nil
	}
	d.check(false, "SM2 holds no copy of SM1's %s", before.Name)
	return nil
}

// serialOf is an issued certificate's serial number as Secrets Manager shows it:
// lower-case colon-separated hex.
func serialOf(i *testpki.Issued) string {
	b := i.Cert.SerialNumber.Bytes()
	parts := make([]string, len(b))
	for k, x := range b {
		parts[k] = fmt.Sprintf("%02x", x)
	}
	return strings.Join(parts, ":")
}

// ---- 7. a replay ----

func (d *smDemo) stepReplay(ctx context.Context) error {
	d.printf("[7] replay         the same run again (the next scheduled job): nothing to write\n")
	writes := d.sm.Writes("") + d.cm.Writes("")
	if _, err := d.command(ctx, d.env(d.sm1, d.sm2), 0, "reconcile"); err != nil {
		return err
	}
	wrote := d.sm.Writes("") + d.cm.Writes("") - writes
	d.printf("      %d write(s) in the simulators' request logs\n", wrote)
	d.check(wrote == 0, "a replay wrote %d time(s)", wrote)
	_, err := d.command(ctx, d.env(d.sm1, d.sm2), 0, "verify")
	return err
}

// ---- 8. what each instance holds ----

func (d *smDemo) stepFinal(context.Context) error {
	d.printf("[8] instances      what each one holds, read from the simulators:\n")
	tw := tabwriter.NewWriter(d.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "      INSTANCE\tNAME\tTYPE\tVERSIONS\tSERIAL\tCOPY OF")
	for _, c := range d.cmCertificates() {
		kind := "ordered"
		if c.Imported {
			kind = "imported"
		}
		fmt.Fprintf(tw, "      CM\t%s\t%s\t%d\t%s\t-\n", c.Name, kind, c.Versions, shortSerial(c.SerialNumber))
	}
	for _, in := range []string{d.sm1, d.sm2} {
		list, err := d.secrets(in)
		if err != nil {
			return err
		}
		for _, s := range list {
			serial := "-"
			if cur := s.Current(); cur != nil {
				serial = shortSerial(cur.SerialNumber)
			}
			fmt.Fprintf(tw, "      %s\t%s\t%s\t%d\t%s\t%s\n", d.alias(in), s.Name, s.Type, s.VersionsTotal, serial,
				d.markerText(asString(s.CustomMetadata[metadataSource])))
		}
	}
	return tw.Flush()
}

// ---- 9. secrets ----

func (w *smWorld) stepSecrets(context.Context) error {
	out := w.bin.output()
	lines := strings.Count(out, "\n")
	leaks := secretsIn(out, map[string]string{"the API key": w.opts.APIKey})
	w.printf("[9] security       %d lines of the binary's output: no API key, bearer token or private key in them\n", lines)
	w.check(len(leaks) == 0, "the binary's output holds %s", strings.Join(leaks, ", "))
	return nil
}

func (w *smWorld) close() {
	for i := len(w.servers) - 1; i >= 0; i-- {
		shutdown(w.servers[i])
	}
	if w.sm != nil {
		w.sm.Close()
	}
}
