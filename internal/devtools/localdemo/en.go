package localdemo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// enSecret is one entry of an Event Notifications envelope's data.secrets.
type enSecret struct {
	ID   string // the secret's CRN, or its bare UUID
	Name string
}

// enEnvelope is the body Event Notifications POSTs to a webhook for a Secrets Manager
// event (successor-contract.md §4; the fields of the captures in
// internal/trigger/eventnotifications/testdata): a CloudEvents envelope whose data
// names the instance and the secrets.
func enEnvelope(event, instanceCRN, secretType string, secrets []enSecret) ([]byte, error) {
	now := time.Now().UTC()
	list := make([]map[string]any, len(secrets))
	for i, s := range secrets {
		list[i] = map[string]any{
			"event_time": now.Format(time.RFC3339), "event_triggered_by": "IBMid-localdemo",
			"secret_group_id": "default", "secret_id": s.ID, "secret_name": s.Name,
		}
	}
	guid := ""
	if p := strings.Split(instanceCRN, ":"); len(p) == 10 {
		guid = p[7]
	}
	summary := fmt.Sprintf("%s: %d secret(s)", strings.ReplaceAll(event, "_", " "), len(secrets))
	return json.Marshal(map[string]any{
		"id":                randomUUID() + "_" + randomUUID(),
		"notification_id":   randomUUID(),
		"source":            instanceCRN,
		"ibmensourceid":     instanceCRN,
		"specversion":       "1.0",
		"type":              "com.ibm.cloud.secrets-manager." + event,
		"time":              now.Format(time.RFC3339Nano),
		"datacontenttype":   "application/json",
		"ibmenseverity":     "low",
		"ibmendefaultshort": summary,
		"ibmendefaultlong":  summary + ". You can view and manage your secrets in the console.",
		"data": map[string]any{
			"event_type":                     event,
			"secret_type":                    secretType,
			"secrets":                        list,
			"source_instance_crn":            instanceCRN,
			"source_service":                 "SecretsManager",
			"source_instance_api_public_url": "https://" + guid + ".secrets-manager.appdomain.cloud/api",
		},
	})
}

func randomUUID() string {
	h := randomHex(16)
	return h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:32]
}

// postEvent POSTs an envelope to url as Event Notifications does, with the bearer
// header when bearer is not "", and returns the status, the decoded answer and how
// long the answer took.
func postEvent(ctx context.Context, client *http.Client, url, bearer string, body []byte) (int, answer, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, answer{}, 0, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	t0 := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, answer{}, 0, fmt.Errorf("post to /events: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxRecorded))
	elapsed := time.Since(t0)
	if err != nil {
		return resp.StatusCode, answer{}, elapsed, fmt.Errorf("read the answer: %w", err)
	}
	return resp.StatusCode, parseAnswer(data), elapsed, nil
}
