package webhook

// Version is Herald's version, in the default User-Agent. The herald
// binary sets it at start to the version it was built as (`herald
// version`); a program that uses this package may set it before making
// clients.
var Version = "0.1.0-dev"
