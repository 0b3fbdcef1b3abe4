module github.com/sagasuite/sagasuite/services/order

go 1.26
