package sqlstore

// TxAttempts exposes InTx's bound on runs to the tests.
const TxAttempts = txAttempts

// MigrateWithLockWait is Migrate with a shorter bound on the lock wait.
var MigrateWithLockWait = migrate

// Interpolate exposes Open's choice of client-side arguments to the tests.
var Interpolate = interpolate
