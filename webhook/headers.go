package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
)

// Header is one extra HTTP header sent with a message.
type Header struct {
	Name  string
	Value string
}

// Canonical names of the Standard Webhooks headers, as set on requests.
const (
	canonicalID        = "Webhook-Id"
	canonicalTimestamp = "Webhook-Timestamp"
	canonicalSignature = "Webhook-Signature"
)

// MaxIDLength is the longest message id Deliver sends.
const MaxIDLength = 255

// checkMessageID applies the rule of outbox.messages.id's CHECK
// (migrations/005): 1 to MaxIDLength bytes of [A-Za-z0-9_.:~+=/-]. The error
// names the first bad byte quoted, never the id, which may be hostile.
func checkMessageID(id string) error {
	switch {
	case id == "":
		return errors.New("invalid message id: empty")
	case len(id) > MaxIDLength:
		return errors.New("invalid message id: " + strconv.Itoa(len(id)) + " bytes, more than " + strconv.Itoa(MaxIDLength))
	}
	for i := 0; i < len(id); i++ {
		if !isIDChar(id[i]) {
			return errors.New("invalid message id: byte " + strconv.Quote(id[i:i+1]) + " at " + strconv.Itoa(i) + " (allowed: A-Z a-z 0-9 and _.:~+=/-)")
		}
	}
	return nil
}

func isIDChar(c byte) bool {
	return isAlnum(c) || strings.IndexByte("_.:~+=/-", c) >= 0
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// ReservedHeader reports whether name (in any case) is a header that
// neither an endpoint's configuration nor a message may set: Herald or HTTP
// itself sets it. See ParseHeaders for the list.
func ReservedHeader(name string) bool {
	return reservedHeader(textproto.CanonicalMIMEHeaderKey(name))
}

// reservedHeader is ReservedHeader for a canonical name.
func reservedHeader(canonical string) bool {
	switch canonical {
	case "Host", "Content-Type", "Content-Length", "Transfer-Encoding",
		"Connection", "User-Agent", canonicalID, canonicalTimestamp, canonicalSignature,
		// Hop-by-hop headers that would corrupt the exchange.
		"Te", "Trailer", "Upgrade", "Keep-Alive", "Proxy-Connection":
		return true
	}
	return false
}

// ParseHeaders decodes a message's extra headers as stored with the message:
// a JSON object whose values are strings. Empty input and "null" give nil.
// Names are returned in canonical form (textproto.CanonicalMIMEHeaderKey),
// sorted, so that Deliver does no work on them.
//
// It returns an error naming the header for a value that is not a string, an
// invalid name or value (a CR or LF would allow header injection), a name
// given twice (names are case-insensitive), or a reserved name: Host,
// Content-Type, Content-Length, Transfer-Encoding, Connection, User-Agent,
// webhook-id, webhook-timestamp, webhook-signature and the hop-by-hop headers
// Te, Trailer, Upgrade, Keep-Alive and Proxy-Connection.
func ParseHeaders(raw []byte) ([]Header, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] != '{' {
		return nil, errors.New("headers: must be a JSON object of strings")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, errors.New("headers: invalid JSON: " + err.Error())
	}
	if len(obj) == 0 {
		return nil, nil
	}
	hs := make([]Header, 0, len(obj))
	for name, rv := range obj {
		var value string
		if len(rv) == 0 || rv[0] != '"' {
			return nil, errors.New("headers: " + strconv.Quote(name) + ": value must be a string")
		}
		if err := json.Unmarshal(rv, &value); err != nil {
			return nil, errors.New("headers: " + strconv.Quote(name) + ": invalid string")
		}
		h, err := checkHeader(name, value)
		if err != nil {
			return nil, errors.New("headers: " + err.Error())
		}
		hs = append(hs, h)
	}
	slices.SortFunc(hs, func(a, b Header) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	for i := 1; i < len(hs); i++ {
		if hs[i].Name == hs[i-1].Name {
			return nil, errors.New("headers: " + strconv.Quote(hs[i].Name) + " is given twice")
		}
	}
	return hs, nil
}

// checkHeader validates one header and returns it with its name canonical.
func checkHeader(name, value string) (Header, error) {
	if !validHeaderName(name) {
		return Header{}, errors.New(strconv.Quote(name) + " is not a valid header name")
	}
	canonical := textproto.CanonicalMIMEHeaderKey(name)
	if reservedHeader(canonical) {
		return Header{}, errors.New(strconv.Quote(canonical) + " is reserved")
	}
	if !validHeaderValue(value) {
		return Header{}, errors.New(strconv.Quote(canonical) + " has an invalid value (control characters such as CR or LF are not allowed)")
	}
	return Header{Name: canonical, Value: value}, nil
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}

func isTokenChar(c byte) bool {
	return isAlnum(c) || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// validHeaderValue rejects control characters other than horizontal tab, as
// net/http does; bytes >= 0x80 (obs-text) are allowed.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
