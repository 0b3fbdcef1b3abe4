module github.com/sagasuite/sagasuite/services/notification

go 1.26
