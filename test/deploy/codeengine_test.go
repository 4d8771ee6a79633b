package deploy_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/test/deploy/deploytest"
	"github.com/certbackup/certbackup/test/deploy/fakecloud"
)

// ./deploy.sh codeengine against the stand-in ibmcloud (ce, event-notifications,
// secrets-manager), whose pretend cloud lives in a directory per test.

const (
	smGUID        = "aaaaaaaa-1111-4222-8333-444444444444"
	smSourceCRN   = "crn:v1:bluemix:public:secrets-manager:us-south:a/0123456789abcdef:" + smGUID + "::"
	smBackupCRN   = "crn:v1:bluemix:public:secrets-manager:eu-de:a/0123456789abcdef:bbbbbbbb-1111-4222-8333-444444444444::"
	enGUID        = "cccccccc-1111-4222-8333-444444444444"
	enCRN         = "crn:v1:bluemix:public:event-notifications:us-south:a/0123456789abcdef:" + enGUID + "::"
	webhookSecret = "webhook-SECRET-0123456789abcdefghijklmnopqrstuv"
	appURL        = "https://certbackup.stubsubdomain.us-south.codeengine.appdomain.cloud"
	enName        = "certbackup-certbackup"
	smDescription = "registered by certbackup deploy.sh codeengine for app certbackup in project certbackup"
)

// requireJQ: deploy.sh codeengine reads the CLIs' JSON with jq. In CI its absence is a
// failure (install it with shellcheck in .ci/run); elsewhere these tests skip.
func requireJQ(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("jq"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("jq is not installed: ./deploy.sh codeengine needs it (apt-get install jq)")
		}
		t.Skip("jq is not installed: ./deploy.sh codeengine was not tested")
	}
}

// ceEnv is a complete, valid set of inputs with a Secrets Manager source.
func ceEnv() map[string]string {
	return map[string]string{
		"APIKEY":               cmSecret,
		"BACKUP_APIKEY":        backupSecret,
		"SOURCE_INSTANCE_CRN":  smSourceCRN,
		"BACKUP_INSTANCE_CRNS": smBackupCRN,
		"WEBHOOK_SECRET":       webhookSecret,
		"EN_INSTANCE_CRN":      enCRN,
	}
}

// newCloud writes a pretend cloud holding the source Secrets Manager instance and the
// Event Notifications instance, after edit, and returns its directory.
func newCloud(t *testing.T, edit func(*fakecloud.State)) string {
	t.Helper()
	s := fakecloud.New()
	s.Region = "eu-gb" // whatever the operator's CLI targeted last
	s.SMInstances[smGUID] = &fakecloud.SMInstance{CRN: smSourceCRN, Region: "us-south"}
	s.ENInstances[enGUID] = &fakecloud.ENInstance{CRN: enCRN, Region: "us-south"}
	if edit != nil {
		edit(s)
	}
	dir := t.TempDir()
	require.NoError(t, s.Save(dir))
	return dir
}

func loadCloud(t *testing.T, dir string) *fakecloud.State {
	t.Helper()
	s, err := fakecloud.Load(dir)
	require.NoError(t, err)
	return s
}

func cloudBytes(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, fakecloud.FileName))
	require.NoError(t, err)
	return string(b)
}

// ce runs deploy.sh on the cloud in dir and checks that no secret reached its output,
// a command line or a leftover file.
func ce(t *testing.T, dir string, env map[string]string, args ...string) deploytest.Result {
	t.Helper()
	r := runScript(t, fixture.repo, runOpts{Env: env, State: dir}, args...)
	assertNoSecrets(t, r, cmSecret, backupSecret, webhookSecret)
	return r
}

var normalizers = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`[^ =@]*/certbackup-deploy\.[A-Za-z0-9]+/`), "<work>/"},
	{regexp.MustCompile(`CERTBACKUP_DEPLOY_DIGEST=[0-9a-f]{64}`), "CERTBACKUP_DEPLOY_DIGEST=<digest>"},
	{regexp.MustCompile(`\((rules|config) [0-9a-f]{16}\)`), "($1 <digest>)"},
}

// normalized replaces what changes from run to run (the private directory, digests).
func normalized(calls []string) []string {
	out := make([]string, len(calls))
	for i, c := range calls {
		for _, n := range normalizers {
			c = n.re.ReplaceAllString(c, n.with)
		}
		out[i] = c
	}
	return out
}

const (
	checkCodeEngine = "go run -trimpath -buildvcs=false " + fakeFunctionPkg + " check-config --platform codeengine --cron 0 * * * *"
	workloadSpec    = " --build-source . --build-strategy dockerfile --argument %s --env-from-secret certbackup-secrets --env-from-configmap certbackup-config --env CERTBACKUP_DEPLOY_DIGEST=<digest>"
	topicID         = "00000001-0000-4000-8000-000000000001"
	destinationID   = "00000002-0000-4000-8000-000000000002"
	subscriptionID  = "00000003-0000-4000-8000-000000000003"
)

func ibm(s string) string { return "ibmcloud " + s }

// firstRun is the exact command sequence of a first deployment with a Secrets Manager
// source, on a cloud that holds only the two instances.
var firstRun = []string{
	checkCodeEngine,
	ibm("target -r us-south"),
	ibm("ce project get --name certbackup"),
	ibm("ce project create --name certbackup"),
	ibm("ce application get --name certbackup --output json"),
	ibm("ce secret get --name certbackup-secrets"),
	ibm("ce secret create --name certbackup-secrets --from-file APIKEY=<work>/secret/APIKEY --from-file BACKUP_APIKEY=<work>/secret/BACKUP_APIKEY --from-file OWNERSHIP_KEY=<work>/secret/OWNERSHIP_KEY --from-file WEBHOOK_SECRET=<work>/secret/WEBHOOK_SECRET"),
	ibm("ce configmap get --name certbackup-config"),
	ibm("ce configmap create --name certbackup-config --from-file BACKUP_INSTANCE_CRNS=<work>/config/BACKUP_INSTANCE_CRNS --from-file ENDPOINTS=<work>/config/ENDPOINTS --from-file IAM_URL=<work>/config/IAM_URL --from-file MAX_REQUESTS_PER_SECOND=<work>/config/MAX_REQUESTS_PER_SECOND --from-file PRIVATE_ENDPOINTS=<work>/config/PRIVATE_ENDPOINTS --from-file SECRET_GROUP=<work>/config/SECRET_GROUP --from-file SOURCE_INSTANCE_CRN=<work>/config/SOURCE_INSTANCE_CRN --from-file SOURCE_PUBLIC_KEY=<work>/config/SOURCE_PUBLIC_KEY"),
	ibm("ce application get --name certbackup"),
	ibm("ce application create --name certbackup" + strings.Replace(workloadSpec, "%s", "serve", 1) + " --port 8080 --concurrency 16 --probe-ready type=http --probe-ready path=/healthz"),
	ibm("ce application get --name certbackup --output url"),
	"curl --fail --silent --show-error --max-time 30 --retry 3 --retry-delay 2 --output /dev/null --write-out %{http_code} " + appURL + "/healthz",
	ibm("ce job get --name certbackup-reconcile"),
	ibm("ce job create --name certbackup-reconcile" + strings.Replace(workloadSpec, "%s", "reconcile", 1)),
	ibm("ce subscription cron get --name certbackup-reconcile-cron --output json"),
	ibm("ce subscription cron create --name certbackup-reconcile-cron --destination certbackup-reconcile --destination-type job --schedule 0 * * * * --time-zone UTC"),
	ibm("secrets-manager notifications-registration --instance-id " + smGUID + " --region us-south --output json"),
	ibm("secrets-manager notifications-registration-create --instance-id " + smGUID + " --region us-south --event-notifications-instance-crn " + enCRN + " --event-notifications-source-name " + enName + " --event-notifications-source-description " + smDescription),
	ibm("event-notifications topics --instance-id " + enGUID + " --search " + enName + " --limit 100 --output json"),
	ibm("event-notifications topic-create --instance-id " + enGUID + " --name " + enName + " --description certbackup certbackup: secret_created, secret_rotated and test_event of the source (rules <digest>) --sources " + topicSources + " --output json"),
	ibm("event-notifications destinations --instance-id " + enGUID + " --search " + enName + " --limit 100 --output json"),
	ibm("event-notifications destination-create --instance-id " + enGUID + " --name " + enName + " --type webhook --description certbackup certbackup: POST " + appURL + "/events (config <digest>) --config=@<work>/destination.json --output json"),
	ibm("event-notifications subscriptions --instance-id " + enGUID + " --search " + enName + " --limit 100 --output json"),
	ibm("event-notifications subscription-create --instance-id " + enGUID + " --name " + enName + " --destination-id " + destinationID + " --topic-id " + topicID + ` --attributes {"signing_enabled":false} --output json`),
}

const topicSources = `[{"id":"` + smSourceCRN + `","rules":[` +
	`{"enabled":true,"event_type_filter":"$.type == 'com.ibm.cloud.secrets-manager.secret_created'"},` +
	`{"enabled":true,"event_type_filter":"$.type == 'com.ibm.cloud.secrets-manager.secret_rotated'"},` +
	`{"enabled":true,"event_type_filter":"$.type == 'com.ibm.cloud.secrets-manager.test_event'"}]}]`

func TestCodeEngineFirstRun(t *testing.T) {
	requireJQ(t)
	dir := newCloud(t, nil)
	r := ce(t, dir, ceEnv(), "codeengine")
	require.Equal(t, 0, r.Code, r.Output())
	assert.Equal(t, firstRun, normalized(r.Calls))

	// What the checker saw: every setting, under both names of the API key.
	for name, want := range map[string]string{"APIKEY": cmSecret, "CM_APIKEY": cmSecret, "WEBHOOK_SECRET": webhookSecret,
		"SOURCE_INSTANCE_CRN": smSourceCRN, "BACKUP_INSTANCE_CRNS": smBackupCRN} {
		got, _ := r.EnvOf("go", name)
		assert.Equal(t, want, got, name)
	}

	s := loadCloud(t, dir)
	assert.Equal(t, "us-south", s.Region)
	p := s.Projects["certbackup"]
	require.NotNil(t, p)
	assert.Equal(t, "us-south", p.Region, "the project is in the source's region")
	assert.Equal(t, map[string]string{"APIKEY": cmSecret, "BACKUP_APIKEY": backupSecret, "WEBHOOK_SECRET": webhookSecret, "OWNERSHIP_KEY": ""},
		p.Secrets["certbackup-secrets"].Data, "the secrets, exactly, without a trailing newline")
	assert.Equal(t, map[string]string{"SOURCE_INSTANCE_CRN": smSourceCRN, "BACKUP_INSTANCE_CRNS": smBackupCRN,
		"SOURCE_PUBLIC_KEY": "", "IAM_URL": "", "ENDPOINTS": "", "PRIVATE_ENDPOINTS": "", "SECRET_GROUP": "", "MAX_REQUESTS_PER_SECOND": ""},
		p.ConfigMaps["certbackup-config"].Data, "the other settings; unset ones empty, which the binary reads as absent")

	app := p.Apps["certbackup"]
	require.NotNil(t, app)
	assert.Equal(t, []string{"serve"}, app.Arguments, "`exec serve` (ENTRYPOINT /exec, argument serve)")
	assert.Equal(t, "8080", app.Port)
	assert.Equal(t, "dockerfile", app.BuildStrategy)
	assert.Equal(t, fixture.repo, app.BuildSource, "built from the repository root")
	assert.Equal(t, []string{"certbackup-secrets"}, app.EnvFromSecret)
	assert.Equal(t, []string{"certbackup-config"}, app.EnvFromConfigMap)
	assert.Regexp(t, `^[0-9a-f]{64}$`, app.Env["CERTBACKUP_DEPLOY_DIGEST"])
	job := p.Jobs["certbackup-reconcile"]
	require.NotNil(t, job)
	assert.Equal(t, []string{"reconcile"}, job.Arguments)
	assert.Equal(t, app.Env, job.Env)
	assert.Equal(t, &fakecloud.Cron{Destination: "certbackup-reconcile", DestinationType: "job", Schedule: "0 * * * *", TimeZone: "UTC"},
		p.Crons["certbackup-reconcile-cron"])

	reg := s.SMInstances[smGUID].Registration
	require.NotNil(t, reg)
	assert.Equal(t, enCRN, reg.ENInstanceCRN)
	in := s.ENInstances[enGUID]
	require.Len(t, in.Topics, 1)
	assert.JSONEq(t, topicSources, string(in.Topics[0].Sources))
	require.Len(t, in.Destinations, 1)
	var cfg struct {
		Params struct {
			URL              string            `json:"url"`
			Verb             string            `json:"verb"`
			CustomHeaders    map[string]string `json:"custom_headers"`
			SensitiveHeaders []string          `json:"sensitive_headers"`
		} `json:"params"`
	}
	require.NoError(t, json.Unmarshal(in.Destinations[0].Config, &cfg))
	assert.Equal(t, appURL+"/events", cfg.Params.URL)
	assert.Equal(t, "post", cfg.Params.Verb)
	assert.Equal(t, map[string]string{"Authorization": "Bearer " + webhookSecret}, cfg.Params.CustomHeaders)
	assert.Equal(t, []string{"Authorization"}, cfg.Params.SensitiveHeaders, "the bearer token is a sensitive header")
	require.Len(t, in.Subscriptions, 1)
	sub := *in.Subscriptions[0]
	assert.JSONEq(t, `{"signing_enabled":false}`, string(sub.Attributes))
	sub.Attributes = nil
	assert.Equal(t, fakecloud.ENSubscription{ID: subscriptionID, Name: enName, DestinationID: destinationID, TopicID: topicID}, sub)

	assert.Contains(t, r.Stdout, "GET "+appURL+"/healthz answered 200")
	assert.Contains(t, r.Stdout, "Not observed: a delivery")
	assert.Contains(t, r.Stdout, "notifications-registration-test")
}

func TestCodeEngineSecondRunChangesNothing(t *testing.T) {
	requireJQ(t)
	dir := newCloud(t, nil)
	r := ce(t, dir, ceEnv(), "codeengine")
	require.Equal(t, 0, r.Code, r.Output())
	before := cloudBytes(t, dir)

	r = ce(t, dir, ceEnv(), "codeengine")
	require.Equal(t, 0, r.Code, r.Output())
	for _, c := range r.Calls {
		assert.NotRegexp(t, `\b(create|update|delete)\b|-(create|update|delete)\b`, c, "a second run only looks")
	}
	assert.Equal(t, before, cloudBytes(t, dir), "the cloud is as the first run left it")
	for _, what := range []string{"secret certbackup-secrets: unchanged", "configmap certbackup-config: unchanged",
		"application certbackup: unchanged", "job certbackup-reconcile: unchanged", "cron subscription certbackup-reconcile-cron: unchanged",
		"registration: in place", "topic " + enName + ": unchanged", "destination " + enName + ": unchanged", "subscription " + enName + ": unchanged"} {
		assert.Contains(t, r.Stdout, what)
	}
}

func TestCodeEngineChangesAreUpdatedInPlace(t *testing.T) {
	requireJQ(t)
	dir := newCloud(t, nil)
	require.Equal(t, 0, ce(t, dir, ceEnv(), "codeengine").Code)

	// A changed setting: the configmap, and a new revision of the application (which reads
	// its environment when it starts) and of the job; Event Notifications is untouched.
	env := ceEnv()
	env["BACKUP_INSTANCE_CRNS"] = smBackupCRN + "," + strings.Replace(smBackupCRN, "eu-de", "eu-gb", 1)
	env["RECONCILE_CRON"] = "*/15 * * * *"
	r := ce(t, dir, env, "codeengine")
	require.Equal(t, 0, r.Code, r.Output())
	var writes []string
	for _, c := range normalized(r.Calls) {
		if regexp.MustCompile(`\b(create|update|delete)\b|-(create|update|delete)\b`).MatchString(c) {
			writes = append(writes, strings.Join(strings.Fields(c)[:4], " "))
		}
	}
	assert.Equal(t, []string{
		"ibmcloud ce secret update", "ibmcloud ce configmap update", "ibmcloud ce application update",
		"ibmcloud ce job update", "ibmcloud ce subscription cron",
	}, writes)
	assert.Contains(t, normalized(r.Calls), ibm("ce subscription cron update --name certbackup-reconcile-cron --destination certbackup-reconcile --destination-type job --schedule */15 * * * * --time-zone UTC"))
	p := loadCloud(t, dir).Projects["certbackup"]
	assert.Equal(t, env["BACKUP_INSTANCE_CRNS"], p.ConfigMaps["certbackup-config"].Data["BACKUP_INSTANCE_CRNS"])
	assert.Equal(t, 2, p.Apps["certbackup"].Revision)
	assert.Equal(t, 2, p.Jobs["certbackup-reconcile"].Revision)
	assert.Equal(t, "*/15 * * * *", p.Crons["certbackup-reconcile-cron"].Schedule)

	// A new webhook secret: the secret, the workloads, and the destination in place (same id).
	env["WEBHOOK_SECRET"] = "webhook-SECRET-rotated-abcdefghijklmnopqrstuvwxyz"
	r = runScript(t, fixture.repo, runOpts{Env: env, State: dir}, "codeengine")
	require.Equal(t, 0, r.Code, r.Output())
	assertNoSecrets(t, r, cmSecret, backupSecret, env["WEBHOOK_SECRET"])
	in := loadCloud(t, dir).ENInstances[enGUID]
	require.Len(t, in.Destinations, 1)
	assert.Equal(t, destinationID, in.Destinations[0].ID, "updated in place")
	assert.Contains(t, string(in.Destinations[0].Config), "Bearer "+env["WEBHOOK_SECRET"])
	assert.Len(t, in.Subscriptions, 1)
	assert.Contains(t, r.Stdout, "destination "+enName+": updated")
}

func TestCodeEngineInvalidConfigurationCallsNothing(t *testing.T) {
	requireJQ(t)
	cases := map[string]struct {
		env  map[string]string
		want string
	}{
		"checker": {map[string]string{"SOURCE_INSTANCE_CRN": smSourceCRN, "STUB_CONFIG_ERRORS": "parameter webhook_secret: is required with a Secrets Manager source"},
			"parameter webhook_secret: is required"},
		"app name":         {map[string]string{"CE_APP": "Cert_Backup"}, "CE_APP 'Cert_Backup'"},
		"project name":     {map[string]string{"CE_PROJECT": "a/b"}, "CE_PROJECT 'a/b'"},
		"region":           {map[string]string{"CE_REGION": "mars-1"}, "CE_REGION 'mars-1' is not a Code Engine region"},
		"source region":    {map[string]string{"SOURCE_INSTANCE_CRN": strings.Replace(smSourceCRN, "us-south", "ca-mon", 1)}, "the source instance's region 'ca-mon' is not a Code Engine region"},
		"no EN instance":   {map[string]string{"EN_INSTANCE_CRN": ""}, "EN_INSTANCE_CRN is required"},
		"bad EN instance":  {map[string]string{"EN_INSTANCE_CRN": "crn:v1:bluemix:public:secrets-manager:us-south:a/1:" + enGUID + "::"}, "is not the CRN of an Event Notifications instance"},
		"EN with CM":       {map[string]string{"SOURCE_INSTANCE_CRN": sourceCRN}, "EN_INSTANCE_CRN is set, but the source is a Certificate Manager instance"},
		"two api keys":     {map[string]string{"CM_APIKEY": backupSecret}, "APIKEY and CM_APIKEY are both set and differ"},
		"garbage settings": {map[string]string{"SOURCE_INSTANCE_CRN": "garbage", "STUB_CONFIG_ERRORS": "parameter source_instance_crn: is not a CRN"}, "parameter source_instance_crn: is not a CRN"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dir := newCloud(t, nil)
			before := cloudBytes(t, dir)
			env := ceEnv()
			for k, v := range c.env {
				env[k] = v
			}
			r := ce(t, dir, env, "codeengine")
			assert.Equal(t, 2, r.Code, r.Output())
			assert.Contains(t, r.Stderr, c.want)
			assert.Contains(t, r.Stderr, "nothing was called in IBM Cloud")
			assert.Empty(t, r.CallsOf("ibmcloud"), "no ibmcloud command runs")
			assert.Empty(t, r.CallsOf("curl"))
			assert.Equal(t, before, cloudBytes(t, dir))
			if len(r.Calls) > 0 {
				assert.Equal(t, []string{checkCodeEngine}, r.Calls, "only the checker runs, and it sees every variable")
			}
		})
	}
}

func TestCodeEngineUndeployRemovesExactlyWhatDeployMade(t *testing.T) {
	requireJQ(t)
	for name, theirs := range map[string]bool{"registration made by deploy": false, "registration made by someone else": true} {
		t.Run(name, func(t *testing.T) {
			// A cloud with things that are not certbackup's, in the same project and the same
			// Event Notifications instance.
			dir := newCloud(t, func(s *fakecloud.State) {
				p := fakecloud.NewProject("us-south")
				p.Secrets["other-secrets"] = &fakecloud.KeyValue{Data: map[string]string{"K": "v"}}
				p.Apps["other"] = &fakecloud.Workload{Revision: 3, Env: map[string]string{}}
				s.Projects["certbackup"] = p
				in := s.ENInstances[enGUID]
				in.Destinations = append(in.Destinations, &fakecloud.ENDestination{ID: s.NextID(), Name: "ops-hook", Type: "webhook",
					Config: json.RawMessage(`{"params":{"url":"https://ops.example.com","verb":"post"}}`)})
				if theirs {
					s.SMInstances[smGUID].Registration = &fakecloud.SMRegistration{ENInstanceCRN: enCRN, SourceName: "sm", SourceDescription: "by hand"}
					in.Sources = append(in.Sources, &fakecloud.ENSource{ID: smSourceCRN, Name: "sm", Description: "by hand", Type: "secrets-manager", Enabled: true})
					in.Topics = append(in.Topics, &fakecloud.ENTopic{ID: s.NextID(), Name: "ops", Sources: json.RawMessage(`[{"id":"` + smSourceCRN + `","rules":[{"enabled":true,"event_type_filter":"$.type == 'x'"}]}]`)})
				}
				in.Subscriptions = append(in.Subscriptions, &fakecloud.ENSubscription{ID: s.NextID(), Name: "ops-sub", DestinationID: in.Destinations[0].ID, TopicID: in.Destinations[0].ID})
			})
			seeded := loadCloud(t, dir)

			r := ce(t, dir, ceEnv(), "codeengine")
			require.Equal(t, 0, r.Code, r.Output())
			assert.Contains(t, r.Stdout, "project certbackup in us-south: selected", "an existing project is used")

			r = ce(t, dir, ceEnv(), "undeploy", "codeengine")
			require.Equal(t, 0, r.Code, r.Output())
			want := []string{
				ibm("target -r us-south"),
				ibm("ce project get --name certbackup"),
				ibm("ce project select --name certbackup"),
				ibm("ce subscription cron delete --name certbackup-reconcile-cron --force --ignore-not-found"),
				ibm("ce job delete --name certbackup-reconcile --force --ignore-not-found"),
				ibm("ce application delete --name certbackup --force --ignore-not-found"),
				ibm("ce configmap delete --name certbackup-config --force --ignore-not-found"),
				ibm("ce secret delete --name certbackup-secrets --force --ignore-not-found"),
				ibm("event-notifications subscriptions --instance-id " + enGUID + " --search " + enName + " --limit 100 --output json"),
				ibm("event-notifications subscription-delete --instance-id " + enGUID + " --id SUB --force"),
				ibm("event-notifications topics --instance-id " + enGUID + " --search " + enName + " --limit 100 --output json"),
				ibm("event-notifications topic-delete --instance-id " + enGUID + " --id TOPIC --force"),
				ibm("event-notifications destinations --instance-id " + enGUID + " --search " + enName + " --limit 100 --output json"),
				ibm("event-notifications destination-delete --instance-id " + enGUID + " --id DEST --force"),
				ibm("event-notifications sources --instance-id " + enGUID + " --limit 100 --output json"),
			}
			if !theirs {
				want = append(want, ibm("secrets-manager notifications-registration-delete --instance-id "+smGUID+" --region us-south"))
			}
			got := normalized(r.Calls)
			for i, c := range got {
				got[i] = regexp.MustCompile(`--id [0-9a-f-]{36}`).ReplaceAllString(c, "--id ID")
			}
			for i, c := range want {
				want[i] = regexp.MustCompile(`--id (SUB|TOPIC|DEST)`).ReplaceAllString(c, "--id ID")
			}
			assert.Equal(t, want, got)

			after := loadCloud(t, dir)
			assert.Equal(t, "us-south", after.Region)
			after.Region, after.Selected, after.Seq = seeded.Region, seeded.Selected, seeded.Seq
			a, err := after.Encode()
			require.NoError(t, err)
			b, err := seeded.Encode()
			require.NoError(t, err)
			assert.Equal(t, string(b), string(a), "after undeploy the cloud is as before the deploy")
			if theirs {
				assert.Contains(t, r.Stdout, "kept: the Secrets Manager registration")
			}
			assert.Contains(t, r.Stdout, "kept: project certbackup")

			// Undeploying again finds nothing and changes nothing.
			r = ce(t, dir, ceEnv(), "undeploy", "codeengine")
			require.Equal(t, 0, r.Code, r.Output())
			assert.NotContains(t, strings.Join(r.Calls, "\n"), "-delete --instance-id")
		})
	}
}

func TestCodeEngineWithACertificateManagerSource(t *testing.T) {
	requireJQ(t)
	dir := newCloud(t, nil)
	env := map[string]string{"APIKEY": cmSecret, "SOURCE_INSTANCE_CRN": sourceCRN, "BACKUP_INSTANCE_CRNS": smBackupCRN}
	r := ce(t, dir, env, "codeengine")
	require.Equal(t, 0, r.Code, r.Output())
	calls := r.Calls
	require.GreaterOrEqual(t, len(calls), 2)
	assert.Equal(t, []string{
		cli("register-channel --url " + appURL + "/notify"),
		cli("test-channel --url " + appURL + "/notify"),
	}, calls[len(calls)-2:], "the Callback URL is the application's /notify")
	assert.Empty(t, r.CallsOf("ibmcloud event-notifications"))
	for _, c := range calls {
		assert.NotContains(t, c, "event-notifications")
		assert.NotContains(t, c, "secrets-manager")
	}
	assert.Contains(t, r.Stdout, "NOT confirmed")
	assert.Contains(t, r.Stdout, "ibmcloud ce application logs --name certbackup")

	r = ce(t, dir, env, "undeploy", "codeengine")
	require.Equal(t, 0, r.Code, r.Output())
	assert.Contains(t, r.Stdout, "delete the Callback URL channel")
	assert.Empty(t, loadCloud(t, dir).Projects["certbackup"].Apps)
}

func TestCodeEngineFailureSaysWhatIsInPlace(t *testing.T) {
	requireJQ(t)
	dir := newCloud(t, nil)
	env := ceEnv()
	env["STUB_FAIL"] = "destination-create"
	r := ce(t, dir, env, "codeengine")
	assert.Equal(t, 1, r.Code, r.Output())
	assert.Contains(t, r.Stderr, "simulated failure", "the CLI's own message is shown")
	assert.Contains(t, r.Stderr, "in place before it:")
	assert.Contains(t, r.Stderr, "application certbackup: created")
	assert.Contains(t, r.Stderr, "run ./deploy.sh codeengine again")
	assert.NotContains(t, r.Output(), "done:")
	assert.NotContains(t, strings.Join(r.Calls, "\n"), "subscription-create", "nothing after the failed step")

	// Running again completes the rest and re-creates nothing.
	r = ce(t, dir, ceEnv(), "codeengine")
	require.Equal(t, 0, r.Code, r.Output())
	var creates []string
	for _, c := range r.Calls {
		if strings.Contains(c, "create") {
			creates = append(creates, strings.Fields(c)[2])
		}
	}
	assert.Equal(t, []string{"destination-create", "subscription-create"}, creates)
}

func TestCodeEngineUnhealthyApplicationStops(t *testing.T) {
	requireJQ(t)
	dir := newCloud(t, nil)
	env := ceEnv()
	env["STUB_HEALTHZ"] = "fail"
	r := ce(t, dir, env, "codeengine")
	assert.Equal(t, 1, r.Code, r.Output())
	assert.Contains(t, r.Stderr, "answered 503")
	assert.Contains(t, r.Stderr, "ibmcloud ce application logs --name certbackup")
	assert.Empty(t, r.CallsOf("ibmcloud event-notifications"))
	for _, c := range r.Calls {
		assert.NotContains(t, c, "job create", "nothing after the failed check")
	}
}

func TestCodeEnginePrivateEndpointsWarns(t *testing.T) {
	requireJQ(t)
	env := ceEnv()
	env["PRIVATE_ENDPOINTS"] = "true"
	r := ce(t, newCloud(t, nil), env, "codeengine")
	require.Equal(t, 0, r.Code, r.Output())
	assert.Contains(t, r.Stderr, "VPC private path")
}
