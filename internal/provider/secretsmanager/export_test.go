package secretsmanager

import "time"

// SetNow replaces the client's clock (for expiry), for tests.
func SetNow(c *Client, now func() time.Time) { c.now = now }
