// Package webhook sends outbox messages to HTTP receivers as Standard
// Webhooks (https://www.standardwebhooks.com), and verifies them on the
// receiving side.
//
// The package does no logging and starts no goroutines of its own: it returns
// typed errors and leaves retries, scheduling and logging to the relay.
//
// # Sending
//
// A [Client] holds what all endpoints share (the address policy, response
// limits, User-Agent); [Client.Endpoint] validates an [EndpointConfig] and
// returns an [Endpoint] with its own connection pool. The relay calls
// [Endpoint.Send] once per attempt; [Endpoint.Deliver] is Send for callers
// that need no more than whether the receiver acknowledged:
//
//	ep, err := webhook.NewClient(webhook.ClientConfig{}).Endpoint(webhook.EndpointConfig{
//		Name:    "orders",
//		URL:     "https://example.com/hooks",
//		Secrets: []string{"whsec_..."},
//	})
//	...
//	err = ep.Deliver(ctx, &webhook.Message{ID: "msg_1", Body: body})
//	var de *webhook.DeliveryError
//	if errors.As(err, &de) && de.Retryable { /* schedule another attempt */ }
//
// Each makes exactly one attempt. Send returns the [Result] of a 2xx (which
// 2xx, for the attempt log), Deliver nil; both return a
// [*DeliveryError] otherwise, which says whether to retry (Retryable), whether
// the receiver is gone for good (410, Gone), how long the receiver asked to
// wait (RetryAfter on 429 and 503), and a short Reason that is safe to store.
// Delivery is at least once: the same message may arrive more than once (a
// timeout after the receiver processed it, a replay on a fresh connection),
// always with the same webhook-id, on which receivers deduplicate.
//
// A 2xx is success as soon as its status line arrives, whatever its body: the
// body is read, up to ClientConfig.MaxResponseBytes and within the timeout,
// only to reuse the connection. A non-2xx body is kept (its first
// KeepResponseBytes) in DeliveryError.Response for diagnosis.
//
// Each attempt is bounded by EndpointConfig.Timeout, from dialling to the end
// of the body. Connections are kept alive and reused (MaxConns idle
// connections per endpoint); HTTP/2 is used when an https receiver offers
// it. Plain-http endpoints without a proxy or redirect following use a lean
// HTTP/1.1 pool driven by the delivering goroutine itself, which saves the
// two goroutine hand-offs net/http's Transport makes per request
// (ClientConfig.DisableLeanPool turns it off). The body is sent exactly as
// given: Herald never re-encodes JSON.
//
// # Signing
//
// With EndpointConfig.Secrets set, every request carries webhook-id,
// webhook-timestamp and webhook-signature as Standard Webhooks defines them:
// "v1,<base64 HMAC-SHA256 of id.timestamp.body>", one per secret, separated
// by spaces. Listing the new secret before the old one during a rotation lets
// the receiver switch at any time. See [Signer] and [ParseSecret]. Secrets
// never appear in errors or in the String of a [Secret] or [Signer].
//
// # Security
//
// Webhook URLs often come from the people receiving them, so by default
// delivery refuses to connect to addresses inside the network Herald runs
// in: loopback, private (RFC 1918, fc00::/7), link-local, shared
// (100.64.0.0/10), multicast, unspecified and reserved addresses, and cloud
// metadata services (169.254.169.254, fd00:ec2::254). The check happens when
// dialling, on every address the name resolves to, and the connection goes
// to the checked address, so DNS rebinding cannot get around it; a name with
// any refused address is refused whole. ClientConfig.AllowPrivateNetworks
// lifts the check (metadata addresses excepted) and ClientConfig.AllowedCIDRs
// allows chosen ranges. A refusal is a retryable *DeliveryError whose Reason
// names the address, wrapping an [*AddressRefusedError].
//
// With a proxy from the environment (HTTPS_PROXY, HTTP_PROXY, NO_PROXY),
// Herald connects to the proxy, which it trusts as operator configuration,
// and checks the target's resolved addresses itself just before each request.
// The proxy resolves the name again, so DNS rebinding between the two lookups
// is possible there: the proxy should enforce its own egress rules.
//
// Only http and https URLs are accepted, and redirects are not followed
// unless EndpointConfig.FollowRedirects is set; even then only 307 and 308
// (which keep the POST and its body) to http or https URLs are followed, and
// every hop passes the address check.
//
// Response heads are read up to ClientConfig.MaxResponseHeaderBytes and
// bodies up to ClientConfig.MaxResponseBytes, so a receiver cannot exhaust
// memory. A message's id and headers are checked before anything is sent
// (see [Message] and [ParseHeaders]), so they cannot inject headers or a
// request. Errors never include secrets, URL credentials or URL query values
// (see [RedactURL]).
//
// # Receiving
//
// A receiver gets each message at least once and makes that effectively
// once by verifying every request and recording its webhook-id in the same
// transaction as the change the message causes. A [Verifier] checks the
// signature and the timestamp (see [NewVerifier], [VerifierConfig]);
// [Verifier.VerifyPayload] does it without HTTP. [NewHandler] returns an
// http.Handler that verifies, begins a transaction in a [Store], skips an id
// already processed, and commits only if the [HandlerFunc] returns nil, so an
// id is recorded exactly when its change is. [NewPostgresStore] keeps the ids
// in the receiver's own PostgreSQL; [NewMemoryStore] keeps them in memory for
// one process. docs/receiving.md in the repository walks through it, with
// the recipe for other languages.
package webhook
