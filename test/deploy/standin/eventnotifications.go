package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/certbackup/certbackup/test/deploy/fakecloud"
)

// The identifier shape the Event Notifications CLI validates (en-cli.md).
var uuidRE = regexp.MustCompile(`^[a-fA-F0-9]{8}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{12}$`)

var (
	enList   = spec{"instance-id": str, "limit": str, "offset": str, "search": str, "all-pages": boolean, "output": str}
	enGet    = spec{"instance-id": str, "id": str, "output": str}
	enDelete = spec{"instance-id": str, "id": str, "force": boolean}
)

// eventNotifications is `ibmcloud event-notifications ...`.
func (c *cloud) eventNotifications(args []string) error {
	if len(args) == 0 {
		return fail(2, "event-notifications: want a command")
	}
	cmd, rest := args[0], args[1:]
	sp := map[string]spec{
		"sources":             enList,
		"destinations":        enList,
		"destination":         enGet,
		"destination-create":  {"instance-id": str, "name": str, "type": str, "description": str, "collect-failed-events": boolean, "config": str, "output": str},
		"destination-update":  {"instance-id": str, "id": str, "name": str, "description": str, "collect-failed-events": boolean, "config": str, "output": str},
		"destination-delete":  enDelete,
		"topics":              enList,
		"topic":               join(enGet, spec{"include": str}),
		"topic-create":        {"instance-id": str, "name": str, "description": str, "sources": str, "output": str},
		"topic-delete":        enDelete,
		"subscriptions":       enList,
		"subscription":        enGet,
		"subscription-create": {"instance-id": str, "name": str, "destination-id": str, "topic-id": str, "description": str, "attributes": str, "output": str},
		"subscription-delete": enDelete,
	}[cmd]
	if sp == nil {
		return fail(2, "event-notifications: %q is not simulated", cmd)
	}
	f, err := parseFlags(rest, sp)
	if err != nil {
		return fail(2, "event-notifications %s: %v", cmd, err)
	}
	if err := f.require("instance-id"); err != nil {
		return fail(2, "event-notifications %s: %v", cmd, err)
	}
	in, err := c.enInstance(f.get("instance-id"))
	if err != nil {
		return err
	}
	for _, n := range []string{"id", "destination-id", "topic-id"} {
		if f.has(n) && !uuidRE.MatchString(f.get(n)) {
			return fail(2, "event-notifications %s: --%s %q must match %s", cmd, n, f.get(n), uuidRE)
		}
	}

	switch cmd {
	case "sources":
		var items []map[string]any
		for _, s := range in.Sources {
			items = append(items, map[string]any{"id": s.ID, "name": s.Name, "description": s.Description,
				"type": s.Type, "enabled": s.Enabled, "topic_count": topicCount(in, s.ID)})
		}
		return printList(f, "sources", items)
	case "destinations":
		var items []map[string]any
		for _, d := range in.Destinations {
			items = append(items, map[string]any{"id": d.ID, "name": d.Name, "description": d.Description,
				"type": d.Type, "subscription_count": countSubs(in, d.ID, "")})
		}
		return printList(f, "destinations", items)
	case "topics":
		var items []map[string]any
		for _, t := range in.Topics {
			items = append(items, map[string]any{"id": t.ID, "name": t.Name, "description": t.Description,
				"subscription_count": countSubs(in, "", t.ID)})
		}
		return printList(f, "topics", items)
	case "subscriptions":
		var items []map[string]any
		for _, s := range in.Subscriptions {
			items = append(items, map[string]any{"id": s.ID, "name": s.Name, "description": s.Description,
				"destination_id": s.DestinationID, "topic_id": s.TopicID})
		}
		return printList(f, "subscriptions", items)

	case "destination":
		d := findDestination(in, f.get("id"))
		if d == nil {
			return notFound("destination '%s'", f.get("id"))
		}
		return printJSON(map[string]any{"id": d.ID, "name": d.Name, "description": d.Description, "type": d.Type, "config": maskSensitive(d.Config)})
	case "destination-create", "destination-update":
		var d *fakecloud.ENDestination
		if cmd == "destination-create" {
			if err := f.require("name", "type"); err != nil {
				return fail(2, "%s: %v", cmd, err)
			}
			if f.get("type") != "webhook" {
				return fail(2, "%s: only --type webhook is simulated", cmd)
			}
			for _, x := range in.Destinations {
				if x.Name == f.get("name") {
					return fail(1, "FAILED\n409: a destination named %q exists", x.Name)
				}
			}
			d = &fakecloud.ENDestination{ID: c.NextID(), Type: "webhook"}
		} else {
			if d = findDestination(in, f.get("id")); d == nil {
				return notFound("destination '%s'", f.get("id"))
			}
		}
		if f.has("name") {
			d.Name = f.get("name")
		}
		if f.has("description") {
			d.Description = f.get("description")
		}
		if f.has("config") {
			cfg, err := jsonValue(f.get("config"))
			if err != nil {
				return fail(2, "%s: --config: %v", cmd, err)
			}
			if err := checkWebhookConfig(cfg); err != nil {
				return fail(1, "FAILED\n400: %v", err)
			}
			d.Config = cfg
		}
		if cmd == "destination-create" {
			in.Destinations = append(in.Destinations, d)
		}
		return printCreated(f, map[string]any{"id": d.ID, "name": d.Name, "description": d.Description, "type": d.Type, "config": maskSensitive(d.Config)})
	case "destination-delete":
		if err := needForce(f, cmd); err != nil {
			return err
		}
		if n := countSubs(in, f.get("id"), ""); n > 0 {
			return fail(1, "FAILED\n409: destination %s has %d subscription(s)", f.get("id"), n)
		}
		if !removeByID(&in.Destinations, f.get("id")) {
			return notFound("destination '%s'", f.get("id"))
		}
		fmt.Println("Destination deleted")
		return nil

	case "topic":
		t := findTopic(in, f.get("id"))
		if t == nil {
			return notFound("topic '%s'", f.get("id"))
		}
		return printJSON(map[string]any{"id": t.ID, "name": t.Name, "description": t.Description, "sources": t.Sources})
	case "topic-create":
		if err := f.require("name"); err != nil {
			return fail(2, "%s: %v", cmd, err)
		}
		for _, x := range in.Topics {
			if x.Name == f.get("name") {
				return fail(1, "FAILED\n409: a topic named %q exists", x.Name)
			}
		}
		t := &fakecloud.ENTopic{ID: c.NextID(), Name: f.get("name"), Description: f.get("description"), Sources: json.RawMessage("[]")}
		if f.has("sources") {
			src, err := jsonValue(f.get("sources"))
			if err != nil {
				return fail(2, "%s: --sources: %v", cmd, err)
			}
			if err := checkTopicSources(in, src); err != nil {
				return fail(1, "FAILED\n400: %v", err)
			}
			t.Sources = src
		}
		in.Topics = append(in.Topics, t)
		return printCreated(f, map[string]any{"id": t.ID, "name": t.Name, "description": t.Description})
	case "topic-delete":
		if err := needForce(f, cmd); err != nil {
			return err
		}
		if n := countSubs(in, "", f.get("id")); n > 0 {
			return fail(1, "FAILED\n409: topic %s has %d subscription(s)", f.get("id"), n)
		}
		if !removeByID(&in.Topics, f.get("id")) {
			return notFound("topic '%s'", f.get("id"))
		}
		fmt.Println("Topic deleted")
		return nil

	case "subscription":
		for _, s := range in.Subscriptions {
			if s.ID == f.get("id") {
				return printJSON(s)
			}
		}
		return notFound("subscription '%s'", f.get("id"))
	case "subscription-create":
		if err := f.require("name", "destination-id", "topic-id"); err != nil {
			return fail(2, "%s: %v", cmd, err)
		}
		if len(f.get("name")) > 50 {
			return fail(2, "%s: --name is longer than 50 characters", cmd)
		}
		if findDestination(in, f.get("destination-id")) == nil {
			return notFound("destination '%s'", f.get("destination-id"))
		}
		if findTopic(in, f.get("topic-id")) == nil {
			return notFound("topic '%s'", f.get("topic-id"))
		}
		for _, x := range in.Subscriptions {
			if x.Name == f.get("name") {
				return fail(1, "FAILED\n409: a subscription named %q exists", x.Name)
			}
		}
		s := &fakecloud.ENSubscription{ID: c.NextID(), Name: f.get("name"), Description: f.get("description"),
			DestinationID: f.get("destination-id"), TopicID: f.get("topic-id")}
		if f.has("attributes") {
			a, err := jsonValue(f.get("attributes"))
			if err != nil {
				return fail(2, "%s: --attributes: %v", cmd, err)
			}
			s.Attributes = a
		}
		in.Subscriptions = append(in.Subscriptions, s)
		return printCreated(f, s)
	case "subscription-delete":
		if err := needForce(f, cmd); err != nil {
			return err
		}
		if !removeByID(&in.Subscriptions, f.get("id")) {
			return notFound("subscription '%s'", f.get("id"))
		}
		fmt.Println("Subscription deleted")
		return nil
	}
	return fail(2, "event-notifications: %q is not simulated", cmd)
}

// enInstance finds the instance in the region the CLI talks to: IBMCLOUD_EN_ENDPOINT
// when set, otherwise the targeted region (en-cli.md).
func (c *cloud) enInstance(guid string) (*fakecloud.ENInstance, error) {
	region := c.Region
	if ep := os.Getenv("IBMCLOUD_EN_ENDPOINT"); ep != "" {
		u, err := url.Parse(ep)
		if err != nil || u.Scheme != "https" || u.Path != "/event-notifications" {
			return nil, fail(1, "FAILED\nIBMCLOUD_EN_ENDPOINT %q is not an Event Notifications endpoint", ep)
		}
		host := strings.TrimPrefix(u.Hostname(), "private.")
		region, _, _ = strings.Cut(host, ".")
		if !strings.HasSuffix(host, ".event-notifications.cloud.ibm.com") {
			return nil, fail(1, "FAILED\nIBMCLOUD_EN_ENDPOINT %q is not an Event Notifications endpoint", ep)
		}
	}
	in := c.ENInstances[guid]
	if in == nil || in.Region != region {
		return nil, fail(1, "FAILED\n404: Event Notifications instance %s not found in region %q", guid, region)
	}
	return in, nil
}

// printList prints a list page: --search is a case-insensitive substring of the name,
// --limit defaults to 10 (the API's default) and is at most 100.
func printList(f flagSet, key string, items []map[string]any) error {
	limit := 10
	if l := f.get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 100 {
			return fail(2, "--limit %q must be 1..100", l)
		}
		limit = n
	}
	var page []map[string]any
	for _, it := range items {
		name, _ := it["name"].(string)
		if s := f.get("search"); s != "" && !strings.Contains(strings.ToLower(name), strings.ToLower(s)) {
			continue
		}
		if len(page) < limit || f.on("all-pages") {
			page = append(page, it)
		}
	}
	if page == nil {
		page = []map[string]any{}
	}
	if f.get("output") != "json" {
		fmt.Println("Name  ID")
		for _, it := range page {
			fmt.Printf("%v  %v\n", it["name"], it["id"])
		}
		return nil
	}
	return printJSON(map[string]any{"total_count": len(page), "offset": 0, "limit": limit, key: page})
}

func printCreated(f flagSet, v any) error {
	if f.get("output") == "json" {
		return printJSON(v)
	}
	fmt.Println("OK")
	return nil
}

func needForce(f flagSet, cmd string) error {
	if !f.on("force") {
		return fail(1, "FAILED\n%s: confirmation needed and there is no terminal (use --force)", cmd)
	}
	return nil
}

// jsonValue reads a JSON flag value, inline or from @FILE (en-cli.md: "--config=@path");
// a file that holds a sensitive header must not be readable by group or others.
func jsonValue(v string) (json.RawMessage, error) {
	b := []byte(v)
	if path, ok := strings.CutPrefix(v, "@"); ok {
		fi, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		if b, err = os.ReadFile(path); err != nil {
			return nil, err
		}
		if fi.Mode().Perm()&0o077 != 0 && strings.Contains(string(b), "sensitive_headers") {
			return nil, fmt.Errorf("standin: %s holds a sensitive header and has mode %v", path, fi.Mode().Perm())
		}
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("not valid JSON")
	}
	return json.RawMessage(b), nil
}

// checkWebhookConfig holds the webhook destination config to the documented shape.
func checkWebhookConfig(cfg json.RawMessage) error {
	var c struct {
		Params struct {
			URL              string            `json:"url"`
			Verb             string            `json:"verb"`
			CustomHeaders    map[string]string `json:"custom_headers"`
			SensitiveHeaders []string          `json:"sensitive_headers"`
		} `json:"params"`
	}
	if err := json.Unmarshal(cfg, &c); err != nil {
		return err
	}
	if u, err := url.Parse(c.Params.URL); err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("params.url %q must be an https URL", c.Params.URL)
	}
	switch c.Params.Verb {
	case "get", "post", "put", "patch":
	default:
		return fmt.Errorf("params.verb %q", c.Params.Verb)
	}
	for _, h := range c.Params.SensitiveHeaders {
		if _, ok := c.Params.CustomHeaders[h]; !ok {
			return fmt.Errorf("sensitive header %q is not a custom header", h)
		}
	}
	return nil
}

// maskSensitive hides the values of sensitive headers, as the service does.
func maskSensitive(cfg json.RawMessage) any {
	var c map[string]map[string]any
	if json.Unmarshal(cfg, &c) != nil {
		return nil
	}
	p := c["params"]
	headers, _ := p["custom_headers"].(map[string]any)
	sens, _ := p["sensitive_headers"].([]any)
	for _, h := range sens {
		if name, ok := h.(string); ok {
			if _, ok := headers[name]; ok {
				headers[name] = "********"
			}
		}
	}
	return c
}

// checkTopicSources: every source must be registered in the instance, every rule enabled
// and filtering on the event type.
func checkTopicSources(in *fakecloud.ENInstance, src json.RawMessage) error {
	var items []struct {
		ID    string `json:"id"`
		Rules []struct {
			Enabled         *bool  `json:"enabled"`
			EventTypeFilter string `json:"event_type_filter"`
		} `json:"rules"`
	}
	if err := json.Unmarshal(src, &items); err != nil {
		return err
	}
	for _, it := range items {
		var known bool
		for _, s := range in.Sources {
			known = known || s.ID == it.ID
		}
		if !known {
			return fmt.Errorf("source %q is not a source of this instance", it.ID)
		}
		if len(it.Rules) == 0 {
			return fmt.Errorf("source %q has no rules", it.ID)
		}
		for _, r := range it.Rules {
			if r.Enabled == nil || r.EventTypeFilter == "" {
				return fmt.Errorf("a rule needs enabled and event_type_filter")
			}
		}
	}
	return nil
}

func findDestination(in *fakecloud.ENInstance, id string) *fakecloud.ENDestination {
	for _, d := range in.Destinations {
		if d.ID == id {
			return d
		}
	}
	return nil
}

func findTopic(in *fakecloud.ENInstance, id string) *fakecloud.ENTopic {
	for _, t := range in.Topics {
		if t.ID == id {
			return t
		}
	}
	return nil
}

func countSubs(in *fakecloud.ENInstance, destID, topicID string) int {
	n := 0
	for _, s := range in.Subscriptions {
		if (destID != "" && s.DestinationID == destID) || (topicID != "" && s.TopicID == topicID) {
			n++
		}
	}
	return n
}

func topicCount(in *fakecloud.ENInstance, sourceID string) int {
	n := 0
	for _, t := range in.Topics {
		var items []struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(t.Sources, &items)
		for _, it := range items {
			if it.ID == sourceID {
				n++
				break
			}
		}
	}
	return n
}

// removeByID removes the element with that id from a slice of pointers to structs with
// an ID field.
func removeByID[T interface {
	*fakecloud.ENDestination | *fakecloud.ENTopic | *fakecloud.ENSubscription
}](list *[]T, id string) bool {
	for i, x := range *list {
		var xid string
		switch v := any(x).(type) {
		case *fakecloud.ENDestination:
			xid = v.ID
		case *fakecloud.ENTopic:
			xid = v.ID
		case *fakecloud.ENSubscription:
			xid = v.ID
		}
		if xid == id {
			*list = append((*list)[:i], (*list)[i+1:]...)
			if len(*list) == 0 {
				*list = nil
			}
			return true
		}
	}
	return false
}
