package adapters

// ListQuery exposes List's SELECT to the EXPLAIN test.
var ListQuery = listQuery
