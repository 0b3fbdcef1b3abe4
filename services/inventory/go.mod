module github.com/sagasuite/sagasuite/services/inventory

go 1.26
