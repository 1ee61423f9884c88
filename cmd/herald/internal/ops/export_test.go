package ops

// PurgeLock is the advisory lock PurgeDead takes, for tests that hold it.
const PurgeLock = purgeLock
