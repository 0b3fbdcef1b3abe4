module github.com/sagasuite/sagasuite/libs

go 1.26
