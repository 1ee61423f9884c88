# Builds herald and the sample receiver into one small image.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# `docker build --build-arg VERSION=1.2.3 --build-arg COMMIT=$(git rev-parse HEAD)
# --build-arg DATE=$(date -u +%FT%TZ) .` stamps what `herald version` prints,
# as release builds do (.goreleaser.yaml).
ARG VERSION="" COMMIT="" DATE=""
RUN CGO_ENABLED=0 go build -trimpath \
    -ldflags="-s -w -X main.version=${VERSION} -X main.commit=${COMMIT} -X main.date=${DATE}" \
    -o /out/ ./cmd/herald ./cmd/herald-receiver

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/herald /out/herald-receiver /usr/local/bin/
ENTRYPOINT ["/usr/local/bin/herald"]
CMD ["run"]
