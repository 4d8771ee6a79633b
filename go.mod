module github.com/certbackup/certbackup

go 1.26.0

require (
	github.com/IBM/go-sdk-core/v5 v5.25.3 // indirect
	github.com/golang-jwt/jwt/v5 v5.3.1 // indirect
	github.com/stretchr/testify v1.12.1 // indirect
)
