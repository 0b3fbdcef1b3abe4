package sqlstore

// TxAttempts exposes InTx's bound on runs to the tests.
const TxAttempts = txAttempts
