package cms

import (
	"fmt"
	"log/slog"
)

// Certificate is the metadata of one certificate, as the list, metadata, import and
// reimport operations return it. It holds no key material.
type Certificate struct {
	ID           string   `json:"_id"`
	Name         string   `json:"name"`
	Description  string   `json:"description,omitempty"`
	Domains      []string `json:"domains,omitempty"`
	Issuer       string   `json:"issuer,omitempty"`
	SerialNumber string   `json:"serial_number,omitempty"`
	BeginsOn     int64    `json:"begins_on,omitempty"`  // epoch milliseconds
	ExpiresOn    int64    `json:"expires_on,omitempty"` // epoch milliseconds
	Algorithm    string   `json:"algorithm,omitempty"`
	KeyAlgorithm string   `json:"key_algorithm,omitempty"`
	Imported     bool     `json:"imported"`
	Status       string   `json:"status,omitempty"`
	HasPrevious  bool     `json:"has_previous"`
	LastModified int64    `json:"last_modified,omitempty"`
}

// Data is certificate material. It holds a private key, so every way of printing it is
// redacted; only encoding/json (to send it to the API) sees the fields.
type Data struct {
	Content      string `json:"content"`
	PrivKey      string `json:"priv_key,omitempty"`
	Intermediate string `json:"intermediate,omitempty"`
}

const redactedData = "cms.Data{redacted}"

// String implements fmt.Stringer without revealing the material.
func (Data) String() string { return redactedData }

// GoString implements fmt.GoStringer (%#v) without revealing the material.
func (Data) GoString() string { return redactedData }

// Format makes every fmt verb print the redacted form, %+v included.
func (Data) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redactedData)) }

// LogValue keeps the material out of log/slog output.
func (Data) LogValue() slog.Value { return slog.StringValue(redactedData) }

// CertificateWithData is what the download operation returns.
type CertificateWithData struct {
	Certificate
	Data Data `json:"data"`
}

// ImportRequest is the body of an import.
type ImportRequest struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Data        Data   `json:"data"`
}

// Channel is a notification channel of an instance.
type Channel struct {
	ID       string `json:"id,omitempty"`
	Type     string `json:"type"`
	Endpoint string `json:"endpoint"`
	IsActive bool   `json:"is_active"`
	Version  int    `json:"version,omitempty"`
}

// ChannelTypeURL is the type of a Callback URL channel.
const ChannelTypeURL = "url"

type listPage struct {
	Certificates []Certificate `json:"certificates"`
	NextPageInfo struct {
		StartWithDocID        string `json:"startWithDocId"`
		StartWithOrderByValue string `json:"startWithOrderByValue"`
	} `json:"nextPageInfo"`
	TotalScannedDocs int `json:"totalScannedDocs"`
}

type publicKeyResponse struct {
	PublicKey string `json:"publicKey"`
}
