# syntax=docker/dockerfile:1
#
# The certbackup binary (`exec`) as a container image for IBM Cloud Code Engine, built by
# `./deploy.sh codeengine` with `ibmcloud ce application|job create --build-source .
# --build-strategy dockerfile`. The application runs `exec serve` (the default command
# here); the reconcile job runs `exec reconcile`.
#
# Rules for editing (test/deploy checks them, since no test here can run a Docker build):
# - GO_VERSION is the `go` directive of go.mod (major.minor);
# - the binary is built from ./function, static (CGO_ENABLED=0) for linux/amd64 (Code
#   Engine runs x86 images only), with -trimpath and -ldflags "-s -w";
# - the final stage is distroless static (CA certificates, no shell) and runs as a
#   non-root user.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Never download another toolchain: a go.mod that needs a newer Go fails here, loudly.
ENV CGO_ENABLED=0 GOOS=linux GOARCH=amd64 GOTOOLCHAIN=local GOFLAGS=-mod=readonly
COPY go.mod go.sum ./
RUN go mod download && go mod verify
COPY function/ function/
COPY internal/ internal/
RUN go build -trimpath -buildvcs=false -ldflags "-s -w -buildid=" -o /out/exec ./function

# The binary is linux/amd64 whatever machine builds the image, so the image says so too.
# hadolint ignore=DL3029
FROM --platform=linux/amd64 gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/exec /exec
# The image's `nonroot` user, by number: a platform that must verify that a container does
# not run as root (Kubernetes runAsNonRoot) cannot check a user name.
USER 65532:65532
# Code Engine sends requests to port 8080 by default and sets PORT; `exec serve` listens on $PORT.
EXPOSE 8080
ENTRYPOINT ["/exec"]
CMD ["serve"]
