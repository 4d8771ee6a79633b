package localdemo

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// maxRecorded bounds what is kept of one web-action response: the action's answer
// is a few hundred bytes per backup.
const maxRecorded = 1 << 20

// recorder wraps the web action so that the demo can report what the action answered
// to each notification. Certificate Manager (the simulator) is the web action's client
// and keeps only the status, so the body has to be taken on the way out.
type recorder struct {
	next http.Handler

	mu        sync.Mutex
	exchanges []*exchange
	// live, once set (--serve), receives each exchange as it finishes, and exchanges
	// are no longer kept: nothing reads them, and the demo may run for days.
	live func(*exchange)
}

// exchange is one request to the web action. Its fields are written by the handler's
// goroutine and read only after done is closed.
type exchange struct {
	done   chan struct{}
	status int
	body   bytes.Buffer
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ex := &exchange{done: make(chan struct{})}
	rc.mu.Lock()
	live := rc.live
	if live == nil {
		// Registered before the action runs, so that the exchange exists by the time
		// the client has the answer (the simulator's delivery is synchronous).
		rc.exchanges = append(rc.exchanges, ex)
	}
	rc.mu.Unlock()
	defer close(ex.done)
	rc.next.ServeHTTP(&captureWriter{ResponseWriter: w, ex: ex}, r)
	if ex.status == 0 {
		ex.status = http.StatusOK
	}
	if live != nil {
		live(ex)
	}
}

// mark is the number of exchanges so far; since returns those after a mark.
func (rc *recorder) mark() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.exchanges)
}

// since waits (up to timeout) for the exchanges after mark to finish and returns them.
func (rc *recorder) since(mark int, timeout time.Duration) ([]*exchange, error) {
	rc.mu.Lock()
	list := append([]*exchange(nil), rc.exchanges[mark:]...)
	rc.mu.Unlock()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for _, ex := range list {
		select {
		case <-ex.done:
		case <-deadline.C:
			return nil, errors.New("the web action did not finish answering in time")
		}
	}
	return list, nil
}

// goLive ends the recording and hands every later exchange to live as it finishes:
// in --serve mode the web action keeps answering for as long as the user likes.
func (rc *recorder) goLive(live func(*exchange)) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.live = live
	rc.exchanges = nil
}

type captureWriter struct {
	http.ResponseWriter
	ex *exchange
}

func (cw *captureWriter) WriteHeader(status int) {
	if cw.ex.status == 0 {
		cw.ex.status = status
	}
	cw.ResponseWriter.WriteHeader(status)
}

func (cw *captureWriter) Write(p []byte) (int, error) {
	if cw.ex.status == 0 {
		cw.ex.status = http.StatusOK
	}
	if room := maxRecorded - cw.ex.body.Len(); room > 0 {
		cw.ex.body.Write(p[:min(len(p), room)])
	}
	return cw.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the real writer.
func (cw *captureWriter) Unwrap() http.ResponseWriter { return cw.ResponseWriter }

// answer is the part of the notify action's response the report shows. The action's
// body holds only event types, outcomes and CRNs; decoding into these fields alone
// keeps anything else it might one day carry out of the report.
type answer struct {
	EventType string         `json:"event_type"`
	Action    string         `json:"action"`
	Error     string         `json:"error"`
	Summary   map[string]int `json:"summary"`
	Results   []pairResult   `json:"results"`
	// Left are the secrets of an Event Notifications batch that were not started in
	// time (503: EN retries).
	Left []string `json:"left_for_retry"`
}

type pairResult struct {
	Source     string `json:"source_crn"`
	Name       string `json:"name"`
	Backup     string `json:"backup_instance_crn"`
	CopyCRN    string `json:"copy_crn"`
	Outcome    string `json:"outcome"`
	Verified   bool   `json:"verified"`
	ErrorClass string `json:"error_class"`
}

func parseAnswer(body []byte) answer {
	var a answer
	// A body that is not the action's JSON (a controller error page) leaves a zero
	// answer; the status code then tells the story.
	_ = json.Unmarshal(body, &a)
	if len(a.Error) > 80 {
		a.Error = a.Error[:80]
	}
	return a
}

// forge re-signs the payload of a genuine notification token with a fresh random RSA
// key: same header, same claims, only the signature differs. It is what an attacker
// who knows the Callback URL and the CRNs could send.
func forge(token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("forge: the notification token is not a compact JWS")
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", fmt.Errorf("forge: generate key: %w", err)
	}
	signing := parts[0] + "." + parts[1]
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("forge: sign: %w", err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// post sends a notification body {"data": token} to the web action, as Certificate
// Manager does, and returns the status and the decoded answer.
func post(ctx context.Context, client *http.Client, url, token string) (int, answer, error) {
	body, err := json.Marshal(map[string]string{"data": token})
	if err != nil {
		return 0, answer{}, fmt.Errorf("encode notification: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, answer{}, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, answer{}, fmt.Errorf("post to the web action: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxRecorded))
	if err != nil {
		return resp.StatusCode, answer{}, fmt.Errorf("read the web action's answer: %w", err)
	}
	return resp.StatusCode, parseAnswer(data), nil
}
