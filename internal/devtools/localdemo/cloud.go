package localdemo

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"
)

// sharedIAM is one IAM in front of several simulators, as IBM Cloud has one IAM for
// every service: certbackup's configuration has one iam_url, and a Certificate Manager
// source with a Secrets Manager backup is reached with one token. Each simulator plays
// its own IAM and accepts only its own tokens, so sharedIAM asks every one of them for
// a token for the API key it is given and hands out a token of its own that stands for
// all of them; the gateway in front of each simulator puts that simulator's token back
// in the request. Everything else passes through untouched, so each simulator still
// checks every request (roles included) and records it in its log.
//
// Its tokens start with simulatorTokenPrefix, so that the demos' secret scans find
// them as they find the simulators' own.
type sharedIAM struct {
	upstreams map[string]string // name -> simulator base URL
	client    *http.Client

	mu      sync.Mutex
	tokens  map[string]map[string]string // our access token -> upstream name -> its token
	refresh map[string]url.Values        // our refresh token -> the form that got it
}

// tokenLifetime is what sharedIAM announces; the simulators' own tokens live an hour
// too, and a demo lasts seconds.
const tokenLifetime = time.Hour

func newSharedIAM(upstreams map[string]string) *sharedIAM {
	return &sharedIAM{
		upstreams: upstreams,
		client:    &http.Client{Timeout: 10 * time.Second},
		tokens:    map[string]map[string]string{},
		refresh:   map[string]url.Values{},
	}
}

// ServeHTTP is POST /identity/token.
func (i *sharedIAM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/identity/token" || r.Method != http.MethodPost {
		http.NotFound(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		http.Error(w, "read the request", http.StatusBadRequest)
		return
	}
	form, _ := url.ParseQuery(string(body)) // a malformed body is the simulators' to refuse
	if form.Get("grant_type") == "refresh_token" {
		i.mu.Lock()
		orig, ok := i.refresh[form.Get("refresh_token")]
		i.mu.Unlock()
		if ok {
			body = []byte(orig.Encode())
			form = orig
		}
	}
	got := map[string]string{}
	var refused *http.Response
	var refusedBody []byte
	for name, base := range i.upstreams {
		resp, err := i.client.Post(base+"/identity/token", r.Header.Get("Content-Type"), bytes.NewReader(body))
		if err != nil {
			http.Error(w, "an upstream IAM did not answer", http.StatusBadGateway)
			return
		}
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		if resp.StatusCode == http.StatusOK && json.Unmarshal(data, &tok) == nil && tok.AccessToken != "" {
			got[name] = tok.AccessToken
		} else if refused == nil {
			refused, refusedBody = resp, data
		}
	}
	if len(got) == 0 && refused != nil {
		// No simulator knows the key: its own IAM error, as IAM would answer.
		w.Header().Set("Content-Type", refused.Header.Get("Content-Type"))
		w.WriteHeader(refused.StatusCode)
		_, _ = w.Write(refusedBody)
		return
	}
	access, refresh := simulatorTokenPrefix+"iam-"+randomHex(24), simulatorTokenPrefix+"iam-"+randomHex(24)
	i.mu.Lock()
	i.tokens[access] = got
	i.refresh[refresh] = form
	i.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token": access, "refresh_token": refresh, "token_type": "Bearer",
		"expires_in": int64(tokenLifetime / time.Second), "expiration": time.Now().Add(tokenLifetime).Unix(),
		"scope": "ibm openid",
	})
}

// gateway is the simulator upstream at target, reached with sharedIAM's tokens.
func (i *sharedIAM) gateway(upstream string) (http.Handler, error) {
	target, err := url.Parse(i.upstreams[upstream])
	if err != nil || target.Host == "" {
		return nil, fmt.Errorf("gateway to %s: not a base URL", upstream)
	}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			// Links in answers (paging) then name the gateway, as the client saw it.
			pr.Out.Host = pr.In.Host
			if ours, ok := strings.CutPrefix(pr.In.Header.Get("Authorization"), "Bearer "); ok {
				i.mu.Lock()
				theirs, known := i.tokens[ours][upstream]
				i.mu.Unlock()
				if known {
					pr.Out.Header.Set("Authorization", "Bearer "+theirs)
				}
			}
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error) {
			http.Error(w, "the simulator did not answer", http.StatusBadGateway)
		},
	}, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}
