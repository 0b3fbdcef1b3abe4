module github.com/sagasuite/sagasuite/services/shipping

go 1.26
