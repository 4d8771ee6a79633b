package harness

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/certbackup/certbackup/internal/devtools/cmsim"
)

// TokenSink registers a Callback URL channel (payload version 4) on instanceCRN whose
// endpoint hands every notification token it receives to the returned channel (which
// holds up to buffer tokens; later ones are dropped), so that a test or benchmark can
// drive the action with the tokens the simulator really signed.
func TokenSink(tb testing.TB, sim *cmsim.Simulator, instanceCRN string, buffer int) <-chan string {
	tb.Helper()
	tokens := make(chan string, buffer)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var body struct {
			Data string `json:"data"`
		}
		raw, _ := io.ReadAll(r.Body)
		if json.Unmarshal(raw, &body) != nil || body.Data == "" {
			rw.WriteHeader(http.StatusBadRequest)
			return
		}
		select {
		case tokens <- body.Data:
		default:
		}
		rw.WriteHeader(http.StatusOK)
	}))
	tb.Cleanup(srv.Close)
	if _, err := sim.AddChannel(instanceCRN, srv.URL, 4); err != nil {
		tb.Fatal(err)
	}
	return tokens
}
