# agenthelm and the example tool servers in one small image.
#
#   docker build -t agenthelm:dev .
#   docker run --rm agenthelm:dev version
#   docker run --rm --entrypoint toolserver agenthelm:dev --server hotel --listen 0.0.0.0:9101
#
# docker-compose.yml builds it and runs the sidecar, the example servers,
# Jaeger, Prometheus and Grafana (deploy/README.md).

FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
        -ldflags "-s -w -X github.com/agenthelm/agenthelm/internal/buildinfo.Version=${VERSION}" \
        -o /out/agenthelm ./cmd/agenthelm \
 && CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags "-s -w" \
        -o /out/toolserver ./examples/cmd/toolserver

# Alpine rather than distroless: its busybox wget and nc are what the
# compose health checks run.
FROM alpine:3.22.2
RUN addgroup -S -g 10001 agenthelm \
 && adduser -S -D -H -u 10001 -G agenthelm agenthelm \
 && mkdir -p /var/lib/agenthelm /etc/agenthelm \
 && chown agenthelm:agenthelm /var/lib/agenthelm
COPY --from=build /out/agenthelm /out/toolserver /usr/local/bin/
COPY policies /etc/agenthelm/policies
USER 10001:10001
WORKDIR /var/lib/agenthelm
VOLUME ["/var/lib/agenthelm"]
# MCP front door, HTTP tool proxy, admin API with /metrics and health.
EXPOSE 7070 7080 7071
ENTRYPOINT ["agenthelm"]
CMD ["serve", "--config", "/etc/agenthelm/agenthelm.yaml"]
