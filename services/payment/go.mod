module github.com/sagasuite/sagasuite/services/payment

go 1.26
