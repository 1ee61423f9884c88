package webhook

import (
	"encoding/json"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The values of EndpointConfig.Format: how a message is framed.
const (
	// FormatStandardWebhooks sends the payload as the body, as it is, with
	// the Standard Webhooks headers. The default.
	FormatStandardWebhooks = "standard-webhooks"
	// FormatCloudEventsBinary sends a CloudEvents 1.0 event in HTTP binary
	// mode: the payload as the body (application/json), its attributes as
	// ce-* headers.
	FormatCloudEventsBinary = "cloudevents-binary"
	// FormatCloudEventsStructured sends a CloudEvents 1.0 event in HTTP
	// structured mode: an application/cloudevents+json envelope whose data
	// is the payload.
	FormatCloudEventsStructured = "cloudevents-structured"
	FormatDefault               = FormatStandardWebhooks

	// CloudEventsSourceDefault is the source attribute of the events of an
	// endpoint that sets none.
	CloudEventsSourceDefault = "herald"
	// cloudEventsContentType is the Content-Type of structured mode.
	cloudEventsContentType = "application/cloudevents+json; charset=utf-8"
	// ceHeaderPrefix starts the names of binary mode's attribute headers,
	// which belong to Herald on a CloudEvents endpoint.
	ceHeaderPrefix = "Ce-"
)

// CheckFormat reports why Client.Endpoint would refuse format and
// source as an endpoint's Format and CloudEventsSource: a *ConfigError
// naming the field ("format" or "cloudevents_source"), or nil.
func CheckFormat(format, source string) error {
	_, _, err := checkFormat(format, source)
	return err
}

// checkFormat validates an endpoint's format and event source.
func checkFormat(format, source string) (string, string, error) {
	switch format {
	case "":
		format = FormatDefault
	case FormatStandardWebhooks, FormatCloudEventsBinary, FormatCloudEventsStructured:
	default:
		return "", "", &ConfigError{Field: "format", Err: errors.New(strconv.Quote(format) + " is not a format: use " +
			FormatStandardWebhooks + ", " + FormatCloudEventsBinary + " or " + FormatCloudEventsStructured)}
	}
	if source == "" {
		return format, CloudEventsSourceDefault, nil
	}
	// A URI-reference (CloudEvents 1.0, source); it goes into a header.
	if _, err := url.Parse(source); err != nil || !validHeaderValue(source) || strings.ContainsAny(source, " \t") {
		return "", "", &ConfigError{Field: "cloudevents_source", Err: errors.New("must be a URI-reference, like /shop/orders or https://shop.example.com")}
	}
	return format, source, nil
}

// cloudEvent returns the request body and headers of m as a CloudEvent in
// the endpoint's format. Herald's attributes replace a message's own ce-*
// headers.
func (e *Endpoint) cloudEvent(m *Message, headers []Header) ([]byte, []Header, error) {
	if m.Type == "" {
		err := errors.New("cloudevents: the message has no type (topic)")
		return nil, nil, &DeliveryError{Reason: err.Error(), Err: err}
	}
	at := m.Time
	if at.IsZero() {
		at = time.Now()
	}
	ts := at.UTC().Format(time.RFC3339Nano)
	if e.format == FormatCloudEventsStructured {
		return structuredEvent(m, e.ceSource, ts), headers, nil
	}
	out := make([]Header, 0, len(headers)+5)
	for _, h := range headers {
		if !strings.HasPrefix(h.Name, ceHeaderPrefix) {
			out = append(out, h)
		}
	}
	out = append(out,
		Header{Name: "Ce-Specversion", Value: "1.0"},
		Header{Name: "Ce-Id", Value: m.ID},
		Header{Name: "Ce-Source", Value: ceHeaderValue(e.ceSource)},
		Header{Name: "Ce-Type", Value: ceHeaderValue(m.Type)},
		Header{Name: "Ce-Time", Value: ts},
	)
	return m.Body, out, nil
}

// structuredEvent is the application/cloudevents+json envelope of m, with
// the payload as data, byte for byte.
func structuredEvent(m *Message, source, ts string) []byte {
	attrs, _ := json.Marshal(struct {
		SpecVersion     string `json:"specversion"`
		ID              string `json:"id"`
		Source          string `json:"source"`
		Type            string `json:"type"`
		Time            string `json:"time"`
		DataContentType string `json:"datacontenttype"`
	}{"1.0", m.ID, source, m.Type, ts, "application/json"})
	b := make([]byte, 0, len(attrs)+len(`,"data":`)+len(m.Body)+1)
	b = append(b, attrs[:len(attrs)-1]...) // without its '}'
	b = append(b, `,"data":`...)
	b = append(b, m.Body...)
	return append(b, '}')
}

// ceHeaderValue percent-encodes what the CloudEvents HTTP binding asks
// (bytes outside printable ASCII, '%' and '"'), which its readers decode.
func ceHeaderValue(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if ceEscape(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if ceEscape(c) {
			b = append(b, '%', hex[c>>4], hex[c&15])
			continue
		}
		b = append(b, c)
	}
	return string(b)
}

func ceEscape(c byte) bool { return c <= ' ' || c >= 0x7f || c == '%' || c == '"' }
