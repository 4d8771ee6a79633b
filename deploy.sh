#!/usr/bin/env bash
# deploy.sh: build and deploy certbackup to IBM Cloud Functions (Apache OpenWhisk).
#
#   ./deploy.sh build            build build/exec and build/action.zip
#   ./deploy.sh [deploy]         check inputs, build, deploy manifest.yaml, print the
#                                Callback URL, register it on the source instance and test it
#   ./deploy.sh undeploy         remove what manifest.yaml deployed
#   ./deploy.sh local [--serve]  build, then run the local demo on build/action.zip
#   ./deploy.sh help             usage
#
# Secrets (CM_APIKEY, BACKUP_APIKEY) are passed to the tools through the environment
# only and are never printed. Run `./deploy.sh help` for the variables.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"

readonly MANIFEST=manifest.yaml
readonly BUILD_DIR=build
readonly ZIP="$BUILD_DIR/action.zip"
readonly EXEC="$BUILD_DIR/exec"
# The Go package of the action binary. Overridable for tests only.
readonly FUNCTION_PKG="${CERTBACKUP_FUNCTION_PKG:-./function}"
readonly REQUIRED_VARS=(CM_APIKEY SOURCE_INSTANCE_CRN BACKUP_INSTANCE_CRNS)
readonly OPTIONAL_VARS=(BACKUP_APIKEY SOURCE_PUBLIC_KEY IAM_URL CM_ENDPOINTS PRIVATE_ENDPOINTS)

usage() {
	cat >&2 <<'EOF'
usage: ./deploy.sh [deploy|build|undeploy|local [--serve]|help]

  deploy (default)  check the variables below, build, deploy manifest.yaml, print the
                    web action's Callback URL (.http), register it as a Callback URL
                    notification channel on the source instance and test it
  build             build build/exec (linux/amd64) and build/action.zip (exec + exec.env,
                    exec.env from the runtime of the notify action in manifest.yaml)
  undeploy          remove the package, actions, trigger and rule of manifest.yaml
  local [--serve]   build, then run the local demo (go run ./internal/devtools/cmd/localdemo)
  help              this text

required for deploy:
  CM_APIKEY             IBM Cloud API key for Certificate Manager (action parameter apikey; secret)
  SOURCE_INSTANCE_CRN   CRN of the Certificate Manager instance to back up
  BACKUP_INSTANCE_CRNS  CRN(s) of the backup Certificate Manager instance(s)
optional:
  BACKUP_APIKEY         API key for the backup instances, when not CM_APIKEY (secret)
  SOURCE_PUBLIC_KEY     PEM public key that signs the source instance's notifications
  IAM_URL               IAM endpoint (default: the action's built-in default)
  CM_ENDPOINTS          JSON object region -> Certificate Manager URL
  PRIVATE_ENDPOINTS     use private endpoints
  RECONCILE_CRON        5-field UTC cron of the reconcile alarm (default "0 * * * *")
  PACKAGE_NAME          OpenWhisk package (default certbackup)
  DEPLOY_TOOL           ibmcloud (default: ibmcloud fn deploy) or wskdeploy (wskdeploy + wsk)

Before deploying with ibmcloud: `ibmcloud login` and `ibmcloud fn property set --namespace <ns>`.
EOF
}

say() { printf '==> %s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() {
	local code=$1
	shift
	printf 'deploy.sh: %s\n' "$*" >&2
	exit "$code"
}

need_tool() {
	command -v "$1" >/dev/null 2>&1 || die 2 "$1 not found on PATH ($2)"
}

describe() {
	case "$1" in
	CM_APIKEY) echo "IBM Cloud API key that reads the source and writes the backup Certificate Manager instances" ;;
	SOURCE_INSTANCE_CRN) echo "CRN of the Certificate Manager instance to back up" ;;
	BACKUP_INSTANCE_CRNS) echo "CRN(s) of the backup Certificate Manager instance(s)" ;;
	*) echo "see ./deploy.sh help" ;;
	esac
}

# check_deploy_inputs validates every input before anything is called. It names
# each missing or invalid variable; it never prints the value of a secret.
check_deploy_inputs() {
	local v errors=0
	for v in "${REQUIRED_VARS[@]}"; do
		if [[ -z "${!v:-}" ]]; then
			printf 'deploy.sh: required environment variable %s is not set (%s)\n' "$v" "$(describe "$v")" >&2
			errors=$((errors + 1))
		fi
	done

	PACKAGE_NAME="${PACKAGE_NAME:-certbackup}"
	RECONCILE_CRON="${RECONCILE_CRON:-0 * * * *}"
	DEPLOY_TOOL="${DEPLOY_TOOL:-ibmcloud}"

	if [[ ! "$PACKAGE_NAME" =~ ^[A-Za-z0-9_][A-Za-z0-9_.@-]*$ ]]; then
		printf 'deploy.sh: PACKAGE_NAME %q is not a valid OpenWhisk package name (letters, digits, _ . @ -)\n' "$PACKAGE_NAME" >&2
		errors=$((errors + 1))
	elif [[ "${PACKAGE_NAME,,}" == default ]]; then
		printf 'deploy.sh: PACKAGE_NAME must not be "default" (wskdeploy would deploy the actions without a package)\n' >&2
		errors=$((errors + 1))
	fi
	local -a fields
	read -r -a fields <<<"$RECONCILE_CRON"
	if ((${#fields[@]} != 5)); then
		printf 'deploy.sh: RECONCILE_CRON %q must have exactly 5 fields (minute hour day month weekday, UTC)\n' "$RECONCILE_CRON" >&2
		errors=$((errors + 1))
	fi
	if [[ -n "${CM_ENDPOINTS:-}" && ! "$CM_ENDPOINTS" =~ ^[[:space:]]*\{.*\}[[:space:]]*$ ]]; then
		printf 'deploy.sh: CM_ENDPOINTS must be a JSON object mapping region to URL, e.g. {"us-south":"https://..."}\n' >&2
		errors=$((errors + 1))
	fi
	case "$DEPLOY_TOOL" in
	ibmcloud | wskdeploy) ;;
	*)
		printf 'deploy.sh: DEPLOY_TOOL %q must be ibmcloud or wskdeploy\n' "$DEPLOY_TOOL" >&2
		errors=$((errors + 1))
		;;
	esac
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
	need_tool go "the Go toolchain builds the action"
}

# export_manifest_vars exports every variable manifest.yaml interpolates, so that
# unset optional ones are exported as "" rather than looked up elsewhere.
export_manifest_vars() {
	local v
	for v in "${REQUIRED_VARS[@]}" "${OPTIONAL_VARS[@]}"; do
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
	# Same cgo and path flags as the action build, so that a cold build cache compiles
	# the shared packages once, not three times (./deploy.sh local stays under a minute).
	CGO_ENABLED=0 go run -trimpath -buildvcs=false ./internal/build/cmd/buildzip -exec "$EXEC" -out "$ZIP" \
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
  6. In the channel's menu: Test Connection (the action answers the test event)
EOF
}

cmd_deploy() {
	check_deploy_inputs
	check_tools
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

	local -a cli
	read -r -a cli <<<"${CERTBACKUP_CLI:-go run $FUNCTION_PKG}"
	say "registering the Callback URL channel on the source instance"
	if ! "${cli[@]}" register-channel --url "$url"; then
		warn "the deployment succeeded, but registering the Callback URL channel failed"
		manual_channel_steps "$url"
		exit 0
	fi
	say "asking Certificate Manager to test the channel"
	if ! "${cli[@]}" test-channel --url "$url"; then
		warn "the channel is registered, but Certificate Manager's test notification failed;"
		warn "check the action's logs ('ibmcloud fn activation list') and SOURCE_PUBLIC_KEY, then use Test Connection in the console"
		manual_channel_steps "$url"
		exit 0
	fi
	say "done: notifications from the source instance now reach $PACKAGE_NAME/notify; $PACKAGE_NAME/reconcile runs on '$RECONCILE_CRON' (UTC)"
}

cmd_undeploy() {
	PACKAGE_NAME="${PACKAGE_NAME:-certbackup}"
	DEPLOY_TOOL="${DEPLOY_TOOL:-ibmcloud}"
	case "$DEPLOY_TOOL" in
	ibmcloud) need_tool ibmcloud "install the IBM Cloud CLI and its cloud-functions plugin" ;;
	wskdeploy) need_tool wskdeploy "DEPLOY_TOOL=wskdeploy needs the wskdeploy CLI" ;;
	*) die 2 "DEPLOY_TOOL $(printf '%q' "$DEPLOY_TOOL") must be ibmcloud or wskdeploy" ;;
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

main() {
	local sub="${1:-deploy}"
	if (($# > 0)); then shift; fi
	case "$sub" in
	deploy)
		(($# == 0)) || die 2 "deploy takes no arguments"
		cmd_deploy
		;;
	build)
		(($# == 0)) || die 2 "build takes no arguments"
		cmd_build
		;;
	undeploy)
		(($# == 0)) || die 2 "undeploy takes no arguments"
		cmd_undeploy
		;;
	local)
		cmd_build
		CGO_ENABLED=0 exec go run -trimpath -buildvcs=false ./internal/devtools/cmd/localdemo --zip "$ZIP" "$@"
		;;
	help | -h | --help)
		usage
		exit 2
		;;
	*)
		printf 'deploy.sh: unknown subcommand %q\n' "$sub" >&2
		usage
		exit 2
		;;
	esac
}

main "$@"
