module github.com/sagasuite/sagasuite/services/inventory

go 1.26.0

replace (
	github.com/sagasuite/sagasuite/libs => ../../libs
	github.com/sagasuite/sagasuite/proto/gen/go => ../../proto/gen/go
)
