package webhook

// Version is Herald's version. It is a variable so that release builds can
// set it with -ldflags "-X github.com/herald-relay/herald/webhook.Version=1.2.3".
// It appears in the default User-Agent.
var Version = "0.1.0-dev"
