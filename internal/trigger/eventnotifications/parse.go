package eventnotifications

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/certbackup/certbackup/internal/crn"
	"github.com/certbackup/certbackup/internal/strictjson"
)

// MaxBodySize bounds the body. Real notifications are at most tens of KB (100 secrets of
// metadata); the limit is checked before any parsing.
const MaxBodySize = 1 << 20

// MaxSecrets is the most entries data.secrets may hold: "100 is the maximum number of
// secrets that you can be notified of in a single event notification" (Secrets
// Manager documentation). More is refused with ErrTooLarge (413).
const MaxSecrets = 100

// envelope is the body as decoded, before the checks that bind it to the configuration.
type envelope struct {
	id, source, specVersion, typ, notificationID string
	time                                         time.Time
	hasData                                      bool
	data                                         payload
}

// payload is SM's data object.
type payload struct {
	eventType, eventSubType, secretType, sourceInstanceCRN string
	secrets                                                []rawSecret
}

type rawSecret struct{ id, name, groupID string }

// errTooManySecrets is mapped to ErrTooLarge, not ErrMalformed.
var errTooManySecrets = fmt.Errorf("data.secrets has more than %d entries", MaxSecrets)

// Parse decodes and checks an Event Notifications webhook body against the configured
// source instance sourceInstanceCRN (a Secrets Manager instance CRN). Call it only
// after Authenticate succeeded. The package documentation lists what is accepted.
//
// Errors: ErrConfig (sourceInstanceCRN is not a Secrets Manager instance CRN),
// ErrTooLarge, ErrMalformed, ErrWrongInstance, ErrForeignSecret. When two things are
// wrong the error is the first found in this order: the body's size; JSON syntax,
// duplicate keys, field types and the number of secrets (in body order); source; data;
// data.source_instance_crn; specversion; event type; secret type; secrets (in array
// order).
func Parse(body []byte, sourceInstanceCRN string) (*Notification, error) {
	src, err := crn.ParseSecretsManagerInstance(sourceInstanceCRN)
	if err != nil {
		return nil, fmt.Errorf("%w: source instance: %w", ErrConfig, err)
	}
	if len(body) > MaxBodySize {
		return nil, fmt.Errorf("%w: body is %d bytes, the limit is %d", ErrTooLarge, len(body), MaxBodySize)
	}
	env, err := decodeEnvelope(body)
	if errors.Is(err, errTooManySecrets) {
		return nil, fmt.Errorf("%w: %w", ErrTooLarge, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return bind(env, src, sourceInstanceCRN)
}

func decodeEnvelope(b []byte) (*envelope, error) {
	e := &envelope{}
	dec := strictjson.NewDecoder(b)
	err := strictjson.WalkObject(dec, func(key string) error {
		var err error
		switch key {
		case "id":
			e.id, err = strictjson.DecodeString(dec, key)
		case "source":
			e.source, err = strictjson.DecodeString(dec, key)
		case "specversion":
			e.specVersion, err = strictjson.DecodeString(dec, key)
		case "type":
			e.typ, err = strictjson.DecodeString(dec, key)
		case "notification_id":
			e.notificationID, err = strictjson.DecodeString(dec, key)
		case "datacontenttype":
			_, err = strictjson.DecodeString(dec, key) // type-checked, value not enforced (package doc)
		case "time":
			e.time, err = decodeTime(dec, key)
		case "data":
			e.hasData, err = decodeData(dec, b, &e.data)
		default:
			err = strictjson.SkipValue(dec)
		}
		return err
	})
	if err == strictjson.ErrNotObject { // the body itself; nested values name their own path
		err = fmt.Errorf("body: %w", err)
	}
	if err == nil {
		err = strictjson.ExpectEOF(dec)
	}
	if err != nil {
		return nil, err
	}
	return e, nil
}

// decodeData reads data: an object, or a string whose whole content is one object
// (package doc); null is absent. body is the whole input of dec, to peek at the value's
// first byte: an object (the usual case) is then walked in place instead of being
// scanned twice.
func decodeData(dec *json.Decoder, body []byte, p *payload) (bool, error) {
	if peekValue(dec, body) == '{' {
		return true, walkPayload(dec, p)
	}
	raw, err := strictjson.RawValue(dec)
	if err != nil {
		return false, err
	}
	switch raw[0] { // json.Decoder hands a RawMessage without leading space
	case 'n':
		return false, nil
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return false, errors.New("data: invalid JSON string")
		}
		if err := decodePayload([]byte(s), p); err != nil {
			return false, fmt.Errorf("data is a string: %w", err)
		}
		return true, nil
	default:
		return false, errors.New("data: want an object")
	}
}

// peekValue returns the first byte of the value that follows the object key dec has
// just read, or 0 if there is none. It only looks; dec still reads the value.
func peekValue(dec *json.Decoder, body []byte) byte {
	for i := dec.InputOffset(); i < int64(len(body)); i++ {
		switch c := body[i]; c {
		case ' ', '\t', '\n', '\r', ':':
		default:
			return c
		}
	}
	return 0
}

// decodePayload decodes data given as its own JSON text (the string form).
func decodePayload(b []byte, p *payload) error {
	dec := strictjson.NewDecoder(b)
	err := walkPayload(dec, p)
	if err == strictjson.ErrNotObject {
		return fmt.Errorf("data: %w", err)
	}
	if err == nil {
		err = strictjson.ExpectEOF(dec)
	}
	return err
}

// walkPayload reads the data object from dec.
func walkPayload(dec *json.Decoder, p *payload) error {
	return strictjson.WalkObject(dec, func(key string) error {
		field := "data." + key
		var err error
		switch key {
		case "event_type":
			p.eventType, err = strictjson.DecodeString(dec, field)
		case "event_sub_type":
			p.eventSubType, err = strictjson.DecodeString(dec, field)
		case "secret_type":
			p.secretType, err = strictjson.DecodeString(dec, field)
		case "source_instance_crn":
			p.sourceInstanceCRN, err = strictjson.DecodeString(dec, field)
		case "secrets":
			p.secrets, err = decodeSecrets(dec)
		default:
			// Among the ignored: source_instance_api_public_url and _private_url. The
			// secret is always read from the configured instance, never from a URL a
			// notification chose.
			err = strictjson.SkipValue(dec)
		}
		return err
	})
}

func decodeSecrets(dec *json.Decoder) ([]rawSecret, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, strictjson.Error(dec, err)
	}
	if tok == nil {
		return nil, nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, errors.New("data.secrets: want an array")
	}
	var secrets []rawSecret
	for i := 0; dec.More(); i++ {
		if i == MaxSecrets {
			return nil, errTooManySecrets
		}
		s, err := decodeSecret(dec, fmt.Sprintf("data.secrets[%d]", i))
		if err != nil {
			return nil, err
		}
		secrets = append(secrets, s)
	}
	if _, err := dec.Token(); err != nil { // the closing ']'
		return nil, strictjson.Error(dec, err)
	}
	return secrets, nil
}

func decodeSecret(dec *json.Decoder, path string) (rawSecret, error) {
	var s rawSecret
	err := strictjson.WalkObject(dec, func(key string) error {
		field := path + "." + key
		var err error
		switch key {
		case "secret_id":
			s.id, err = strictjson.DecodeString(dec, field)
		case "secret_name":
			s.name, err = strictjson.DecodeString(dec, field)
		case "secret_group_id":
			s.groupID, err = strictjson.DecodeString(dec, field)
		default: // domains, serial_number, secret_expiration, event_time, failure_reason, ...
			err = strictjson.SkipValue(dec)
		}
		return err
	})
	if err == strictjson.ErrNotObject {
		return s, fmt.Errorf("%s: %w", path, err)
	}
	return s, err
}

// decodeTime reads an RFC 3339 time (CloudEvents "time"); null is absent.
func decodeTime(dec *json.Decoder, field string) (time.Time, error) {
	s, err := strictjson.DecodeString(dec, field)
	if err != nil || s == "" {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: want an RFC 3339 time", field)
	}
	return t.UTC(), nil
}

// eventNameRE bounds event names and subtypes: they end up in logs and results. Wide
// enough for any future snake_case name; an unknown name is acknowledged, not refused.
var eventNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

// bind checks a decoded envelope against the configured source instance. Trust checks
// come first.
func bind(e *envelope, src crn.SecretsManagerCRN, configured string) (*Notification, error) {
	if e.source == "" {
		return nil, fmt.Errorf("%w: no source", ErrMalformed)
	}
	if !isInstance(e.source, src) {
		return nil, fmt.Errorf("%w: source is not the configured source instance", ErrWrongInstance)
	}
	if !e.hasData {
		return nil, fmt.Errorf("%w: no data", ErrMalformed)
	}
	p := &e.data
	if p.sourceInstanceCRN != "" && !isInstance(p.sourceInstanceCRN, src) {
		return nil, fmt.Errorf("%w: data.source_instance_crn is not the configured source instance", ErrWrongInstance)
	}
	if e.specVersion != "" && e.specVersion != "1.0" {
		return nil, fmt.Errorf(`%w: specversion is not "1.0"`, ErrMalformed)
	}
	event, sub, err := eventType(e.typ, p.eventType, p.eventSubType)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if p.secretType != "" && !eventNameRE.MatchString(p.secretType) {
		return nil, fmt.Errorf("%w: data.secret_type is not a secret type name", ErrMalformed)
	}
	secrets, err := bindSecrets(p.secrets, src)
	if err != nil {
		return nil, err
	}
	if Classify(event) == Copy && len(secrets) == 0 {
		return nil, fmt.Errorf("%w: %s names no secret", ErrMalformed, event)
	}
	return &Notification{
		ID:             e.id,
		NotificationID: e.notificationID,
		InstanceCRN:    configured,
		EventType:      event,
		EventSubType:   sub,
		SecretType:     p.secretType,
		Time:           e.time,
		Secrets:        secrets,
	}, nil
}

// isInstance reports whether s is a Secrets Manager instance CRN of the same instance
// as src (crn.SecretsManagerCRN.SameInstance: the GUID without regard to case).
func isInstance(s string, src crn.SecretsManagerCRN) bool {
	c, err := crn.ParseSecretsManagerInstance(s)
	return err == nil && c.SameInstance(src)
}

// eventType derives the event name and subtype from the CloudEvents type
// ("com.ibm.cloud.secrets-manager.<name>[:<subtype>]") and data.event_type /
// data.event_sub_type. Either source may be absent; when both are present they must
// agree.
func eventType(typ, dataType, dataSub string) (name, sub string, err error) {
	if typ != "" {
		rest, ok := strings.CutPrefix(typ, EventTypePrefix)
		if !ok {
			return "", "", errors.New("type is not a Secrets Manager event type")
		}
		name, sub, _ = strings.Cut(rest, ":")
		if !eventNameRE.MatchString(name) {
			return "", "", errors.New("type has a malformed event name")
		}
		if sub != "" && !eventNameRE.MatchString(sub) {
			return "", "", errors.New("type has a malformed subtype")
		}
	}
	if dataType != "" {
		if !eventNameRE.MatchString(dataType) {
			return "", "", errors.New("data.event_type is malformed")
		}
		if name != "" && name != dataType {
			return "", "", errors.New("type and data.event_type disagree")
		}
		name = dataType
	}
	if dataSub != "" {
		if !eventNameRE.MatchString(dataSub) {
			return "", "", errors.New("data.event_sub_type is malformed")
		}
		if sub != "" && sub != dataSub {
			return "", "", errors.New("type and data.event_sub_type disagree")
		}
		sub = dataSub
	}
	if name == "" {
		return "", "", errors.New("no event type (neither type nor data.event_type)")
	}
	return name, sub, nil
}

// bindSecrets turns each secret_id into a secret of src: a CRN must be a secret CRN of
// src; a bare UUID is a secret of src. Duplicates (same UUID, whatever the form or
// case) collapse to the first.
func bindSecrets(raw []rawSecret, src crn.SecretsManagerCRN) ([]Secret, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	out := make([]Secret, 0, len(raw))
	seen := make(map[string]struct{}, len(raw))
	for i, r := range raw {
		var id string
		switch {
		case r.id == "":
			return nil, fmt.Errorf("%w: data.secrets[%d] has no secret_id", ErrMalformed, i)
		case strings.HasPrefix(r.id, "crn:"):
			c, err := crn.ParseSecret(r.id)
			if err != nil || !c.SameInstance(src) {
				return nil, fmt.Errorf("%w: data.secrets[%d].secret_id is not a secret CRN of the configured source instance", ErrForeignSecret, i)
			}
			id = c.SecretID
		case crn.IsSecretID(r.id):
			id = r.id
		default:
			return nil, fmt.Errorf("%w: data.secrets[%d].secret_id is neither a secret CRN nor a UUID", ErrMalformed, i)
		}
		id = strings.ToLower(id)
		if _, dup := seen[id]; dup {
			continue
		}
		seen[id] = struct{}{}
		out = append(out, Secret{ID: id, CRN: src.Secret(id).String(), Name: r.name, GroupID: r.groupID})
	}
	return out, nil
}
