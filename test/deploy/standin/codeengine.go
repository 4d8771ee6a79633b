package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/certbackup/certbackup/test/deploy/fakecloud"
)

// cloud is the pretend IBM Cloud for one invocation.
type cloud struct{ *fakecloud.State }

// withState loads $STUB_STATE, runs fn and saves the state when fn succeeds.
func withState(fn func(*cloud) error) error {
	dir := os.Getenv("STUB_STATE")
	if dir == "" {
		return fail(70, "standin: STUB_STATE is not set")
	}
	s, err := fakecloud.Load(dir)
	if err != nil {
		return fail(70, "standin: %v", err)
	}
	if err := fn(&cloud{s}); err != nil {
		return err
	}
	return s.Save(dir)
}

func notFound(format string, args ...any) error {
	return fail(1, "FAILED\n"+format+" not found", args...)
}

func printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	fmt.Println(string(b))
	return nil
}

// target is `ibmcloud target -r REGION`.
func (c *cloud) target(args []string) error {
	f, err := parseFlags(args, spec{"r": str})
	if err != nil {
		// The real flag is -r; parseFlags only knows long flags.
		if len(args) == 2 && args[0] == "-r" {
			f = flagSet{vals: map[string][]string{"r": {args[1]}}}
		} else {
			return fail(2, "target: %v", err)
		}
	}
	c.Region = f.get("r")
	fmt.Printf("Targeted region %s\n", c.Region)
	return nil
}

// probeKeys are the NAME of --probe-ready NAME=VALUE (cmd_defs.md, app-probes.md).
var probeKeys = map[string]bool{"type": true, "port": true, "path": true, "interval": true, "initial-delay": true, "timeout": true, "failure-threshold": true}

// Flags shared by several Code Engine commands (cmd_defs.md).
var (
	ceWait     = spec{"wait": boolean, "no-wait": boolean, "wait-timeout": str}
	ceOut      = spec{"output": str, "quiet": boolean}
	ceDelete   = spec{"name": str, "force": boolean, "ignore-not-found": boolean, "quiet": boolean}
	ceKVCreate = spec{"name": str, "from-file": multi, "from-env-file": multi, "from-literal": multi}
	ceBuild    = spec{
		"image": str, "build-source": str, "build-strategy": str, "build-context-dir": str,
		"build-dockerfile": str, "build-size": str, "build-timeout": str,
		"argument": multi, "command": multi, "env": multi, "env-from-secret": multi,
		"env-from-configmap": multi, "cpu": str, "memory": str, "force": boolean,
	}
	ceAppOnly    = spec{"port": str, "min-scale": str, "max-scale": str, "concurrency": str, "concurrency-target": str, "request-timeout": str, "scale-down-delay": str, "visibility": str, "probe-ready": multi, "probe-live": multi}
	ceJobOnly    = spec{"maxexecutiontime": str, "retrylimit": str, "mode": str}
	ceUpdateOnly = spec{"arguments-clear": boolean, "commands-clear": boolean, "env-rm": multi, "env-from-secret-rm": multi, "env-from-configmap-rm": multi, "rebuild": boolean}
)

func join(specs ...spec) spec {
	out := spec{}
	for _, s := range specs {
		for k, v := range s {
			out[k] = v
		}
	}
	return out
}

var (
	appNameRE  = regexp.MustCompile(`^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$`)
	kvNameRE   = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$`)
	envRE      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)
	portRE     = regexp.MustCompile(`^((h2c|http1):)?[0-9]+$`)
	projNameRE = regexp.MustCompile(`^[\p{L}\p{N} .:_-]{1,128}$`)
)

// codeEngine is `ibmcloud ce ...`.
func (c *cloud) codeEngine(args []string) error {
	if len(args) < 2 {
		return fail(2, "ce: want a resource and an action")
	}
	res, act, rest := args[0], args[1], args[2:]
	if res == "app" {
		res = "application"
	}
	if res == "subscription" {
		if act != "cron" || len(rest) == 0 {
			return fail(2, "ce subscription: only cron is simulated")
		}
		res, act, rest = "cron", rest[0], rest[1:]
	}
	if res == "project" {
		return c.project(act, rest)
	}
	p, err := c.currentProject()
	if err != nil {
		return err
	}
	switch res {
	case "secret":
		return c.keyValue(p.Secrets, "secret", act, rest)
	case "configmap":
		return c.keyValue(p.ConfigMaps, "configmap", act, rest)
	case "application":
		return c.workload(p, p.Apps, "application", act, rest)
	case "job":
		return c.workload(p, p.Jobs, "job", act, rest)
	case "cron":
		return c.cron(p, act, rest)
	}
	return fail(2, "ce: unknown resource %q", res)
}

func (c *cloud) currentProject() (*fakecloud.Project, error) {
	p := c.Projects[c.Selected]
	if c.Selected == "" || p == nil || p.Region != c.Region {
		return nil, fail(1, "FAILED\nNo project is selected in region %q: run 'ibmcloud ce project select'", c.Region)
	}
	return p, nil
}

func (c *cloud) project(act string, args []string) error {
	switch act {
	case "get":
		f, err := parseFlags(args, join(spec{"name": str}, ceOut))
		if err != nil {
			return fail(2, "project get: %v", err)
		}
		p := c.Projects[f.get("name")]
		if p == nil || p.Region != c.Region {
			return notFound("Project '%s'", f.get("name"))
		}
		if f.get("output") == "json" {
			return printJSON(map[string]any{"name": f.get("name"), "region": p.Region, "status": "active"})
		}
		fmt.Printf("Name: %s\nRegion: %s\nStatus: active\n", f.get("name"), p.Region)
		return nil
	case "create":
		f, err := parseFlags(args, join(spec{"name": str, "no-select": boolean, "tag": multi, "endpoint": str}, ceOut, ceWait))
		if err != nil {
			return fail(2, "project create: %v", err)
		}
		name := f.get("name")
		if !projNameRE.MatchString(name) {
			return fail(1, "FAILED\ninvalid project name %q", name)
		}
		if _, ok := c.Projects[name]; ok {
			return fail(1, "FAILED\nA project with the name '%s' already exists", name)
		}
		if c.Region == "" {
			return fail(1, "FAILED\nno region targeted: run 'ibmcloud target -r REGION'")
		}
		c.Projects[name] = fakecloud.NewProject(c.Region)
		if !f.on("no-select") {
			c.Selected = name
		}
		fmt.Printf("Creating project '%s'...\nOK\n", name)
		return nil
	case "select":
		f, err := parseFlags(args, spec{"name": str, "quiet": boolean, "endpoint": str, "kubecfg": boolean})
		if err != nil {
			return fail(2, "project select: %v", err)
		}
		p := c.Projects[f.get("name")]
		if p == nil || p.Region != c.Region {
			return notFound("Project '%s'", f.get("name"))
		}
		c.Selected = f.get("name")
		fmt.Printf("Selecting project '%s'...\nOK\n", f.get("name"))
		return nil
	}
	return fail(2, "ce project: %q is not simulated", act)
}

// keyValue is secret and configmap get|create|update|delete.
func (c *cloud) keyValue(m map[string]*fakecloud.KeyValue, kind, act string, args []string) error {
	isSecret := kind == "secret"
	switch act {
	case "get":
		sp := join(spec{"name": str}, ceOut)
		if isSecret {
			sp["decode"] = boolean
		}
		f, err := parseFlags(args, sp)
		if err != nil {
			return fail(2, "%s get: %v", kind, err)
		}
		kv := m[f.get("name")]
		if kv == nil {
			return notFound("%s '%s'", kind, f.get("name"))
		}
		// Like the real CLI: secret data is shown base64-encoded unless --decode.
		data := map[string]string{}
		for k, v := range kv.Data {
			if isSecret && !f.on("decode") {
				v = base64.StdEncoding.EncodeToString([]byte(v))
			}
			data[k] = v
		}
		if f.get("output") == "json" {
			return printJSON(map[string]any{"name": f.get("name"), "data": data})
		}
		fmt.Printf("Name: %s\nData:\n---\n", f.get("name"))
		for _, k := range sortedKeys(data) {
			fmt.Printf("%s: %s\n", k, data[k])
		}
		return nil
	case "create", "update":
		sp := join(ceKVCreate, ceOut)
		if act == "update" {
			sp["rm"] = multi
		}
		if isSecret && act == "create" {
			sp["format"] = str
		}
		f, err := parseFlags(args, sp)
		if err != nil {
			return fail(2, "%s %s: %v", kind, act, err)
		}
		name := f.get("name")
		if !kvNameRE.MatchString(name) {
			return fail(1, "FAILED\ninvalid %s name %q", kind, name)
		}
		kv := m[name]
		switch {
		case act == "create" && kv != nil:
			return fail(1, "FAILED\n%s '%s' already exists", kind, name)
		case act == "update" && kv == nil:
			return notFound("%s '%s'", kind, name)
		case kv == nil:
			kv = &fakecloud.KeyValue{Data: map[string]string{}}
		}
		data, err := readKeyValues(f, isSecret)
		if err != nil {
			return err
		}
		if len(data) == 0 && len(f.all("rm")) == 0 {
			return fail(2, "%s %s: one of --from-file, --from-env-file, --from-literal is required", kind, act)
		}
		for k, v := range data {
			kv.Data[k] = v
		}
		for _, k := range f.all("rm") {
			delete(kv.Data, k)
		}
		m[name] = kv
		fmt.Printf("%s %s '%s'...\nOK\n", strings.ToUpper(act[:1])+act[1:]+"d", kind, name)
		return nil
	case "delete":
		return c.deleteFrom(m, kind, args)
	}
	return fail(2, "ce %s: %q is not simulated", kind, act)
}

// readKeyValues reads --from-file [KEY=]FILE, --from-env-file FILE and --from-literal
// KEY=VALUE. A file holding a secret must not be readable by group or others.
func readKeyValues(f flagSet, isSecret bool) (map[string]string, error) {
	data := map[string]string{}
	read := func(path string) (string, error) {
		fi, err := os.Stat(path)
		if err != nil {
			return "", fail(1, "FAILED\n%v", err)
		}
		if isSecret && fi.Mode().Perm()&0o077 != 0 {
			return "", fail(1, "standin: secret file %s has mode %v: readable by group or others", path, fi.Mode().Perm())
		}
		b, err := os.ReadFile(path)
		return string(b), err
	}
	for _, a := range f.all("from-file") {
		key, path, ok := strings.Cut(a, "=")
		if !ok {
			key, path = filepath.Base(a), a
		}
		v, err := read(path)
		if err != nil {
			return nil, err
		}
		data[key] = v
	}
	for _, path := range f.all("from-env-file") {
		v, err := read(path)
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(v, "\n") {
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, val, ok := strings.Cut(line, "=")
			if !ok {
				return nil, fail(1, "FAILED\n%s: line %q is not KEY=VALUE", path, line)
			}
			data[k] = val
		}
	}
	for _, l := range f.all("from-literal") {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			return nil, fail(1, "FAILED\n--from-literal %q is not KEY=VALUE", l)
		}
		data[k] = v
	}
	return data, nil
}

func (c *cloud) deleteFrom(m any, kind string, args []string) error {
	sp := ceDelete
	if kind == "application" || kind == "cron" {
		sp = join(ceDelete, ceWait)
	}
	if kind == "job" {
		sp = join(ceDelete, spec{"orphan-job-runs": boolean})
	}
	f, err := parseFlags(args, sp)
	if err != nil {
		return fail(2, "%s delete: %v", kind, err)
	}
	if !f.on("force") {
		return fail(1, "FAILED\n%s delete: confirmation needed and there is no terminal (use --force)", kind)
	}
	name := f.get("name")
	var existed bool
	switch m := m.(type) {
	case map[string]*fakecloud.KeyValue:
		_, existed = m[name]
		delete(m, name)
	case map[string]*fakecloud.Workload:
		_, existed = m[name]
		delete(m, name)
	case map[string]*fakecloud.Cron:
		_, existed = m[name]
		delete(m, name)
	}
	if !existed && !f.on("ignore-not-found") {
		return notFound("%s '%s'", kind, name)
	}
	fmt.Printf("Deleting %s '%s'...\nOK\n", kind, name)
	return nil
}

// workload is application and job get|create|update|delete.
func (c *cloud) workload(p *fakecloud.Project, m map[string]*fakecloud.Workload, kind, act string, args []string) error {
	isApp := kind == "application"
	only := ceJobOnly
	if isApp {
		only = ceAppOnly
	}
	switch act {
	case "get":
		f, err := parseFlags(args, join(spec{"name": str}, ceOut))
		if err != nil {
			return fail(2, "%s get: %v", kind, err)
		}
		w := m[f.get("name")]
		if w == nil {
			return notFound("%s '%s'", kind, f.get("name"))
		}
		switch f.get("output") {
		case "url":
			if !isApp {
				return fail(2, "job get: --output url is for applications")
			}
			fmt.Println(w.URL)
			return nil
		case "json":
			return printJSON(map[string]any{"name": f.get("name"), "spec": w})
		case "":
			fmt.Printf("Name: %s\nRevision: %d\nURL: %s\n", f.get("name"), w.Revision, w.URL)
			return nil
		}
		return fail(2, "%s get: --output %q is not simulated", kind, f.get("output"))
	case "create", "update":
		sp := join(spec{"name": str}, ceBuild, only, ceOut, ceWait)
		if act == "update" {
			sp = join(sp, ceUpdateOnly)
		}
		f, err := parseFlags(args, sp)
		if err != nil {
			return fail(2, "%s %s: %v", kind, act, err)
		}
		name := f.get("name")
		if !appNameRE.MatchString(name) {
			return fail(1, "FAILED\ninvalid %s name %q", kind, name)
		}
		w := m[name]
		switch {
		case act == "create" && w != nil:
			return fail(1, "FAILED\n%s '%s' already exists", kind, name)
		case act == "update" && w == nil:
			return notFound("%s '%s'", kind, name)
		case act == "create":
			if !f.has("image") && !f.has("build-source") {
				return fail(2, "%s create: --image or --build-source is required", kind)
			}
			w = &fakecloud.Workload{Env: map[string]string{}}
		}
		if err := c.applyWorkload(p, w, f); err != nil {
			return err
		}
		w.Revision++
		if isApp {
			w.URL = fmt.Sprintf("https://%s.stubsubdomain.%s.codeengine.appdomain.cloud", name, p.Region)
		}
		m[name] = w
		fmt.Printf("%sing %s '%s'...\nOK\n", strings.TrimSuffix(strings.ToUpper(act[:1])+act[1:], "e"), kind, name)
		if isApp {
			fmt.Println(w.URL)
		}
		return nil
	case "delete":
		return c.deleteFrom(m, kind, args)
	}
	return fail(2, "ce %s: %q is not simulated", kind, act)
}

// applyWorkload checks and applies create/update flags, as the real CLI would: the
// build source must hold the Dockerfile, referenced secrets and configmaps must exist.
func (c *cloud) applyWorkload(p *fakecloud.Project, w *fakecloud.Workload, f flagSet) error {
	if src := f.get("build-source"); src != "" {
		strategy := f.get("build-strategy")
		if strategy == "" {
			strategy = "dockerfile"
		}
		if strategy != "dockerfile" && strategy != "buildpacks" {
			return fail(1, "FAILED\ninvalid --build-strategy %q", strategy)
		}
		abs, err := filepath.Abs(src)
		if err != nil {
			return err
		}
		if strategy == "dockerfile" {
			df := f.get("build-dockerfile")
			if df == "" {
				df = "Dockerfile"
			}
			if _, err := os.Stat(filepath.Join(abs, df)); err != nil {
				return fail(1, "FAILED\nbuild source %s has no %s", src, df)
			}
		}
		w.BuildSource, w.BuildStrategy = abs, strategy
	}
	if f.on("arguments-clear") {
		w.Arguments = nil
	}
	if a := f.all("argument"); len(a) > 0 {
		w.Arguments = a
	}
	if port := f.get("port"); port != "" {
		if !portRE.MatchString(port) {
			return fail(1, "FAILED\ninvalid --port %q", port)
		}
		w.Port = port
	}
	if c := f.get("concurrency"); c != "" {
		w.Concurrency = c
	}
	for _, pr := range f.all("probe-ready") {
		if k, _, ok := strings.Cut(pr, "="); !ok || !probeKeys[k] {
			return fail(1, "FAILED\ninvalid --probe-ready %q", pr)
		}
		w.ProbeReady = append(w.ProbeReady, pr)
	}
	for _, e := range f.all("env") {
		if !envRE.MatchString(e) {
			return fail(1, "FAILED\n--env %q is not NAME=VALUE", e)
		}
		k, v, _ := strings.Cut(e, "=")
		w.Env[k] = v
	}
	for _, k := range f.all("env-rm") {
		delete(w.Env, k)
	}
	for _, s := range f.all("env-from-secret") {
		if p.Secrets[s] == nil && !f.on("force") {
			return notFound("secret '%s' (referenced by --env-from-secret)", s)
		}
		w.EnvFromSecret = addOnce(w.EnvFromSecret, s)
	}
	for _, s := range f.all("env-from-configmap") {
		if p.ConfigMaps[s] == nil && !f.on("force") {
			return notFound("configmap '%s' (referenced by --env-from-configmap)", s)
		}
		w.EnvFromConfigMap = addOnce(w.EnvFromConfigMap, s)
	}
	return nil
}

func addOnce(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// cron is `ibmcloud ce subscription cron get|create|update|delete`.
func (c *cloud) cron(p *fakecloud.Project, act string, args []string) error {
	body := spec{"destination": str, "destination-type": str, "schedule": str, "time-zone": str,
		"data": str, "data-base64": str, "content-type": str, "extension": multi, "path": str}
	switch act {
	case "get":
		f, err := parseFlags(args, join(spec{"name": str}, ceOut))
		if err != nil {
			return fail(2, "subscription cron get: %v", err)
		}
		cr := p.Crons[f.get("name")]
		if cr == nil {
			return notFound("cron source '%s'", f.get("name"))
		}
		if f.get("output") == "json" {
			return printJSON(map[string]any{"name": f.get("name"), "spec": cr})
		}
		fmt.Printf("Name: %s\nDestination: %s\nSchedule: %s\nTime Zone: %s\n", f.get("name"), cr.Destination, cr.Schedule, cr.TimeZone)
		return nil
	case "create", "update":
		sp := join(spec{"name": str}, body, ceOut)
		if act == "create" {
			sp = join(sp, ceWait, spec{"force": boolean})
		} else {
			sp["extension-rm"] = multi
		}
		f, err := parseFlags(args, sp)
		if err != nil {
			return fail(2, "subscription cron %s: %v", act, err)
		}
		name := f.get("name")
		if !kvNameRE.MatchString(name) {
			return fail(1, "FAILED\ninvalid cron subscription name %q", name)
		}
		cr := p.Crons[name]
		switch {
		case act == "create" && cr != nil:
			return fail(1, "FAILED\ncron source '%s' already exists", name)
		case act == "update" && cr == nil:
			return notFound("cron source '%s'", name)
		case act == "create":
			if err := f.require("destination"); err != nil {
				return fail(2, "subscription cron create: %v", err)
			}
			cr = &fakecloud.Cron{DestinationType: "app", Schedule: "* * * * *", TimeZone: "UTC"}
		}
		if v := f.get("destination"); v != "" {
			cr.Destination = v
		}
		if v := f.get("destination-type"); v != "" {
			cr.DestinationType = v
		}
		if v := f.get("schedule"); v != "" {
			if len(strings.Fields(v)) != 5 {
				return fail(1, "FAILED\ninvalid --schedule %q", v)
			}
			cr.Schedule = v
		}
		if v := f.get("time-zone"); v != "" {
			cr.TimeZone = v
		}
		switch cr.DestinationType {
		case "job":
			if p.Jobs[cr.Destination] == nil && !f.on("force") {
				return notFound("job '%s' (the cron destination)", cr.Destination)
			}
		case "app":
			if p.Apps[cr.Destination] == nil && !f.on("force") {
				return notFound("application '%s' (the cron destination)", cr.Destination)
			}
		default:
			return fail(1, "FAILED\ninvalid --destination-type %q", cr.DestinationType)
		}
		p.Crons[name] = cr
		fmt.Printf("%s cron source '%s'...\nOK\n", map[string]string{"create": "Creating", "update": "Updating"}[act], name)
		return nil
	case "delete":
		return c.deleteFrom(p.Crons, "cron", args)
	}
	return fail(2, "ce subscription cron: %q is not simulated", act)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
