module github.com/sagasuite/sagasuite/proto/gen/go

go 1.26
