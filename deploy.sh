#!/usr/bin/env bash
# deploy.sh: build and deploy certbackup to IBM Cloud Functions (Apache OpenWhisk) or to
# IBM Cloud Code Engine.
#
#   ./deploy.sh build                  build build/exec and build/action.zip
#   ./deploy.sh [deploy]               OpenWhisk: check every variable, build, deploy
#                                      manifest.yaml, register the Callback URL on the source
#                                      instance and ask for a test notification
#   ./deploy.sh codeengine             Code Engine: check every variable, then project, secret,
#                                      configmap, application and reconcile job (built here
#                                      with the Dockerfile), cron subscription, and the
#                                      notification path (Event Notifications or Callback URL)
#   ./deploy.sh undeploy [openwhisk|codeengine]
#   ./deploy.sh local [sm|codeengine] [--serve] [--verbose]
#                                      build, then run a local demo on the simulators:
#                                      OpenWhisk (build/action.zip), sm (build/exec:
#                                      Certificate Manager -> Secrets Manager -> Secrets
#                                      Manager) or codeengine (build/exec serve, Event
#                                      Notifications, the job)
#   ./deploy.sh help                   usage
#
# Every variable is checked, by the binary's own `check-config`, before anything is
# called. Exit status: 0 done (anything that could not be observed is said so), 1 a step
# failed (what is in place and what to do are printed), 2 usage or configuration error
# (nothing was called). Secrets travel through the environment or 0600 files that are
# removed on exit; they are never on a command line and never printed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"

readonly MANIFEST=manifest.yaml
readonly BUILD_DIR=build
readonly ZIP="$BUILD_DIR/action.zip"
readonly EXEC="$BUILD_DIR/exec"
# The Go package of the action binary. Overridable for tests only.
readonly FUNCTION_PKG="${CERTBACKUP_FUNCTION_PKG:-./function}"
# The variables the action reads (APIKEY/CM_APIKEY and ENDPOINTS/CM_ENDPOINTS are one
# setting each); check-config validates them all.
readonly ACTION_VARS=(APIKEY CM_APIKEY BACKUP_APIKEY SOURCE_INSTANCE_CRN BACKUP_INSTANCE_CRNS
	SOURCE_PUBLIC_KEY IAM_URL ENDPOINTS CM_ENDPOINTS PRIVATE_ENDPOINTS SECRET_GROUP WEBHOOK_SECRET
	OWNERSHIP_KEY MAX_REQUESTS_PER_SECOND)
# Code Engine keeps the secrets in a Code Engine secret and the rest in a configmap.
readonly CE_SECRET_KEYS=(APIKEY BACKUP_APIKEY WEBHOOK_SECRET OWNERSHIP_KEY)
readonly CE_CONFIG_KEYS=(SOURCE_INSTANCE_CRN BACKUP_INSTANCE_CRNS SOURCE_PUBLIC_KEY IAM_URL ENDPOINTS
	PRIVATE_ENDPOINTS SECRET_GROUP MAX_REQUESTS_PER_SECOND)
# Regions with Code Engine (ibm-cloud-docs/codeengine regions.md).
readonly CE_REGIONS=(au-syd br-sao ca-tor eu-de eu-es eu-gb in-che jp-osa jp-tok us-east us-south)

usage() {
	cat <<'EOF'
usage: ./deploy.sh [deploy|build|codeengine|undeploy [openwhisk|codeengine]|local [sm|codeengine] [--serve] [--verbose]|help]

  deploy (default)  OpenWhisk: check every variable (go run ./function check-config), build,
                    deploy manifest.yaml, print the web action's Callback URL (.http),
                    register it as a Callback URL notification channel on the source
                    instance and ask Certificate Manager for a test notification
  build             build build/exec (linux/amd64) and build/action.zip (exec + exec.env,
                    exec.env from the runtime of the notify action in manifest.yaml)
  codeengine        Code Engine: check every variable, select or create the project, write
                    the secret and the configmap, create or update the application
                    (`exec serve`, port 8080) and the job `exec reconcile`, both built from
                    this directory with the Dockerfile, and the cron subscription that runs
                    the job; then, for a Secrets Manager source, the Event Notifications
                    webhook to <app URL>/events (with the Authorization header kept
                    sensitive), a topic for the source's secret_created, secret_rotated
                    and test_event, a subscription, and the Secrets Manager registration;
                    for a Certificate Manager source, the Callback URL <app URL>/notify.
                    A second run changes nothing; a changed variable or source is updated
                    in place.
  undeploy          OpenWhisk (default): remove the package, actions, trigger and rule of
                    manifest.yaml. `undeploy codeengine`: remove what `codeengine` created
                    (the project itself is kept)
  local [--serve] [--verbose]
                    build, then run the local demo (go run ./internal/devtools/cmd/localdemo):
                    the action from build/action.zip run as OpenWhisk runs it, against a
                    simulated IAM and Certificate Manager on 127.0.0.1, nothing leaves the
                    machine. --serve keeps it running until Ctrl-C, prints an `export` of the
                    simulator's throwaway operator key, CRNs and endpoints under which every
                    README command works, and a line per notification as it arrives;
                    --verbose also prints the action's own log lines
  local sm [--verbose]
                    build, then run build/exec (the terminal command, as a Code Engine job
                    runs it) on simulated IAM, Certificate Manager and Secrets Manager:
                    migrate a Certificate Manager instance to Secrets Manager, sync a second
                    Secrets Manager instance from the first (a rotation, a replay, verify),
                    and print what each instance holds; --verbose adds the binary's stderr
  local codeengine [--verbose]
                    build, then start build/exec serve (the Code Engine application) on a
                    loopback port with PORT and the settings, send it Event Notifications
                    envelopes for a Secrets Manager source (Authorization: Bearer
                    <WEBHOOK_SECRET>): a created and a rotated secret, a retry, a batch of 20
                    with duplicates, and forged ones, refused with nothing read; then run
                    the reconcile job (CE_JOB set) and stop the server with SIGTERM;
                    --verbose adds the server's log lines
  help              this text

the action's settings (all platforms; check-config validates them):
  APIKEY                IBM Cloud API key (CM_APIKEY is the older name; secret)
  SOURCE_INSTANCE_CRN   CRN of the Certificate Manager or Secrets Manager instance to back up
  BACKUP_INSTANCE_CRNS  CRN(s) of the backup instance(s)
  BACKUP_APIKEY         API key for the backup instances, when not APIKEY (secret)
  SOURCE_PUBLIC_KEY     PEM public key that signs the source's Certificate Manager notifications
  IAM_URL               IAM endpoint (default: the built-in one)
  ENDPOINTS             JSON object region or instance CRN -> base URL (CM_ENDPOINTS: older name)
  PRIVATE_ENDPOINTS     use private endpoints
  SECRET_GROUP          Secrets Manager backups: the secret group of the copies (default: default)
  WEBHOOK_SECRET        Code Engine with a Secrets Manager source: the bearer token Event
                        Notifications sends to /events (at least 32 characters; secret)
  RECONCILE_CRON        5-field UTC cron of the reconcile (default "0 * * * *")
OpenWhisk:
  PACKAGE_NAME          OpenWhisk package (default certbackup)
  DEPLOY_TOOL           ibmcloud (default: ibmcloud fn deploy) or wskdeploy (wskdeploy + wsk)
Code Engine:
  CE_PROJECT            project, selected or created (default certbackup)
  CE_REGION             region of the project (default: the source instance's region)
  CE_APP                application name (default certbackup); also names the job
                        <app>-reconcile, its cron subscription <app>-reconcile-cron, the
                        secret <app>-secrets, the configmap <app>-config and the Event
                        Notifications destination, topic and subscription certbackup-<app>
  EN_INSTANCE_CRN       the Event Notifications instance (required for a Secrets Manager source)

Before deploying: `ibmcloud login`; for OpenWhisk `ibmcloud fn property set --namespace <ns>`;
for Code Engine the code-engine, event-notifications and secrets-manager CLI plug-ins, jq,
and, once per account, the IAM authorization "Event Source Manager" from the Secrets Manager
instance to the Event Notifications instance. Code Engine reaches Secrets Manager only on
its public endpoints (PRIVATE_ENDPOINTS must be unset) unless a VPC private path is set up.
EOF
}

say() { printf '==> %s\n' "$*"; }
die() {
	local code=$1
	shift
	printf 'deploy.sh: %s\n' "$*" >&2
	exit "$code"
}

need_tool() {
	command -v "$1" >/dev/null 2>&1 || die 2 "$1 not found on PATH ($2)"
}

# go_run runs a package of this module with the flags of the action build, so that a
# cold build cache compiles the shared packages once.
go_run() {
	CGO_ENABLED=0 go run -trimpath -buildvcs=false "$@"
}

# resolve_alias NEW OLD: the two names of one setting. Both are exported with its value,
# so that check-config, the manifest ($OLD) and Code Engine ($NEW) all see the same one.
resolve_alias() {
	local new=$1 old=$2
	if [[ -n "${!new:-}" && -n "${!old:-}" && "${!new}" != "${!old}" ]]; then
		printf 'deploy.sh: %s and %s are both set and differ: set only one (%s is the current name, %s the older one)\n' "$new" "$old" "$new" "$old" >&2
		return 1
	fi
	local v="${!new:-${!old:-}}"
	export "$new=$v" "$old=$v"
}

# check_config PLATFORM runs the binary's own validation of every setting: the same
# code the action and the Code Engine application run. Its lines name each parameter and
# rule, never a value. `go run` exits 1 whatever the program's status and then prints
# "exit status N" with the program's own status, which is read back here.
check_config() {
	local out rc=0
	say "checking the configuration: go run $FUNCTION_PKG check-config --platform $1 --cron '$RECONCILE_CRON'"
	out="$(go_run "$FUNCTION_PKG" check-config --platform "$1" --cron "$RECONCILE_CRON" 2>&1)" || rc=$?
	if ((rc != 0)) && [[ "$out" =~ (^|$'\n')exit\ status\ ([0-9]+)$ ]]; then
		rc="${BASH_REMATCH[2]}"
		out="${out%exit status *}"
	fi
	if ((rc == 0)) && grep -qx 'configuration valid' <<<"$out"; then
		out="$(grep -vx 'configuration valid' <<<"$out" || true)"
		if [[ -n "$out" ]]; then printf '%s\n' "$out" >&2; fi
		say "configuration valid"
		return 0
	fi
	out="$(sed '/^$/d' <<<"$out")"
	if [[ -n "$out" ]]; then printf '%s\n' "$out" >&2; fi
	if ((rc == 2)); then
		printf 'deploy.sh: the configuration is invalid (each problem is named above)\n' >&2
	else
		printf 'deploy.sh: could not check the configuration: check-config exited %d without "configuration valid" (its output is above)\n' "$rc" >&2
	fi
	return 1
}

# crn_field CRN N prints field N (0-based) of a CRN: 4 service, 5 region, 7 instance.
crn_field() {
	local -a f
	IFS=: read -r -a f <<<"$1"
	printf '%s' "${f[$2]:-}"
}

# ---- OpenWhisk -----------------------------------------------------------------------

# check_deploy_inputs validates every input before anything is called: the deploy
# tool's own variables here, the action's settings with check-config. It names each
# invalid variable; it never prints the value of a secret.
check_deploy_inputs() {
	local errors=0
	PACKAGE_NAME="${PACKAGE_NAME:-certbackup}"
	RECONCILE_CRON="${RECONCILE_CRON:-0 * * * *}"
	DEPLOY_TOOL="${DEPLOY_TOOL:-ibmcloud}"

	if [[ ! "$PACKAGE_NAME" =~ ^[A-Za-z0-9_][A-Za-z0-9_.@-]*$ ]]; then
		printf "deploy.sh: PACKAGE_NAME '%s' is not a valid OpenWhisk package name (letters, digits, _ . @ -)\n" "$PACKAGE_NAME" >&2
		errors=$((errors + 1))
	elif [[ "${PACKAGE_NAME,,}" == default ]]; then
		printf 'deploy.sh: PACKAGE_NAME must not be "default" (wskdeploy would deploy the actions without a package)\n' >&2
		errors=$((errors + 1))
	fi
	case "$DEPLOY_TOOL" in
	ibmcloud | wskdeploy) check_tools ;;
	*)
		printf "deploy.sh: DEPLOY_TOOL '%s' must be ibmcloud or wskdeploy\n" "$DEPLOY_TOOL" >&2
		errors=$((errors + 1))
		;;
	esac
	resolve_alias APIKEY CM_APIKEY || errors=$((errors + 1))
	resolve_alias ENDPOINTS CM_ENDPOINTS || errors=$((errors + 1))
	if ((errors == 0)); then
		check_config openwhisk || errors=$((errors + 1))
	fi
	if ((errors > 0)); then
		printf 'deploy.sh: nothing was built or deployed; run ./deploy.sh help for the variables\n' >&2
		exit 2
	fi
}

check_tools() {
	if [[ "$DEPLOY_TOOL" == wskdeploy ]]; then
		need_tool wskdeploy "DEPLOY_TOOL=wskdeploy needs the wskdeploy CLI"
		need_tool wsk "DEPLOY_TOOL=wskdeploy needs the wsk CLI to read the web action URL"
	else
		need_tool ibmcloud "install the IBM Cloud CLI and its cloud-functions plugin, or set DEPLOY_TOOL=wskdeploy"
	fi
	need_tool go "the Go toolchain checks the configuration and builds the action"
}

# export_manifest_vars exports every variable manifest.yaml interpolates, so that
# unset optional ones are exported as "" rather than looked up elsewhere.
export_manifest_vars() {
	local v
	for v in "${ACTION_VARS[@]}"; do
		export "${v}=${!v:-}"
	done
	export PACKAGE_NAME RECONCILE_CRON
}

cmd_build() {
	need_tool go "the Go toolchain builds the action"
	if [[ "$FUNCTION_PKG" == ./* && ! -d "$FUNCTION_PKG" ]]; then
		die 1 "$FUNCTION_PKG does not exist: nothing to build"
	fi
	mkdir -p "$BUILD_DIR"
	say "building $FUNCTION_PKG for linux/amd64 -> $EXEC"
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath -buildvcs=false \
		-ldflags "-s -w -buildid=" -o "$EXEC" "$FUNCTION_PKG"
	say "packing $ZIP"
	go_run ./internal/build/cmd/buildzip -exec "$EXEC" -out "$ZIP" \
		-manifest "$MANIFEST" -action notify,reconcile
}

# web_action_url prints the notify action's web URL with the .http extension.
web_action_url() {
	local out url
	if [[ "$DEPLOY_TOOL" == wskdeploy ]]; then
		out="$(wsk action get "$PACKAGE_NAME/notify" --url)" || return 1
	else
		out="$(ibmcloud fn action get "$PACKAGE_NAME/notify" --url)" || return 1
	fi
	url="$(printf '%s\n' "$out" | tr -d '\r' | grep -m1 -Eo 'https://[^[:space:]]+')" || return 1
	url="${url%/}"
	case "$url" in
	*.http | *.json | *.html | *.svg | *.text) url="${url%.*}" ;;
	esac
	printf '%s.http\n' "$url"
}

manual_channel_steps() {
	cat <<EOF
Register the Callback URL by hand:
  1. IBM Cloud console -> Resource list -> your Certificate Manager instance
     (the source instance: $SOURCE_INSTANCE_CRN)
  2. Notifications -> Add Notification Channel
  3. Channel type: Callback URL
  4. Paste the URL: $1
  5. Save
  6. In the channel's menu: Test Connection (the endpoint answers the test event)
EOF
}

# register_channel URL WHAT LOGS registers URL as the source's Callback URL channel
# and asks Certificate Manager to send it a test notification. It reports only what was
# observed: the exec's test-channel exits 0 only when the service confirmed the
# delivery, 3 when it accepted the request without saying. Sets CHANNEL_REPORT.
register_channel() {
	local url=$1 what=$2 logs=$3 rc=0
	local -a cli
	read -r -a cli <<<"${CERTBACKUP_CLI:-go_run $FUNCTION_PKG}"
	say "registering $url as a Callback URL channel of the source instance"
	if ! "${cli[@]}" register-channel --url "$url"; then
		manual_channel_steps "$url"
		printf 'deploy.sh: %s is deployed, but registering its Callback URL channel failed (above): notifications do not reach it yet.\n' "$what" >&2
		printf 'deploy.sh: register it by hand (steps above), or fix the cause and run ./deploy.sh %s again (what is in place stays as it is).\n' "$SUBCOMMAND" >&2
		exit 1
	fi
	say "asking Certificate Manager to send test_notification_channel to $url"
	"${cli[@]}" test-channel --url "$url" || rc=$?
	case "$rc" in
	0) CHANNEL_REPORT="Certificate Manager confirmed the delivery of a test notification to $url" ;;
	3) CHANNEL_REPORT="the test notification was requested but its delivery is NOT confirmed (Certificate Manager does not report it): look for test_notification_channel in $logs, or use Test Connection in the console" ;;
	*)
		manual_channel_steps "$url"
		printf 'deploy.sh: %s is deployed and its Callback URL channel registered, but the request for a test notification failed (exit %d, above): nothing shows that notifications arrive.\n' "$what" "$rc" >&2
		printf 'deploy.sh: use Test Connection in the console (step 6 above), then check %s.\n' "$logs" >&2
		exit 1
		;;
	esac
}

cmd_deploy() {
	check_deploy_inputs
	export_manifest_vars

	cmd_build

	if [[ "$DEPLOY_TOOL" == wskdeploy ]]; then
		say "deploying package $PACKAGE_NAME: wskdeploy --manifest $MANIFEST"
		wskdeploy --manifest "$MANIFEST" ||
			die 1 "wskdeploy failed (check ~/.wskprops: APIHOST, AUTH, NAMESPACE)"
	else
		say "deploying package $PACKAGE_NAME: ibmcloud fn deploy --manifest $MANIFEST"
		ibmcloud fn deploy --manifest "$MANIFEST" ||
			die 1 "ibmcloud fn deploy failed (check 'ibmcloud login' and 'ibmcloud fn property get --namespace')"
	fi

	local url
	url="$(web_action_url)" ||
		die 1 "deployed, but could not read the web action URL of $PACKAGE_NAME/notify; get it with '$DEPLOY_TOOL ... action get $PACKAGE_NAME/notify --url', append .http and register it as a Callback URL channel"
	say "Callback URL (web action notify):"
	printf '%s\n' "$url"

	register_channel "$url" "package $PACKAGE_NAME" "the activations of $PACKAGE_NAME/notify ('ibmcloud fn activation list $PACKAGE_NAME/notify')"
	say "done: package $PACKAGE_NAME deployed; $PACKAGE_NAME/reconcile runs on '$RECONCILE_CRON' (UTC); Callback URL channel registered; $CHANNEL_REPORT"
}

cmd_undeploy() {
	PACKAGE_NAME="${PACKAGE_NAME:-certbackup}"
	DEPLOY_TOOL="${DEPLOY_TOOL:-ibmcloud}"
	case "$DEPLOY_TOOL" in
	ibmcloud) need_tool ibmcloud "install the IBM Cloud CLI and its cloud-functions plugin" ;;
	wskdeploy) need_tool wskdeploy "DEPLOY_TOOL=wskdeploy needs the wskdeploy CLI" ;;
	*) die 2 "DEPLOY_TOOL '$DEPLOY_TOOL' must be ibmcloud or wskdeploy" ;;
	esac
	RECONCILE_CRON="${RECONCILE_CRON:-0 * * * *}"
	export_manifest_vars
	# wskdeploy reads every action's function file even to undeploy.
	if [[ ! -f "$ZIP" ]]; then
		say "$ZIP is missing and wskdeploy reads it even to undeploy: building it first"
		cmd_build
	fi
	if [[ "$DEPLOY_TOOL" == wskdeploy ]]; then
		say "undeploying package $PACKAGE_NAME: wskdeploy undeploy --manifest $MANIFEST"
		wskdeploy undeploy --manifest "$MANIFEST" || die 1 "wskdeploy undeploy failed"
	else
		say "undeploying package $PACKAGE_NAME: ibmcloud fn undeploy --manifest $MANIFEST"
		ibmcloud fn undeploy --manifest "$MANIFEST" || die 1 "ibmcloud fn undeploy failed"
	fi
	cat <<EOF
Now delete the Callback URL channel on the source Certificate Manager instance
(Notifications -> the channel whose URL ends in /$PACKAGE_NAME/notify.http -> Delete);
otherwise Certificate Manager keeps calling a URL that no longer exists.
EOF
}

# ---- Code Engine ---------------------------------------------------------------------

DONE=()

# step_failed WHAT [HINT] ends a Code Engine run after a failed call: it says what is in
# place, what failed and how to go on. Nothing after the failed step was called.
step_failed() {
	printf 'deploy.sh: %s failed (its output is above).\n' "$1" >&2
	if ((${#DONE[@]} > 0)); then
		printf 'deploy.sh: in place before it: %s.\n' "$(printf '%s; ' "${DONE[@]}" | sed 's/; $//')" >&2
	fi
	if [[ -n "${2:-}" ]]; then
		printf 'deploy.sh: %s\n' "$2" >&2
	fi
	printf 'deploy.sh: nothing after this step was done; fix the cause and run ./deploy.sh %s again (it looks before it creates and changes only what differs).\n' "$SUBCOMMAND" >&2
	exit 1
}

# run LABEL CMD... runs CMD with its output held back (it may be long, and some
# commands echo what they were given); the output is shown only when CMD fails.
run() {
	local label=$1 out rc=0
	shift
	out="$("$@" 2>&1)" || rc=$?
	if ((rc != 0)); then
		printf '%s\n' "$out" >&2
		step_failed "$label" "${HINT:-}"
	fi
}

done_step() {
	DONE+=("$1")
	say "$1"
}

sha256() {
	if command -v sha256sum >/dev/null 2>&1; then
		sha256sum | cut -c1-64
	else
		shasum -a 256 | cut -c1-64
	fi
}

# source_digest covers what the Dockerfile builds from (its build context, as
# .dockerignore lets it through): a change rebuilds the application and the job.
source_digest() {
	local f
	local -a dirs=()
	for f in function internal; do
		if [[ -d "$f" ]]; then dirs+=("$f"); fi
	done
	{
		for f in Dockerfile .dockerignore go.mod go.sum; do
			if [[ -f "$f" ]]; then printf '%s %s\n' "$f" "$(sha256 <"$f")"; fi
		done
		if ((${#dirs[@]} > 0)); then
			find "${dirs[@]}" -type f ! -name '*_test.go' ! -path '*/testdata/*' | LC_ALL=C sort |
				while IFS= read -r f; do printf '%s %s\n' "$f" "$(sha256 <"$f")"; done
		fi
	} | sha256
}

# check_codeengine_inputs validates every input before anything is called and sets the
# names and values the run uses. Secrets are never printed.
check_codeengine_inputs() {
	local errors=0 r source_region
	CE_PROJECT="${CE_PROJECT:-certbackup}"
	CE_APP="${CE_APP:-certbackup}"
	RECONCILE_CRON="${RECONCILE_CRON:-0 * * * *}"

	need_tool ibmcloud "install the IBM Cloud CLI with the code-engine, event-notifications and secrets-manager plug-ins"
	if [[ "$SUBCOMMAND" == codeengine ]]; then
		need_tool go "the Go toolchain runs the configuration check"
		if ! command -v sha256sum >/dev/null 2>&1 && ! command -v shasum >/dev/null 2>&1; then
			die 2 "sha256sum (or shasum) not found on PATH"
		fi
	fi
	if [[ "$SUBCOMMAND" == codeengine || -n "${EN_INSTANCE_CRN:-}" ]]; then
		need_tool jq "deploy.sh reads the Event Notifications and Secrets Manager CLIs' JSON output with jq"
	fi

	if [[ ! "$CE_PROJECT" =~ ^[[:alnum:]\ ._:-]{1,128}$ ]]; then
		printf "deploy.sh: CE_PROJECT '%s' is not a Code Engine project name (1 to 128 letters, digits, spaces, . : _ -)\n" "$CE_PROJECT" >&2
		errors=$((errors + 1))
	fi
	if [[ ! "$CE_APP" =~ ^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$ ]]; then
		printf "deploy.sh: CE_APP '%s' must be 1 to 32 lowercase letters, digits and -, start with a letter and end with a letter or digit (it also names the job, the secret, the configmap and the Event Notifications resources)\n" "$CE_APP" >&2
		errors=$((errors + 1))
	fi
	SOURCE_SERVICE="$(crn_field "${SOURCE_INSTANCE_CRN:-}" 4)"
	source_region="$(crn_field "${SOURCE_INSTANCE_CRN:-}" 5)"
	if [[ -z "${CE_REGION:-}" && -n "$source_region" ]]; then
		CE_REGION="$source_region"
		CE_REGION_FROM="the source instance's region"
	else
		CE_REGION_FROM="CE_REGION"
	fi
	if [[ -n "${CE_REGION:-}" ]]; then
		local known=0
		for r in "${CE_REGIONS[@]}"; do
			if [[ "$r" == "$CE_REGION" ]]; then known=1; fi
		done
		if ((known == 0)); then
			printf "deploy.sh: %s '%s' is not a Code Engine region; set CE_REGION to one of: %s\n" "$CE_REGION_FROM" "$CE_REGION" "${CE_REGIONS[*]}" >&2
			errors=$((errors + 1))
		fi
	elif [[ -n "${SOURCE_INSTANCE_CRN:-}" ]]; then
		printf 'deploy.sh: CE_REGION is not set and SOURCE_INSTANCE_CRN names no region\n' >&2
		errors=$((errors + 1))
	fi
	if [[ "$SUBCOMMAND" == codeengine ]]; then
		case "$SOURCE_SERVICE" in
		secrets-manager)
			if [[ -z "${EN_INSTANCE_CRN:-}" ]]; then
				printf 'deploy.sh: EN_INSTANCE_CRN is required: the source is a Secrets Manager instance, whose events reach the application through Event Notifications\n' >&2
				errors=$((errors + 1))
			fi
			;;
		cloudcerts)
			if [[ -n "${EN_INSTANCE_CRN:-}" ]]; then
				printf 'deploy.sh: EN_INSTANCE_CRN is set, but the source is a Certificate Manager instance, which notifies a Callback URL, not Event Notifications: unset it\n' >&2
				errors=$((errors + 1))
			fi
			;;
		esac
	fi
	if [[ -n "${EN_INSTANCE_CRN:-}" ]]; then
		if [[ ! "$EN_INSTANCE_CRN" =~ ^crn:v1:[a-z]+:[a-z]+:event-notifications:([a-z0-9-]+):a/[0-9a-f]+:([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})::$ ]]; then
			printf "deploy.sh: EN_INSTANCE_CRN '%s' is not the CRN of an Event Notifications instance (crn:v1:bluemix:public:event-notifications:<region>:a/<account>:<guid>::)\n" "$EN_INSTANCE_CRN" >&2
			errors=$((errors + 1))
		else
			EN_REGION="${BASH_REMATCH[1]}"
			EN_GUID="${BASH_REMATCH[2]}"
		fi
	fi
	if [[ "$SUBCOMMAND" == codeengine ]]; then
		resolve_alias APIKEY CM_APIKEY || errors=$((errors + 1))
		resolve_alias ENDPOINTS CM_ENDPOINTS || errors=$((errors + 1))
		check_config codeengine || errors=$((errors + 1))
	fi
	if ((errors > 0)); then
		printf 'deploy.sh: nothing was called in IBM Cloud; run ./deploy.sh help for the variables\n' >&2
		exit 2
	fi

	JOB_NAME="$CE_APP-reconcile"
	CRON_NAME="$CE_APP-reconcile-cron"
	SECRET_NAME="$CE_APP-secrets"
	CONFIGMAP_NAME="$CE_APP-config"
	EN_NAME="certbackup-$CE_APP"
	SOURCE_REGION="$source_region"
	SOURCE_GUID="$(crn_field "${SOURCE_INSTANCE_CRN:-}" 7)"
	SM_SOURCE_DESCRIPTION="registered by certbackup deploy.sh codeengine for app $CE_APP in project $CE_PROJECT"
}

# write_private_files puts each secret and setting in its own file under a directory
# only this user can read, removed on exit: the CLI reads them with --from-file, so no
# secret is ever on a command line.
write_private_files() {
	local k
	umask 077
	WORK="$(mktemp -d "${TMPDIR:-/tmp}/certbackup-deploy.XXXXXX")"
	trap 'rm -rf -- "$WORK"' EXIT
	mkdir "$WORK/secret" "$WORK/config"
	for k in "${CE_SECRET_KEYS[@]}"; do printf '%s' "${!k:-}" >"$WORK/secret/$k"; done
	for k in "${CE_CONFIG_KEYS[@]}"; do printf '%s' "${!k:-}" >"$WORK/config/$k"; done
}

# deploy_digest is a SHA-256 over everything deploy.sh puts into Code Engine (source,
# names, schedule, settings and secrets). The application and the job carry it in
# CERTBACKUP_DEPLOY_DIGEST, so that an unchanged second run changes nothing. The API key
# is part of its input, so it gives nothing away about any secret.
deploy_digest() {
	local f
	{
		printf 'certbackup codeengine v1\nsource %s\nnames %s %s %s %s %s\ncron %s\n' "$(source_digest)" \
			"$CE_APP" "$JOB_NAME" "$CRON_NAME" "$SECRET_NAME" "$CONFIGMAP_NAME" "$RECONCILE_CRON"
		for f in "$WORK"/secret/* "$WORK"/config/*; do
			printf '%s\0' "${f#"$WORK"/}"
			cat "$f"
			printf '\0'
		done
	} | sha256
}

# carries_digest KIND NAME: the application or job exists and carries DIGEST.
carries_digest() {
	local out
	out="$(ibmcloud ce "$1" get --name "$2" --output json 2>/dev/null)" || return 1
	[[ "$out" == *"$DIGEST"* ]]
}

ce_project() {
	HINT="check 'ibmcloud login' and that the code-engine plug-in is installed (ibmcloud plugin install code-engine)"
	run "ibmcloud target -r $CE_REGION" ibmcloud target -r "$CE_REGION"
	if ibmcloud ce project get --name "$CE_PROJECT" >/dev/null 2>&1; then
		run "selecting project $CE_PROJECT" ibmcloud ce project select --name "$CE_PROJECT"
		done_step "Code Engine project $CE_PROJECT in $CE_REGION: selected"
	else
		run "creating project $CE_PROJECT" ibmcloud ce project create --name "$CE_PROJECT"
		done_step "Code Engine project $CE_PROJECT in $CE_REGION: created"
	fi
	HINT=""
}

# ce_keyvalue KIND NAME DIR creates or updates a secret or configmap from the files in DIR.
ce_keyvalue() {
	local kind=$1 name=$2 dir=$3 f
	local -a from=()
	for f in "$dir"/*; do from+=(--from-file "${f##*/}=$f"); done
	if ibmcloud ce "$kind" get --name "$name" >/dev/null 2>&1; then
		if ((CE_CURRENT)); then
			done_step "$kind $name: unchanged"
			return
		fi
		run "updating $kind $name" ibmcloud ce "$kind" update --name "$name" "${from[@]}"
		done_step "$kind $name: updated"
	else
		run "creating $kind $name" ibmcloud ce "$kind" create --name "$name" "${from[@]}"
		done_step "$kind $name: created"
	fi
}

# ce_workload KIND NAME ARG creates or updates the application or the job: built from this
# directory with the Dockerfile, running `exec ARG`, its environment from the secret and
# the configmap.
ce_workload() {
	local kind=$1 name=$2 arg=$3
	local -a spec=(--build-source . --build-strategy dockerfile --argument "$arg"
		--env-from-secret "$SECRET_NAME" --env-from-configmap "$CONFIGMAP_NAME"
		--env "CERTBACKUP_DEPLOY_DIGEST=$DIGEST")
	# The server takes 16 requests at once (more get 503): Code Engine's hard limit per
	# instance stays at that, so that it scales out first; and an instance whose
	# configuration is invalid (GET /healthz answers 503) gets no traffic.
	if [[ "$kind" == application ]]; then
		spec+=(--port 8080 --concurrency 16 --probe-ready type=http --probe-ready path=/healthz)
	fi
	HINT="the build log: ibmcloud ce buildrun list, then ibmcloud ce buildrun logs --name <run>"
	if ibmcloud ce "$kind" get --name "$name" >/dev/null 2>&1; then
		if carries_digest "$kind" "$name"; then
			done_step "$kind $name: unchanged"
		else
			say "$kind $name: updating (a new build from this directory; this takes a few minutes)"
			run "updating $kind $name" ibmcloud ce "$kind" update --name "$name" "${spec[@]}"
			done_step "$kind $name: updated (exec $arg)"
		fi
	else
		say "$kind $name: creating (a build from this directory with the Dockerfile; this takes a few minutes)"
		run "creating $kind $name" ibmcloud ce "$kind" create --name "$name" "${spec[@]}"
		done_step "$kind $name: created (exec $arg)"
	fi
	HINT=""
}

# ce_health fetches GET /healthz: 200 means the application runs with a valid configuration.
ce_health() {
	local code rc=0
	if ! command -v curl >/dev/null 2>&1; then
		HEALTH="GET $APP_URL/healthz not checked (curl not found)"
		return
	fi
	code="$(curl --fail --silent --show-error --max-time 30 --retry 3 --retry-delay 2 \
		--output /dev/null --write-out '%{http_code}' "$APP_URL/healthz")" || rc=$?
	if ((rc != 0)); then
		step_failed "GET $APP_URL/healthz (answered ${code:-nothing}, curl exit $rc)" \
			"the application does not answer with 200: read 'ibmcloud ce application logs --name $CE_APP' and 'ibmcloud ce application events --name $CE_APP'"
	fi
	HEALTH="GET $APP_URL/healthz answered $code"
	done_step "$HEALTH"
}

ce_cron() {
	local out
	if out="$(ibmcloud ce subscription cron get --name "$CRON_NAME" --output json 2>/dev/null)"; then
		if [[ "$out" == *"\"$RECONCILE_CRON\""* && "$out" == *"\"$JOB_NAME\""* ]]; then
			done_step "cron subscription $CRON_NAME: unchanged (job $JOB_NAME on '$RECONCILE_CRON' UTC)"
			return
		fi
		run "updating cron subscription $CRON_NAME" ibmcloud ce subscription cron update --name "$CRON_NAME" \
			--destination "$JOB_NAME" --destination-type job --schedule "$RECONCILE_CRON" --time-zone UTC
		done_step "cron subscription $CRON_NAME: updated (job $JOB_NAME on '$RECONCILE_CRON' UTC)"
	else
		run "creating cron subscription $CRON_NAME" ibmcloud ce subscription cron create --name "$CRON_NAME" \
			--destination "$JOB_NAME" --destination-type job --schedule "$RECONCILE_CRON" --time-zone UTC
		done_step "cron subscription $CRON_NAME: created (job $JOB_NAME on '$RECONCILE_CRON' UTC)"
	fi
}

# en_find LIST NAME prints "id<US>description<US>destination_id<US>topic_id<US>topic_count"
# (US: the ASCII unit separator, which `read` never merges as it merges tabs) of the
# element of the Event Notifications LIST (destinations, topics, subscriptions, sources)
# whose name is NAME, or nothing. For sources NAME is matched against the id.
en_find() {
	local list=$1 name=$2 out
	local -a search=(--search "$name")
	if [[ "$list" == sources ]]; then search=(); fi
	out="$(ibmcloud event-notifications "$list" --instance-id "$EN_GUID" "${search[@]}" --limit 100 --output json 2>&1)" || {
		printf '%s\n' "$out" >&2
		step_failed "listing the Event Notifications $list" "$EN_HINT"
	}
	jq -r --arg k "$list" --arg n "$name" '
		[.[$k][]? | select(if $k == "sources" then .id == $n else .name == $n end)]
		| if length > 1 then error("more than one of the \($k) is named \($n)") else . end
		| .[] | [.id, (.description // ""), (.destination_id // ""), (.topic_id // ""), ((.topic_count // 0) | tostring)]
		| join("\u001f")' <<<"$out" || step_failed "reading the Event Notifications $list named $name" "$EN_HINT"
}

# en_create CMD ARGS... runs an Event Notifications create command and prints the new id.
en_create() {
	local out id
	out="$(ibmcloud event-notifications "$@" --output json 2>&1)" || {
		printf '%s\n' "$out" >&2
		step_failed "ibmcloud event-notifications $1" "$EN_HINT"
	}
	id="$(jq -r '.id // empty' <<<"$out" 2>/dev/null)" || true
	if [[ -z "$id" ]]; then
		step_failed "reading the id from 'ibmcloud event-notifications $1'" "its answer held no id"
	fi
	printf '%s\n' "$id"
}

en_delete() {
	run "ibmcloud event-notifications $1 --id $2" ibmcloud event-notifications "$1" --instance-id "$EN_GUID" --id "$2" --force
}

sm_registration() {
	local out current
	local -a sm=(--instance-id "$SOURCE_GUID" --region "$SOURCE_REGION")
	if out="$(ibmcloud secrets-manager notifications-registration "${sm[@]}" --output json 2>&1)"; then
		current="$(jq -r '.event_notifications_instance_crn // empty' <<<"$out" 2>/dev/null)" || true
		if [[ "$current" == "$EN_INSTANCE_CRN" ]]; then
			done_step "Secrets Manager -> Event Notifications registration: in place"
			return
		fi
		step_failed "checking the Secrets Manager registration" \
			"the source instance is registered with another Event Notifications instance ($current; a Secrets Manager instance has one), and deploy.sh does not change that: set EN_INSTANCE_CRN to it, or delete the registration yourself (ibmcloud secrets-manager notifications-registration-delete --instance-id $SOURCE_GUID --region $SOURCE_REGION)"
	fi
	local lookup=$out
	if ! out="$(ibmcloud secrets-manager notifications-registration-create "${sm[@]}" \
		--event-notifications-instance-crn "$EN_INSTANCE_CRN" \
		--event-notifications-source-name "$EN_NAME" \
		--event-notifications-source-description "$SM_SOURCE_DESCRIPTION" 2>&1)"; then
		printf '%s\n%s\n' "$lookup" "$out" >&2
		step_failed "registering the Secrets Manager instance with Event Notifications" \
			"it needs Manager on both instances and, once per account, the IAM authorization: ibmcloud iam authorization-policy-create secrets-manager event-notifications \"Event Source Manager\" --source-service-instance-id $SOURCE_GUID --target-service-instance-id $EN_GUID"
	fi
	done_step "Secrets Manager -> Event Notifications registration: created (source $EN_NAME)"
}

en_topic() {
	local sources digest desc found id="" description="" sub
	sources="$(jq -nc --arg crn "$SOURCE_INSTANCE_CRN" --arg q "'" \
		'[{id: $crn, rules: [("secret_created", "secret_rotated", "test_event")
			| {enabled: true, event_type_filter: "$.type == \($q)com.ibm.cloud.secrets-manager.\(.)\($q)"}]}]')"
	digest="$(printf '%s' "$sources" | sha256 | cut -c1-16)"
	desc="certbackup $CE_APP: secret_created, secret_rotated and test_event of the source (rules $digest)"
	found="$(en_find topics "$EN_NAME")"
	if [[ -n "$found" ]]; then IFS=$'\x1f' read -r id description _ <<<"$found"; fi
	if [[ -n "$id" && "$description" == *"(rules $digest)"* ]]; then
		TOPIC_ID="$id"
		done_step "Event Notifications topic $EN_NAME: unchanged"
		return
	fi
	if [[ -n "$id" ]]; then
		# The sources of a topic cannot be changed in place (en-cli.md, topic-update):
		# remove our subscription and the topic, then create both again.
		sub="$(en_find subscriptions "$EN_NAME")"
		if [[ -n "$sub" ]]; then en_delete subscription-delete "${sub%%$'\x1f'*}"; fi
		en_delete topic-delete "$id"
	fi
	TOPIC_ID="$(en_create topic-create --instance-id "$EN_GUID" --name "$EN_NAME" --description "$desc" --sources "$sources")"
	done_step "Event Notifications topic $EN_NAME: ${id:+re}created (secret_created, secret_rotated, test_event of the source)"
}

en_destination() {
	local digest desc found id="" description=""
	# The config holds the bearer token: written by jq from the environment (not from its
	# command line) into a 0600 file that the CLI reads with --config=@FILE.
	jq -n --arg url "$APP_URL/events" '{params: {url: $url, verb: "post",
		custom_headers: {Authorization: ("Bearer " + env.WEBHOOK_SECRET)},
		sensitive_headers: ["Authorization"]}}' >"$WORK/destination.json"
	digest="$({
		printf 'destination v1\n%s\n' "$APP_URL/events"
		cat "$WORK/secret/WEBHOOK_SECRET"
		printf '\0'
		cat "$WORK/secret/APIKEY"
	} | sha256 | cut -c1-16)"
	desc="certbackup $CE_APP: POST $APP_URL/events (config $digest)"
	found="$(en_find destinations "$EN_NAME")"
	if [[ -n "$found" ]]; then IFS=$'\x1f' read -r id description _ <<<"$found"; fi
	if [[ -n "$id" && "$description" == "$desc" ]]; then
		DESTINATION_ID="$id"
		done_step "Event Notifications webhook destination $EN_NAME: unchanged"
	elif [[ -n "$id" ]]; then
		run "updating Event Notifications destination $EN_NAME" ibmcloud event-notifications destination-update \
			--instance-id "$EN_GUID" --id "$id" --description "$desc" --config="@$WORK/destination.json"
		DESTINATION_ID="$id"
		done_step "Event Notifications webhook destination $EN_NAME: updated (POST $APP_URL/events)"
	else
		DESTINATION_ID="$(en_create destination-create --instance-id "$EN_GUID" --name "$EN_NAME" --type webhook \
			--description "$desc" --config="@$WORK/destination.json")"
		done_step "Event Notifications webhook destination $EN_NAME: created (POST $APP_URL/events, Authorization header sensitive)"
	fi
}

en_subscription() {
	local found id="" dest="" topic=""
	found="$(en_find subscriptions "$EN_NAME")"
	if [[ -n "$found" ]]; then IFS=$'\x1f' read -r id _ dest topic _ <<<"$found"; fi
	if [[ -n "$id" && "$dest" == "$DESTINATION_ID" && "$topic" == "$TOPIC_ID" ]]; then
		done_step "Event Notifications subscription $EN_NAME: unchanged"
		return
	fi
	# A subscription's topic and destination cannot be changed in place.
	if [[ -n "$id" ]]; then en_delete subscription-delete "$id"; fi
	en_create subscription-create --instance-id "$EN_GUID" --name "$EN_NAME" \
		--destination-id "$DESTINATION_ID" --topic-id "$TOPIC_ID" --attributes '{"signing_enabled":false}' >/dev/null
	done_step "Event Notifications subscription $EN_NAME: ${id:+re}created"
}

cmd_codeengine() {
	check_codeengine_inputs
	case "${PRIVATE_ENDPOINTS:-}" in
	"" | false | 0) ;;
	*) printf 'WARNING: PRIVATE_ENDPOINTS is set: Code Engine reaches the private endpoints of Secrets Manager only through a VPC private path (Private Path / VPE) you set up; without one, every call from the application and the job fails\n' >&2 ;;
	esac
	write_private_files
	DIGEST="$(deploy_digest)"

	ce_project
	CE_CURRENT=0
	if carries_digest application "$CE_APP" && carries_digest job "$JOB_NAME"; then CE_CURRENT=1; fi
	ce_keyvalue secret "$SECRET_NAME" "$WORK/secret"
	ce_keyvalue configmap "$CONFIGMAP_NAME" "$WORK/config"
	ce_workload application "$CE_APP" serve
	APP_URL="$(ibmcloud ce application get --name "$CE_APP" --output url 2>/dev/null | tr -d '\r' | grep -m1 -Eo 'https://[^[:space:]]+')" ||
		step_failed "reading the URL of application $CE_APP" "read it with: ibmcloud ce application get --name $CE_APP --output url"
	APP_URL="${APP_URL%/}"
	ce_health
	ce_workload job "$JOB_NAME" reconcile
	ce_cron

	local notified
	if [[ "$SOURCE_SERVICE" == secrets-manager ]]; then
		export IBMCLOUD_EN_ENDPOINT="${IBMCLOUD_EN_ENDPOINT:-https://$EN_REGION.event-notifications.cloud.ibm.com/event-notifications}"
		EN_HINT="check that the event-notifications plug-in is installed (ibmcloud plugin install event-notifications) and that you have Manager on $EN_INSTANCE_CRN"
		sm_registration
		en_topic
		en_destination
		en_subscription
		notified="Event Notifications is set up to deliver the source's secret_created, secret_rotated and test_event to POST $APP_URL/events (topic, destination and subscription $EN_NAME). Not observed: a delivery. To test: ibmcloud secrets-manager notifications-registration-test --instance-id $SOURCE_GUID --region $SOURCE_REGION, then look for test_event in ibmcloud ce application logs --name $CE_APP"
	else
		register_channel "$APP_URL/notify" "application $CE_APP" "'ibmcloud ce application logs --name $CE_APP'"
		notified="Callback URL $APP_URL/notify registered; $CHANNEL_REPORT"
	fi
	say "done: application $CE_APP at $APP_URL ($HEALTH); job $JOB_NAME runs on '$RECONCILE_CRON' (UTC)."
	say "$notified"
}

cmd_undeploy_codeengine() {
	check_codeengine_inputs
	if [[ -z "${CE_REGION:-}" ]]; then
		die 2 "set CE_REGION (or SOURCE_INSTANCE_CRN) to the region of project $CE_PROJECT"
	fi
	run "ibmcloud target -r $CE_REGION" ibmcloud target -r "$CE_REGION"
	if ibmcloud ce project get --name "$CE_PROJECT" >/dev/null 2>&1; then
		run "selecting project $CE_PROJECT" ibmcloud ce project select --name "$CE_PROJECT"
		run "deleting cron subscription $CRON_NAME" ibmcloud ce subscription cron delete --name "$CRON_NAME" --force --ignore-not-found
		run "deleting job $JOB_NAME" ibmcloud ce job delete --name "$JOB_NAME" --force --ignore-not-found
		run "deleting application $CE_APP" ibmcloud ce application delete --name "$CE_APP" --force --ignore-not-found
		run "deleting configmap $CONFIGMAP_NAME" ibmcloud ce configmap delete --name "$CONFIGMAP_NAME" --force --ignore-not-found
		run "deleting secret $SECRET_NAME" ibmcloud ce secret delete --name "$SECRET_NAME" --force --ignore-not-found
		done_step "Code Engine: removed (where present) $CRON_NAME, $JOB_NAME, $CE_APP, $CONFIGMAP_NAME, $SECRET_NAME"
		say "kept: project $CE_PROJECT (it may hold more than certbackup; to delete it and all it holds: ibmcloud ce project delete --name '$CE_PROJECT' --force)"
	else
		done_step "Code Engine: no project $CE_PROJECT in $CE_REGION, nothing to remove there"
	fi

	if [[ -n "${EN_INSTANCE_CRN:-}" ]]; then
		export IBMCLOUD_EN_ENDPOINT="${IBMCLOUD_EN_ENDPOINT:-https://$EN_REGION.event-notifications.cloud.ibm.com/event-notifications}"
		EN_HINT="check that the event-notifications plug-in is installed and that you have Manager on $EN_INSTANCE_CRN"
		local found list cmd
		for list in subscriptions:subscription-delete topics:topic-delete destinations:destination-delete; do
			found="$(en_find "${list%%:*}" "$EN_NAME")"
			if [[ -n "$found" ]]; then
				cmd="${list#*:}"
				en_delete "$cmd" "${found%%$'\x1f'*}"
				done_step "Event Notifications ${cmd%-delete} $EN_NAME: deleted"
			fi
		done
		if [[ "$SOURCE_SERVICE" == secrets-manager ]]; then
			local desc topics
			found="$(en_find sources "$SOURCE_INSTANCE_CRN")"
			if [[ -n "$found" ]]; then
				IFS=$'\x1f' read -r _ desc _ _ topics <<<"$found"
				if [[ "$desc" == "$SM_SOURCE_DESCRIPTION" && "$topics" == 0 ]]; then
					run "deleting the Secrets Manager registration" ibmcloud secrets-manager notifications-registration-delete \
						--instance-id "$SOURCE_GUID" --region "$SOURCE_REGION"
					done_step "Secrets Manager -> Event Notifications registration: deleted"
				elif [[ "$desc" == "$SM_SOURCE_DESCRIPTION" ]]; then
					say "kept: the Secrets Manager registration (deploy.sh made it, but $topics other topic(s) use the source)"
				else
					say "kept: the Secrets Manager registration (deploy.sh for app $CE_APP did not make it)"
				fi
			fi
		fi
	elif [[ "$SOURCE_SERVICE" == secrets-manager ]]; then
		say "EN_INSTANCE_CRN is not set: the Event Notifications destination, topic and subscription $EN_NAME were not looked for"
	fi
	if [[ "$SOURCE_SERVICE" == cloudcerts ]]; then
		cat <<EOF
Now delete the Callback URL channel on the source Certificate Manager instance
(Notifications -> the channel whose URL ends in /notify -> Delete);
otherwise Certificate Manager keeps calling a URL that no longer exists.
EOF
	fi
	say "done"
}

main() {
	local sub="${1:-deploy}"
	if (($# > 0)); then shift; fi
	SUBCOMMAND="$sub"
	case "$sub" in
	deploy)
		(($# == 0)) || die 2 "deploy takes no arguments"
		cmd_deploy
		;;
	build)
		(($# == 0)) || die 2 "build takes no arguments"
		cmd_build
		;;
	codeengine)
		(($# == 0)) || die 2 "codeengine takes no arguments"
		cmd_codeengine
		;;
	undeploy)
		(($# <= 1)) || die 2 "undeploy takes at most one argument"
		case "${1:-openwhisk}" in
		openwhisk) cmd_undeploy ;;
		codeengine)
			SUBCOMMAND="undeploy codeengine"
			cmd_undeploy_codeengine
			;;
		*) die 2 "undeploy takes openwhisk (the default) or codeengine, not '$1'" ;;
		esac
		;;
	local)
		case "${1:-}" in
		"" | -* | sm | codeengine) ;;
		*) die 2 "local takes sm or codeengine (or nothing, for the OpenWhisk demo), not '$1'" ;;
		esac
		cmd_build
		CGO_ENABLED=0 exec go run -trimpath -buildvcs=false ./internal/devtools/cmd/localdemo --zip "$ZIP" --exec "$EXEC" "$@"
		;;
	help | -h | --help)
		usage
		exit 0
		;;
	*)
		printf "deploy.sh: unknown subcommand '%s'\n" "$sub" >&2
		usage >&2
		exit 2
		;;
	esac
}

main "$@"
