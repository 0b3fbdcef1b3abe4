module github.com/sagasuite/sagasuite/services/payment

go 1.26.0

require github.com/google/uuid v1.6.0

replace (
	github.com/sagasuite/sagasuite/libs => ../../libs
	github.com/sagasuite/sagasuite/proto/gen/go => ../../proto/gen/go
)
