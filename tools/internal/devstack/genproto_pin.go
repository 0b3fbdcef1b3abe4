//go:build tools

package devstack

// go-mysql-server still requires the old monolithic google.golang.org/genproto,
// whose googleapis/* packages clash with the split genproto/googleapis/*
// modules ("ambiguous import … googleapis/rpc/status") once the go.work
// workspace builds every module against one build list. A genproto from
// after the split holds none of those packages; this import (never built:
// the tools tag) keeps `go mod tidy` from dropping that requirement from
// tools/go.mod (../../../shared/INFRA-NOTES.md).
import _ "google.golang.org/genproto/protobuf/field_mask"
