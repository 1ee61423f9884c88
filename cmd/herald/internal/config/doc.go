// Package config loads herald.yaml, the configuration of the herald
// command. It is the only place in Herald that knows about YAML: the rest
// of the command turns a *Config into the relay's and webhook client's own
// Config structs.
//
// # Loading
//
// Load reads a file and Parse parses bytes. Both apply defaults (see
// Default, DefaultEndpoint and the *Default constants), validate, and
// return either a complete *Config or an *Error listing every problem at
// once, one per line, each naming the file, line, key path and, unless it
// is a secret, the offending value:
//
//	herald.yaml:12: endpoints[0].url: must be an absolute http or https URL (got "ftp://x")
//
// Unknown keys are errors too, so a typo never silently falls back to a
// default. config.example.yaml at the repository root documents every key;
// a test keeps it complete.
//
// # Environment variables
//
// ${NAME} in any scalar value is replaced by the variable NAME; $${ is a
// literal ${. Expansion runs on values after parsing, so a variable can
// never add keys or structure. An unset variable is an error naming it.
// A non-empty DATABASE_URL overrides database.url.
//
// # Endpoints outside the file
//
// Endpoints may also come from the database table outbox.endpoints or from
// the herald endpoints command. ValidateEndpoint runs on them the checks
// Parse runs on each endpoints[] item, naming bare fields ("url",
// "secrets[1]"); Config.ValidateEndpoint adds the relay.lease check.
//
// # Secrets
//
// database.url, endpoint secrets and header values are of type Secret,
// which prints as "[redacted]" with every fmt verb and encoder. Errors
// never contain them.
package config
