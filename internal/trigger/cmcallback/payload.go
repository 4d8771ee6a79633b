package cmcallback

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/certbackup/certbackup/internal/crn"
	"github.com/certbackup/certbackup/internal/strictjson"
)

// rawPayload is the payload as decoded, before the checks that bind it to the
// configuration.
type rawPayload struct {
	n                 Notification
	hasV1Certificates bool // "expiring_certificates": the v1 shape
	hasCertificates   bool
	hasVersion        bool
	exp, nbf          *jwt.NumericDate
}

// timeClaims hands the optional exp and nbf to jwt's validator, so that their semantics
// (leeway, exp == now is expired) are the library's, not a copy of them.
type timeClaims struct{ exp, nbf *jwt.NumericDate }

func (c timeClaims) GetExpirationTime() (*jwt.NumericDate, error) { return c.exp, nil }
func (c timeClaims) GetNotBefore() (*jwt.NumericDate, error)      { return c.nbf, nil }
func (c timeClaims) GetIssuedAt() (*jwt.NumericDate, error)       { return nil, nil }
func (c timeClaims) GetIssuer() (string, error)                   { return "", nil }
func (c timeClaims) GetSubject() (string, error)                  { return "", nil }
func (c timeClaims) GetAudience() (jwt.ClaimStrings, error)       { return nil, nil }

// decodePayload decodes the signed payload strictly: exact key names, known keys with
// the documented JSON types, no duplicate keys (top level, each certificate object, the
// challenge). Unknown keys are skipped so that a field added by the service does not
// break delivery. Errors are ErrMalformed.
func decodePayload(b []byte) (*rawPayload, error) {
	p := &rawPayload{}
	dec := strictjson.NewDecoder(b)
	err := strictjson.WalkObject(dec, func(key string) error {
		var err error
		switch key {
		case "instance_crn":
			p.n.InstanceCRN, err = strictjson.DecodeString(dec, key)
		case "certificate_manager_url":
			p.n.ManagerURL, err = strictjson.DecodeString(dec, key)
		case "event_type":
			p.n.EventType, err = strictjson.DecodeString(dec, key)
		case "expiry_date":
			p.n.ExpiryDate, err = decodeTimestamp(dec, key)
		case "version":
			p.n.Version, p.hasVersion, err = decodeInt(dec, key)
		case "latestVersion":
			p.n.LatestVersion, _, err = decodeInt(dec, key)
		case "certificates":
			p.hasCertificates = true
			p.n.Certificates, err = decodeCertificates(dec)
		case "expiring_certificates":
			p.hasV1Certificates = true
			err = strictjson.SkipValue(dec)
		case "certificateCRN":
			err = decodeDV(dec, p, key, func(dv *DomainValidation, s string) { dv.CertificateCRN = s })
		case "domain":
			err = decodeDV(dec, p, key, func(dv *DomainValidation, s string) { dv.Domain = s })
		case "domain_validation_method":
			err = decodeDV(dec, p, key, func(dv *DomainValidation, s string) { dv.Method = s })
		case "challenge":
			err = decodeChallenge(dec, p)
		case "exp":
			p.exp, err = decodeNumericDate(dec, key)
		case "nbf":
			p.nbf, err = decodeNumericDate(dec, key)
		default:
			err = strictjson.SkipValue(dec)
		}
		return err
	})
	if err == nil {
		err = strictjson.ExpectEOF(dec)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: payload: %w", ErrMalformed, err)
	}
	return p, nil
}

func (p *rawPayload) dv() *DomainValidation {
	if p.n.DomainValidation == nil {
		p.n.DomainValidation = &DomainValidation{}
	}
	return p.n.DomainValidation
}

func decodeDV(dec *json.Decoder, p *rawPayload, key string, set func(*DomainValidation, string)) error {
	s, err := strictjson.DecodeString(dec, key)
	if err != nil || s == "" {
		return err
	}
	set(p.dv(), s)
	return nil
}

func decodeChallenge(dec *json.Decoder, p *rawPayload) error {
	// json.Decoder cannot peek, so take the raw value to tell null from an object.
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return strictjson.Error(dec, err)
	}
	if string(raw) == "null" {
		return nil
	}
	var c Challenge
	cdec := strictjson.NewDecoder(raw)
	err := strictjson.WalkObject(cdec, func(key string) error {
		var err error
		switch key {
		case "txt_record_name":
			c.TXTRecordName, err = strictjson.DecodeString(cdec, "challenge."+key)
		case "txt_record_val":
			c.TXTRecordValue, err = strictjson.DecodeString(cdec, "challenge."+key)
		default:
			err = strictjson.SkipValue(cdec)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("challenge: %w", err)
	}
	p.dv().Challenge = c
	return nil
}

func decodeCertificates(dec *json.Decoder) ([]Certificate, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, strictjson.Error(dec, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, errors.New("certificates: want an array")
	}
	var certs []Certificate
	for i := 0; dec.More(); i++ {
		c, err := decodeCertificate(dec, fmt.Sprintf("certificates[%d]", i))
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if _, err := dec.Token(); err != nil { // the closing ']'
		return nil, strictjson.Error(dec, err)
	}
	return certs, nil
}

func decodeCertificate(dec *json.Decoder, path string) (Certificate, error) {
	var c Certificate
	err := strictjson.WalkObject(dec, func(key string) error {
		field := path + "." + key
		var err error
		switch key {
		case "cert_crn":
			c.CRN, err = strictjson.DecodeString(dec, field)
		case "name":
			c.Name, err = strictjson.DecodeString(dec, field)
		case "domains":
			var s string
			s, err = strictjson.DecodeString(dec, field)
			c.Domains = splitDomains(s)
		case "expires_on":
			c.ExpiresOn, err = decodeTimestamp(dec, field)
		case "previous_expires_on":
			c.PreviousExpiresOn, err = decodeTimestamp(dec, field)
		case "additional_info":
			c.AdditionalInfo, err = strictjson.DecodeString(dec, field)
		case "auto_renewed":
			c.AutoRenewed, err = decodeBool(dec, field)
		default:
			err = strictjson.SkipValue(dec)
		}
		return err
	})
	if errors.Is(err, strictjson.ErrNotObject) {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, err
}

// splitDomains splits the payload's comma-delimited domain list ("a.com,*.a.com").
func splitDomains(s string) []string {
	var out []string
	for d := range strings.SplitSeq(s, ",") {
		if d = strings.TrimSpace(d); d != "" {
			out = append(out, d)
		}
	}
	return out
}

// maxEpochMillis is 9999-12-31T23:59:59.999Z: beyond it a timestamp is nonsense and
// time formatting stops round-tripping.
const maxEpochMillis = 253402300799999

// decodeTimestamp reads a time that real events send as epoch milliseconds and the test
// event as an ISO-8601 string ("2021-07-03T12:00:00.000Z"). null is absent (zero time).
func decodeTimestamp(dec *json.Decoder, field string) (time.Time, error) {
	tok, err := dec.Token()
	if err != nil {
		return time.Time{}, strictjson.Error(dec, err)
	}
	switch v := tok.(type) {
	case nil:
		return time.Time{}, nil
	case json.Number:
		ms, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			// 1.6e12 or 1623293628000.0 is still a whole number of milliseconds.
			f, ferr := strconv.ParseFloat(string(v), 64)
			if ferr != nil || f != math.Trunc(f) || f < 0 || f > maxEpochMillis {
				return time.Time{}, fmt.Errorf("%s: want whole epoch milliseconds", field)
			}
			ms = int64(f)
		}
		if ms < 0 || ms > maxEpochMillis {
			return time.Time{}, fmt.Errorf("%s: epoch milliseconds out of range", field)
		}
		return time.UnixMilli(ms).UTC(), nil
	case string:
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return time.Time{}, fmt.Errorf("%s: want an RFC 3339 time", field)
		}
		return t.UTC(), nil
	default:
		return time.Time{}, fmt.Errorf("%s: want epoch milliseconds or an RFC 3339 string", field)
	}
}

// decodeInt reads a JSON integer (version numbers). A string "4" is a type error: the
// real payloads send numbers.
func decodeInt(dec *json.Decoder, field string) (int, bool, error) {
	tok, err := dec.Token()
	if err != nil {
		return 0, false, strictjson.Error(dec, err)
	}
	switch v := tok.(type) {
	case nil:
		return 0, false, nil
	case json.Number:
		n, err := strconv.ParseInt(string(v), 10, 32)
		if err != nil {
			return 0, false, fmt.Errorf("%s: want a small integer", field)
		}
		return int(n), true, nil
	default:
		return 0, false, fmt.Errorf("%s: want a number", field)
	}
}

func decodeBool(dec *json.Decoder, field string) (*bool, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, strictjson.Error(dec, err)
	}
	switch v := tok.(type) {
	case nil:
		return nil, nil
	case bool:
		return &v, nil
	default:
		return nil, fmt.Errorf("%s: want true or false", field)
	}
}

// decodeNumericDate reads exp/nbf as RFC 7519 NumericDate (seconds, possibly
// fractional).
func decodeNumericDate(dec *json.Decoder, field string) (*jwt.NumericDate, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, strictjson.Error(dec, err)
	}
	switch v := tok.(type) {
	case nil:
		return nil, nil
	case json.Number:
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil || math.IsInf(f, 0) || math.Abs(f) > maxEpochMillis/1000 {
			return nil, fmt.Errorf("%s: want a NumericDate", field)
		}
		sec, frac := math.Modf(f)
		return jwt.NewNumericDate(time.Unix(int64(sec), int64(frac*1e9))), nil
	default:
		return nil, fmt.Errorf("%s: want a NumericDate", field)
	}
}

// checkPayload binds a decoded payload to the configured source instance. Order matters
// only for which error a doubly-bad payload gets; trust checks come first.
func checkPayload(p *rawPayload, source string) (*Notification, error) {
	n := &p.n
	if n.InstanceCRN == "" {
		return nil, fmt.Errorf("%w: payload has no instance_crn", ErrMalformed)
	}
	if n.InstanceCRN != source {
		// Printing the CRN is safe: it is a signed value and not secret; it is quoted so
		// that a hostile value cannot forge log lines.
		return nil, fmt.Errorf("%w: payload names %.200q, the source is %s", ErrWrongInstance, n.InstanceCRN, source)
	}
	switch {
	case p.hasV1Certificates:
		return nil, fmt.Errorf("%w: payload has the v1 expiring_certificates shape", ErrUnsupportedVersion)
	case !p.hasVersion:
		return nil, fmt.Errorf("%w: payload has no version", ErrUnsupportedVersion)
	case n.Version < 2 || n.Version > 4:
		return nil, fmt.Errorf("%w: version %d (supported: 2, 3, 4)", ErrUnsupportedVersion, n.Version)
	}
	if n.EventType == "" {
		return nil, fmt.Errorf("%w: payload has no event_type", ErrMalformed)
	}
	for i, c := range n.Certificates {
		if c.CRN == "" {
			return nil, fmt.Errorf("%w: certificates[%d] has no cert_crn", ErrMalformed, i)
		}
		if !crn.CertificateBelongsTo(c.CRN, source) {
			return nil, fmt.Errorf("%w: certificates[%d].cert_crn %.200q is not a certificate of %s", ErrForeignCertificate, i, c.CRN, source)
		}
	}
	if dv := n.DomainValidation; dv != nil && dv.CertificateCRN != "" && !crn.CertificateBelongsTo(dv.CertificateCRN, source) {
		return nil, fmt.Errorf("%w: certificateCRN %.200q is not a certificate of %s", ErrForeignCertificate, dv.CertificateCRN, source)
	}

	// The documented shapes. Unknown event types are checked for CRNs above but not for
	// shape: they must be acknowledged, not refused.
	switch {
	case isDomainValidation(n.EventType):
		if n.Version != 4 {
			return nil, fmt.Errorf("%w: %s exists only in version 4, payload is version %d", ErrUnsupportedVersion, n.EventType, n.Version)
		}
		if n.DomainValidation == nil || n.DomainValidation.CertificateCRN == "" {
			return nil, fmt.Errorf("%w: %s payload has no certificateCRN", ErrMalformed, n.EventType)
		}
	case Classify(n.EventType) != Unknown:
		if !p.hasCertificates {
			return nil, fmt.Errorf("%w: %s payload has no certificates array", ErrMalformed, n.EventType)
		}
	}
	return n, nil
}
