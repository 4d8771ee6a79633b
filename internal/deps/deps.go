// Package deps pins the agreed dependencies in go.mod while the packages that use them
// are being written in parallel. Remove it once internal/cms and internal/notification
// import them.
package deps

import (
	_ "github.com/IBM/go-sdk-core/v5/core"
	_ "github.com/golang-jwt/jwt/v5"
)
