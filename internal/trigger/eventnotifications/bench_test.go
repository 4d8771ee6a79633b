package eventnotifications

import (
	"testing"
)

// BenchmarkParse100 parses the largest notification Secrets Manager sends: 100
// secrets, each with the documented metadata.
func BenchmarkParse100(b *testing.B) {
	body := toJSON(b, newEnvelope(EventSecretRotated, manySecrets(MaxSecrets)...))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		n, err := Parse(body, srcCRN)
		if err != nil || len(n.Secrets) != MaxSecrets {
			b.Fatal(err)
		}
	}
}

func BenchmarkAuthenticate(b *testing.B) {
	v := "Bearer " + webhookSecret
	b.ReportAllocs()
	for b.Loop() {
		if err := AuthenticateValue(v, webhookSecret); err != nil {
			b.Fatal(err)
		}
	}
}
