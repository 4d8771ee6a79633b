package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/certbackup/certbackup/internal/devtools/smsim"
)

func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, config{listen: "127.0.0.1:0", regions: []string{"us-south", "eu-de"}, tokenLifetime: time.Hour}, pw)
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	require.NoError(t, err)
	var info Info
	require.NoError(t, json.Unmarshal([]byte(line), &info))
	assert.Equal(t, info.IAMURL+"/identity/token", info.TokenURL)
	require.Len(t, info.Instances, 2)
	require.Len(t, info.Endpoints, 2)

	form := url.Values{"grant_type": {"urn:ibm:params:oauth:grant-type:apikey"}, "apikey": {info.APIKey}}
	resp, err := http.Post(info.TokenURL, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	require.NoError(t, err)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&tok))
	resp.Body.Close()

	for region, inst := range info.Instances {
		c, err := smsim.ParseInstanceCRN(inst)
		require.NoError(t, err)
		assert.Equal(t, region, c.Region)
		base := info.Endpoints[inst]
		assert.Equal(t, info.IAMURL+"/"+region+"/"+c.GUID, base)
		req, _ := http.NewRequest(http.MethodGet, base+"/api/v2/secrets", nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, 200, resp.StatusCode, region)
	}

	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop")
	}
}

func TestRunRefusesBadConfig(t *testing.T) {
	for name, cfg := range map[string]config{
		"no regions":       {listen: "127.0.0.1:0"},
		"unknown region":   {listen: "127.0.0.1:0", regions: []string{"eu-fr2"}},
		"region twice":     {listen: "127.0.0.1:0", regions: []string{"eu-de", "eu-de"}},
		"not loopback":     {listen: "0.0.0.0:0", regions: []string{"eu-de"}},
		"bad address":      {listen: "nowhere", regions: []string{"eu-de"}},
		"malformed region": {listen: "127.0.0.1:0", regions: []string{"Bad Region"}},
	} {
		t.Run(name, func(t *testing.T) {
			assert.Error(t, run(context.Background(), cfg, io.Discard))
		})
	}
}
