# Builds herald and the sample receiver into one small image.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/herald ./cmd/herald-receiver

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/herald /out/herald-receiver /usr/local/bin/
ENTRYPOINT ["/usr/local/bin/herald"]
CMD ["run"]
