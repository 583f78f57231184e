# syntax=docker/dockerfile:1
#
# One Dockerfile for all five services; pick one with the SERVICE build arg:
#
#   docker build --build-arg SERVICE=command-api -t ghcr.io/escqrs/command-api:0.1.0 .
#
# SERVICE is one of: command-api, query-api, projector-orders, projector-stats,
# search-indexer. docker-compose.yml passes it for each service.

# ---- build stage ------------------------------------------------------------
# Pinned to an exact Go release (the one the development machines and CI run),
# not a floating tag, so image builds are reproducible.
FROM golang:1.26.8-bookworm AS build

# Static binary: no libc needed at run time (the runtime image has none).
ENV CGO_ENABLED=0 \
    GOTOOLCHAIN=local

# The few files a static Go binary needs at run time, taken from this pinned
# image: CA certificates (TLS to managed databases and brokers), Go's own
# time-zone database (found through ZONEINFO below), a passwd/group entry for
# the non-root user, and a world-writable /tmp. Done before the sources are
# copied, so this layer stays cached.
RUN mkdir -p /rootfs/etc/ssl/certs /rootfs/tmp \
 && chmod 1777 /rootfs/tmp \
 && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ \
 && cp "$(go env GOROOT)/lib/time/zoneinfo.zip" /rootfs/zoneinfo.zip \
 && echo 'nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin' > /rootfs/etc/passwd \
 && echo 'nonroot:x:65532:' > /rootfs/etc/group

WORKDIR /src

# Download modules in their own layer: it is rebuilt only when go.mod/go.sum
# change, not on every source edit.
COPY go.mod go.sum ./
RUN go mod download && go mod verify

COPY . .

ARG SERVICE
RUN test -n "$SERVICE" || { echo "build with --build-arg SERVICE=<service>" >&2; exit 1; }

# The same build command as the Makefile (scripts/build.sh). The cache mount
# keeps Go's compile cache between image builds on the same builder; it is not
# part of any layer.
RUN --mount=type=cache,target=/root/.cache/go-build \
    bash scripts/build.sh "$SERVICE" /out && mv "/out/$SERVICE" /out/service

# ---- runtime stage ----------------------------------------------------------
# scratch: nothing but the files copied below - no shell, no package manager,
# no OS packages to patch. (scratch rather than distroless because it needs no
# pin of its own: everything in the image comes from the pinned build stage.)
FROM scratch

ARG SERVICE
LABEL org.opencontainers.image.title="escqrs-${SERVICE}" \
      org.opencontainers.image.source="https://github.com/escqrs/platform"

COPY --from=build /rootfs/ /
# A fixed path, because ENTRYPOINT in exec form cannot expand build args.
COPY --from=build /out/service /usr/local/bin/service

ENV ZONEINFO=/zoneinfo.zip

# Non-root (uid/gid 65532, "nonroot" as in distroless images). Kubernetes
# checks runAsNonRoot against this numeric user.
USER 65532:65532

# No EXPOSE: the port depends on the service (HTTP_ADDR; see deploy/services.json).
# The service handles SIGTERM (Docker's default stop signal) and drains within ~20s.
ENTRYPOINT ["/usr/local/bin/service"]
